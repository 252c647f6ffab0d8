//! `bit-axon port`: a Hugging Face Qwen2 / Qwen2.5 checkpoint → a Bit-Axon checkpoint directory
//! (config, weights, truncated tokenizer and its config, vocabulary map, port report).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bit_axon::BitAxonConfig;
use bit_axon::checkpoint::FloatDtype;
use bit_axon_port::{PortOptions, VocabSource, port};
use clap::Args;

#[derive(Args)]
pub struct PortArgs {
    /// Source checkpoint directory (Hugging Face layout: config.json, model.safetensors or shards
    /// + model.safetensors.index.json, tokenizer.json).
    #[arg(long)]
    from: PathBuf,
    /// Output directory (created).
    #[arg(long)]
    output: PathBuf,
    /// Target preset: small, medium or default (the reference's Qwen2.5-3B target).
    #[arg(long, conflicts_with = "config", default_value = "default")]
    preset: String,
    /// Target config file (.json or .toml) instead of a preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kept vocabulary size (overrides the config's vocab_size).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Choose the kept tokens by frequency in this text file (default: the first ids).
    #[arg(long)]
    vocab_corpus: Option<PathBuf>,
    /// tokenizer.json to use when FROM has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Seed of the initialisation of tensors without a source and of the routed-expert noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Precision of ordinary tensors: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Precision of the routed-expert stacks (the reference stores f16).
    #[arg(long, default_value = "f16")]
    expert_dtype: String,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PortArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(p) => BitAxonConfig::from_path(p)?,
        None => BitAxonConfig::preset(&args.preset)?,
    };
    if let Some(v) = args.vocab_size {
        config.vocab_size = v;
    }
    let mut opts = PortOptions::new(&args.from, &args.output, config);
    opts.tokenizer = args.tokenizer;
    opts.vocab = args.vocab_corpus.map_or(VocabSource::FirstN, VocabSource::Corpus);
    opts.seed = args.seed;
    opts.dtype = FloatDtype::parse(&args.dtype)?;
    opts.expert_dtype = FloatDtype::parse(&args.expert_dtype)?;
    let report = port(&opts).with_context(|| format!("porting {}", args.from.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    eprintln!("wrote {} (report: port_report.json, port_report.txt)", args.output.display());
    Ok(())
}
