use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bit_axon::BitAxonModel;
use bit_axon::device::parse_device;
use bit_axon_inference::{
    ChatTemplate, GenerationConfig, Message, Sampler, SamplingConfig, Session, StopReason, StreamDecoder, TextTokenizer,
};
use clap::Args;

#[derive(Args)]
pub struct RunArgs {
    /// The prompt (read from stdin when absent and stdin is not a terminal).
    prompt: Option<String>,
    /// Checkpoint directory (config.json + *.safetensors; tokenizer.json is looked for there too).
    #[arg(long, short)]
    model: PathBuf,
    /// A tokenizer.json to use instead of the model directory's.
    #[arg(long, short)]
    tokenizer: Option<PathBuf>,
    /// flex (CPU), wgpu or cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    /// Keep the k most likely tokens (0: all).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Nucleus sampling threshold (1: off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens below min-p × the top probability (0: off).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Penalty (> 1) on tokens already in the context (1: off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed: the same seed and settings reproduce the same output.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when this text appears (repeatable); it is not printed.
    #[arg(long = "stop")]
    stop_strings: Vec<String>,
    /// Stop on this token id (repeatable), in addition to <|endoftext|> and <|im_end|>.
    #[arg(long = "stop-id")]
    stop_ids: Vec<u32>,
    /// System prompt for the chat template.
    #[arg(long)]
    system: Option<String>,
    /// Feed the prompt as is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Print text as tokens arrive (default) or all at the end.
    #[arg(long, overrides_with = "no_stream")]
    stream: bool,
    #[arg(long, overrides_with = "stream")]
    no_stream: bool,
    /// Prompt token ids, comma-separated; skips the tokenizer.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    prompt_ids: Option<Vec<u32>>,
    /// Print the generated ids, comma-separated, on the last line of stdout.
    #[arg(long)]
    print_ids: bool,
    /// Interactive multi-turn chat (/reset, /system TEXT, /quit).
    #[arg(long, short)]
    chat: bool,
}

struct Runtime {
    model: BitAxonModel,
    device: burn::prelude::Device,
    vocab: usize,
    tokenizer: Option<TextTokenizer>,
}

fn load(args: &RunArgs) -> Result<Runtime> {
    let device = parse_device(&args.device)?;
    let (cfg, model, report) = BitAxonModel::load(&args.model, &device)?;
    if !report.unused.is_empty() {
        eprintln!("warning: {} unused tensor(s) in {}", report.unused.len(), args.model.display());
    }
    let tokenizer = match (&args.tokenizer, &args.prompt_ids) {
        (Some(p), _) => Some(TextTokenizer::from_file(p)?),
        (None, Some(_)) => TextTokenizer::from_model_dir(&args.model).ok(),
        (None, None) => Some(TextTokenizer::from_model_dir(&args.model)?),
    };
    Ok(Runtime { model, device, vocab: cfg.vocab_size, tokenizer })
}

fn sampling(args: &RunArgs) -> Result<SamplingConfig> {
    let s = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
    };
    s.validate()?;
    Ok(s)
}

fn check_ids(ids: &[u32], vocab: usize, origin: &str) -> Result<()> {
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        bail!(
            "token id {bad} ({origin}) is outside the model vocabulary [0, {vocab}); the tokenizer does not match the model"
        );
    }
    Ok(())
}

/// Prints generated text as it arrives, holding back anything that could be the start of a
/// stop string, and reports when one is complete.
struct Printer<'a> {
    tokenizer: Option<&'a TextTokenizer>,
    stops: &'a [String],
    stream: bool,
    decoder: StreamDecoder,
    text: String,
    printed: usize,
    stopped_at: Option<usize>,
}

impl<'a> Printer<'a> {
    fn new(tokenizer: Option<&'a TextTokenizer>, stops: &'a [String], stream: bool) -> Self {
        Self {
            tokenizer,
            stops,
            stream,
            decoder: StreamDecoder::new(),
            text: String::new(),
            printed: 0,
            stopped_at: None,
        }
    }

    /// Returns `false` once a stop string has appeared.
    fn push(&mut self, id: u32) -> bool {
        let Some(tok) = self.tokenizer else { return true };
        if let Some(delta) = self.decoder.push(id, |ids| tok.decode(ids)) {
            self.text.push_str(&delta);
        }
        if let Some(pos) = self.stops.iter().filter_map(|s| self.text.find(s.as_str())).min() {
            self.stopped_at = Some(pos);
            self.emit(pos);
            return false;
        }
        let hold = self.stops.iter().map(|s| held_suffix(&self.text, s)).max().unwrap_or(0);
        self.emit(self.text.len() - hold);
        true
    }

    fn emit(&mut self, upto: usize) {
        if self.stream && upto > self.printed && self.text.is_char_boundary(upto) {
            print!("{}", &self.text[self.printed..upto]);
            let _ = std::io::stdout().flush();
            self.printed = upto;
        }
    }

    fn finish(&mut self) -> String {
        if self.stopped_at.is_none() {
            if let Some(tok) = self.tokenizer {
                if let Some(rest) = self.decoder.flush(|ids| tok.decode(ids)) {
                    self.text.push_str(&rest);
                }
            }
        }
        let end = self.stopped_at.unwrap_or(self.text.len());
        if self.stream {
            self.emit(end);
        }
        self.text[..end].to_string()
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn held_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .find(|&n| {
            n <= text.len() && text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

pub fn run(args: RunArgs) -> Result<()> {
    let rt = load(&args)?;
    let sampling = sampling(&args)?;
    if args.chat {
        return chat(&args, &rt, sampling);
    }
    let stream = !args.no_stream;
    let prompt_ids = match &args.prompt_ids {
        Some(ids) => ids.clone(),
        None => {
            let tok = rt.tokenizer.as_ref().context("a tokenizer is required for a text prompt")?;
            let text = match &args.prompt {
                Some(p) => p.clone(),
                None if !std::io::stdin().is_terminal() => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                None => bail!("give a prompt, pipe one on stdin, or use --chat"),
            };
            let text = if args.raw {
                text
            } else {
                tok.require_chat_tokens()?;
                let mut msgs = Vec::new();
                if let Some(s) = &args.system {
                    msgs.push(Message::system(s));
                }
                msgs.push(Message::user(&text));
                ChatTemplate::default().render(&msgs, true)
            };
            tok.encode(&text)?
        }
    };
    if prompt_ids.is_empty() {
        bail!("the prompt is empty");
    }
    check_ids(&prompt_ids, rt.vocab, "prompt")?;
    if !args.stop_strings.is_empty() && rt.tokenizer.is_none() {
        bail!("--stop needs a tokenizer (stop strings are matched on text)");
    }
    let mut stop_ids = rt.tokenizer.as_ref().map(|t| t.stop_ids()).unwrap_or_default();
    stop_ids.extend(&args.stop_ids);
    let cfg = GenerationConfig { max_new_tokens: args.max_tokens, stop_ids };
    let mut sampler = Sampler::new(sampling);
    let mut session = Session::new(&rt.model, &rt.device);
    let mut printer = Printer::new(rt.tokenizer.as_ref(), &args.stop_strings, stream);
    let out = session.generate(&prompt_ids, &cfg, &mut sampler, |id| printer.push(id));
    let text = printer.finish();
    if rt.tokenizer.is_some() {
        if stream {
            println!();
        } else {
            println!("{text}");
        }
    }
    eprintln!(
        "─── {} tokens · {:.1} tok/s · TTFT {:.0} ms · prompt {} tokens · stop: {} ───",
        out.tokens.len(),
        out.decode_tokens_per_second(),
        out.time_to_first_token.as_secs_f64() * 1e3,
        prompt_ids.len(),
        describe(&out.stop)
    );
    if args.print_ids {
        println!("{}", out.tokens.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    Ok(())
}

fn describe(stop: &StopReason) -> String {
    match stop {
        StopReason::StopToken(id) => format!("token {id}"),
        StopReason::MaxTokens => "max tokens".into(),
        StopReason::Callback => "stop string".into(),
    }
}

/// Interactive chat that keeps the cache between turns: each turn prefills only its new tokens.
fn chat(args: &RunArgs, rt: &Runtime, sampling: SamplingConfig) -> Result<()> {
    let tok = rt.tokenizer.as_ref().context("--chat needs a tokenizer")?;
    tok.require_chat_tokens()?;
    let template = ChatTemplate::default();
    let cfg = GenerationConfig { max_new_tokens: args.max_tokens, stop_ids: tok.stop_ids() };
    let im_end = tok.require("<|im_end|>")?;
    let mut sampler = Sampler::new(sampling);
    let mut session = Session::new(&rt.model, &rt.device);
    let mut system = args.system.clone();
    let mut last_stop: Option<StopReason> = None;
    let interactive = std::io::stdin().is_terminal();
    eprintln!("chat: /reset clears the conversation, /system TEXT sets the system prompt, /quit leaves");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            print!("you> ");
            let _ = std::io::stdout().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim_end();
        match line {
            "/quit" | "/exit" => break,
            "/reset" => {
                session.reset();
                last_stop = None;
                eprintln!("[conversation cleared]");
                continue;
            }
            "" => continue,
            _ => {}
        }
        if let Some(s) = line.strip_prefix("/system") {
            system = Some(s.trim().to_string()).filter(|s| !s.is_empty());
            session.reset();
            last_stop = None;
            eprintln!("[system prompt set; conversation cleared]");
            continue;
        }
        // Close the previous answer as the template wants: `<|im_end|>\n`, part of which may
        // already be pending (when the model itself stopped on <|im_end|>).
        let mut text = String::new();
        match &last_stop {
            None => {
                if let Some(s) = &system {
                    text.push_str(&template.turn(&Message::system(s)));
                }
            }
            Some(StopReason::StopToken(id)) if *id == im_end => text.push('\n'),
            Some(_) => text.push_str(&format!("{}\n", template.end)),
        }
        text.push_str(&template.turn(&Message::user(line)));
        text.push_str(&template.generation_prompt());
        let ids = tok.encode(&text)?;
        check_ids(&ids, rt.vocab, "chat turn")?;
        print!("assistant> ");
        let mut printer = Printer::new(Some(tok), &args.stop_strings, true);
        let out = session.generate(&ids, &cfg, &mut sampler, |id| printer.push(id));
        printer.finish();
        println!();
        eprintln!(
            "[prefilled {} new tokens (context {}), generated {} tokens, {:.1} tok/s]",
            out.prefilled,
            session.context().len(),
            out.tokens.len(),
            out.decode_tokens_per_second()
        );
        last_stop = Some(out.stop);
    }
    Ok(())
}
