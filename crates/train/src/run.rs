//! One training run, from the config file to the saved adapter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bit_axon::device::parse_device;
use bit_axon::{BitAxonConfig, BitAxonModel, SaveOptions};
use bit_axon_inference::{ChatTemplate, TextTokenizer, byte_level_tokenizer_json};
use bit_axon_quant::QuantFormat;
use burn::module::Module;
use burn::optim::AdamWConfig;
use burn::train::metric::LossMetric;
use burn::train::{Learner, SupervisedTraining, TrainingStrategy};

use crate::adapters;
use crate::checkpoint::{self, AdapterOnlyModel, AlwaysSave, RunState, StagedCheckpointer, Written};
use crate::config::TrainConfig;
use crate::data::loader::{EvalLoader, RowStream, StreamSpec, TrainLoader};
use crate::data::load_documents;
use crate::lm::CausalLm;
use crate::metrics::MetricsFile;
use crate::schedule::WarmupCosine;
use crate::strategy::{Outcome, StepHook, StepStrategy};

/// What the command line gives.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub sets: Vec<String>,
    pub resume: bool,
    /// No per-step progress lines (tests).
    pub quiet: bool,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunReport {
    pub outcome: Outcome,
    pub run_dir: PathBuf,
    /// The final adapter (PEFT layout).
    pub adapter_dir: PathBuf,
    /// The base model the adapter belongs to.
    pub base_dir: PathBuf,
    pub peak_rss: Option<u64>,
}

/// Loads the tokenizer the config names: a file, the base model's, or the built-in byte-level one
/// (written into the run directory so the run is self-contained).
fn tokenizer(cfg: &TrainConfig, base: Option<&Path>, run_dir: &Path) -> Result<TextTokenizer> {
    if let Some(p) = &cfg.tokenizer.path {
        return Ok(TextTokenizer::from_file(p)?);
    }
    match cfg.tokenizer.kind.as_deref() {
        Some("byte-level") => {}
        Some(other) => bail!("tokenizer.kind: unknown {other:?} (byte-level)"),
        None => {
            if let Some(b) = base
                && b.join("tokenizer.json").is_file()
            {
                return Ok(TextTokenizer::from_file(&b.join("tokenizer.json"))?);
            }
        }
    }
    let p = run_dir.join("tokenizer.json");
    bit_axon::checkpoint::write_text_atomic(&p, &byte_level_tokenizer_json())?;
    Ok(TextTokenizer::from_file(&p)?)
}

/// Runs training as configured. Hooks (thermal scheduler, dashboard keys) are consulted between
/// optimizer steps.
pub fn run(opts: &RunOptions, hooks: Vec<Box<dyn StepHook>>) -> Result<RunReport> {
    let cfg = TrainConfig::load(&opts.config, &opts.sets)?;
    let config_text = toml::to_string_pretty(&cfg)?;
    let device = parse_device(&cfg.train.device)?;
    let run_dir = cfg.output.dir.clone();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let resume = if opts.resume {
        let r = checkpoint::latest(&run_dir)?;
        if r.is_none() {
            eprintln!("--resume: no checkpoint in {}; starting from the beginning", run_dir.display());
        }
        r
    } else {
        if !checkpoint::list(&run_dir).is_empty() {
            bail!(
                "{} already holds checkpoints of a run; pass --resume to continue it, or choose another output.dir \
                 (--set output.dir=...)",
                run_dir.display()
            );
        }
        None
    };
    checkpoint::prune(&run_dir, usize::MAX)?; // leftovers of an interrupted save

    // The base model: a checkpoint, or a fresh one saved into the run (so resume and merge find it).
    let (base_dir, mcfg, model) = match cfg.model_path() {
        Some(p) => {
            let (c, m, _) = BitAxonModel::load(&p, &device).with_context(|| format!("loading the base model {}", p.display()))?;
            (p, c, m)
        }
        None => {
            let dir = run_dir.join("base");
            let mcfg = cfg.model_config()?;
            if resume.is_some() && dir.join("config.json").is_file() {
                let (c, m, _) = BitAxonModel::load(&dir, &device)?;
                (dir, c, m)
            } else {
                device.seed(cfg.train.seed);
                let m = mcfg.init(&device);
                m.save(&mcfg, &dir, SaveOptions { dtype: bit_axon::checkpoint::FloatDtype::F32, expert_dtype: bit_axon::checkpoint::FloatDtype::F32 })?;
                (dir, mcfg, m)
            }
        }
    };
    let tok = tokenizer(&cfg, Some(&base_dir), &run_dir)?;
    tok.require_chat_tokens()?;
    if tok.vocab_size() > mcfg.vocab_size {
        bail!("the tokenizer has {} tokens but the model's vocabulary is {}", tok.vocab_size(), mcfg.vocab_size);
    }
    if !base_dir.join("tokenizer.json").is_file() {
        std::fs::copy(tok.path(), base_dir.join("tokenizer.json")).ok();
    }
    let model = if cfg.quant.enabled {
        let f = QuantFormat::parse(&cfg.quant.format)?;
        adapters::quantize_base(model, f, cfg.quant.group_size)?
    } else {
        model
    };
    let (model, start) = match &resume {
        Some((dir, state)) => {
            let (m, peft) = adapters::load_peft(model, dir, &device)?;
            let saved = adapters::section_of(&peft);
            if saved.rank != cfg.adapter.rank || saved.kind != cfg.adapter.kind || saved.alpha != cfg.adapter.alpha {
                bail!("{}: the checkpoint's adapter ({} r={} alpha={}) differs from the config's", dir.display(), saved.kind, saved.rank, saved.alpha);
            }
            println!("resuming from {} (step {})", dir.display(), state.step);
            (m, state.clone())
        }
        None => {
            device.seed(cfg.train.seed ^ 0xada);
            let (m, paths) = adapters::apply(model, &cfg.adapter, &device)?;
            if !opts.quiet {
                println!("{} adapters ({}, r={}, alpha={}) on {} projections", cfg.adapter.kind, cfg.adapter.kind, cfg.adapter.rank, cfg.adapter.alpha, paths.len());
            }
            (m, RunState { step: 0, micro_batches: 0, bad_steps: 0, seed: cfg.train.seed, train_loss: f64::NAN })
        }
    };
    let params = adapters::trainable_params(&model);

    let tpl = ChatTemplate::default();
    let train_docs = load_documents(&cfg.data.train, &cfg.data, &tok, &tpl)?;
    report_data("train", &train_docs);
    let eval_docs = if cfg.data.eval.is_empty() {
        None
    } else {
        let d = load_documents(&cfg.data.eval, &cfg.data, &tok, &tpl)?;
        report_data("eval", &d);
        Some(d)
    };
    let pad_id = tok.require("<|endoftext|>")?;
    let spec = StreamSpec {
        seed: cfg.train.seed,
        seq_len: cfg.data.max_seq_len,
        batch_size: cfg.train.batch_size,
        grad_accum: cfg.train.grad_accum,
        pad_id,
        pack: cfg.data.pack,
    };
    let stream = RowStream::new(Arc::new(train_docs.docs), spec.clone());
    let inner = device.clone();
    let train_loader = TrainLoader::new(stream, start.step, cfg.train.max_steps, inner.clone());
    let eval_loader = match &eval_docs {
        Some(d) => EvalLoader::new(&d.docs, &spec, cfg.train.eval_batches, inner.clone()),
        None => EvalLoader::new(&[], &spec, 0, inner.clone()),
    };

    let t = &cfg.train;
    let optim = AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(t.eps as f32)
        .with_weight_decay(t.weight_decay as f32)
        .init();
    let sched = WarmupCosine::new(t.learning_rate, t.min_lr, t.warmup_steps, t.max_steps);
    let mut learner = Learner::new(CausalLm { model }.train(), optim, sched);
    if let Some((dir, _)) = &resume {
        learner.load_optim(checkpoint::load_optimizer(dir)?);
        learner.load_scheduler(checkpoint::load_scheduler(dir)?);
    }
    let metrics = Arc::new(MetricsFile::open(&run_dir, resume.as_ref().map(|(_, s)| s.step))?);
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let written = Arc::new(Written::default());
    let strategy = StepStrategy {
        device: device.clone().autodiff(),
        cfg: cfg.clone(),
        config_text,
        run_dir: run_dir.clone(),
        base_name: Some(base_dir.display().to_string()),
        start,
        params,
        written: written.clone(),
        metrics,
        hooks: Mutex::new(hooks),
        outcome: outcome.clone(),
        quiet: opts.quiet,
        _model: std::marker::PhantomData,
    };
    let staged = |name| StagedCheckpointer { run: run_dir.clone(), name, written: written.clone() };
    let training = SupervisedTraining::new(&run_dir, Arc::new(train_loader), Arc::new(eval_loader))
        .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
        .with_custom_checkpointers(AdapterOnlyModel, staged("optim"), staged("scheduler"))
        .with_checkpointing_strategy(AlwaysSave)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .renderer(Box::new(crate::renderer::LineRenderer))
        .with_application_logger(None)
        .num_epochs(1);
    let result = training.launch(learner);
    if let Some(e) = result.error {
        bail!("training failed: {e}");
    }
    let outcome = outcome.lock().expect("outcome").clone();
    if let Some(e) = &outcome.error {
        bail!("{e}");
    }
    let adapter_dir = run_dir.join("adapter");
    let tmp = run_dir.join(".tmp-adapter");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    adapters::save_peft(&result.model.model, &cfg.adapter, Some(&base_dir.display().to_string()), &tmp)?;
    if adapter_dir.exists() {
        std::fs::remove_dir_all(&adapter_dir)?;
    }
    std::fs::rename(&tmp, &adapter_dir)?;
    Ok(RunReport { outcome, run_dir, adapter_dir, base_dir, peak_rss: crate::sys::peak_rss_bytes() })
}

fn report_data(split: &str, d: &crate::data::Documents) {
    println!(
        "{split}: {} documents ({} cut to max_seq_len, {} dropped: no trained token left after the cut, {} bad lines skipped)",
        d.docs.len(),
        d.truncated,
        d.dropped_truncated,
        d.bad_lines.len()
    );
    for e in d.bad_lines.iter().take(20) {
        eprintln!("skipped {e}");
    }
}

/// The model config a run trains (for `info`-style messages).
pub fn model_config(cfg: &TrainConfig) -> Result<BitAxonConfig> {
    match cfg.model_path() {
        Some(p) => Ok(BitAxonConfig::from_path(&p)?),
        None => cfg.model_config(),
    }
}
