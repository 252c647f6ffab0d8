//! `train`: fine-tune Bit-Axon from a TOML config.
//!
//! ```text
//! cargo run --release -p train -- --config configs/sft.toml [--set train.max_steps=20]... [--resume]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use bit_axon_train::{RunOptions, run};
use clap::Parser;

#[derive(Parser)]
#[command(name = "train", version, about = "Fine-tune Bit-Axon (SFT with LoRA / DoRA / QLoRA) from a TOML config")]
struct Cli {
    /// The run configuration (see configs/sft.toml).
    #[arg(long)]
    config: PathBuf,
    /// Override a config value: `--set train.max_steps=20 --set output.dir=runs/x` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Continue from the newest complete checkpoint in output.dir.
    #[arg(long)]
    resume: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = RunOptions { config: cli.config, sets: cli.sets, resume: cli.resume, quiet: false };
    match run(&opts, Vec::new()) {
        Ok(r) => {
            let o = &r.outcome;
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "done: {} steps in {:.1} s, {:.0} tokens/s; train loss {}, eval loss {} (first eval {}){}",
                o.last_step,
                o.seconds,
                o.tokens as f64 / o.seconds.max(1e-9),
                fmt(o.train_loss),
                fmt(o.eval_loss),
                fmt(o.first_eval_loss),
                r.peak_rss.map_or(String::new(), |b| format!("; peak memory {:.0} MiB", b as f64 / (1 << 20) as f64)),
            );
            if let Some(s) = &o.stopped {
                println!("stopped early: {s}");
            }
            for s in &o.summaries {
                println!("{s}");
            }
            println!("base model: {}", r.base_dir.display());
            println!("adapter saved to {}", r.adapter_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
