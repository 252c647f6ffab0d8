//! `train`: fine-tune Bit-Axon from a TOML config, or watch a run.
//!
//! ```text
//! cargo run --release -p train -- --config configs/sft.toml [--set train.max_steps=20]... [--resume]
//! cargo run --release -p train -- watch runs/sft-quickstart
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use bit_axon_train::{RunOptions, run};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "train",
    version,
    about = "Fine-tune Bit-Axon (SFT or ORPO, with LoRA / DoRA / QLoRA) from a TOML config"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The run configuration (see configs/sft.toml, configs/orpo.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value: `--set train.max_steps=20 --set output.dir=runs/x` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Continue from the newest complete checkpoint in output.dir.
    #[arg(long)]
    resume: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show the training dashboard of a run going on in another process (from its metrics.jsonl).
    Watch { run_dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Watch { run_dir }) = cli.command {
        return match bit_axon_dashboard::watch(&run_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(config) = cli.config else {
        eprintln!("error: --config FILE is required (e.g. --config configs/sft.toml); see --help");
        return ExitCode::FAILURE;
    };
    let opts = RunOptions { config, sets: cli.sets, resume: cli.resume, quiet: false };
    match run(&opts, Vec::new()) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            let o = &r.outcome;
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            println!(
                "done: {} steps in {:.1} s, {:.0} tokens/s; train loss {}, eval loss {} (before training {}){}",
                o.last_step,
                o.seconds,
                o.tokens as f64 / o.seconds.max(1e-9),
                fmt(o.train_loss),
                fmt(o.eval_loss),
                fmt(o.first_eval_loss),
                r.peak_rss.map_or(String::new(), |b| format!("; peak memory {:.0} MiB", b as f64 / (1 << 20) as f64)),
            );
            if !o.last_eval.is_empty() {
                let first: std::collections::HashMap<_, _> = o.first_eval.iter().cloned().collect();
                let parts: Vec<String> = o
                    .last_eval
                    .iter()
                    .map(|(k, v)| match first.get(k) {
                        Some(f) => format!("{k} {f:.4} → {v:.4}"),
                        None => format!("{k} {v:.4}"),
                    })
                    .collect();
                println!("eval: {}", parts.join(", "));
            }
            if let Some(s) = &o.stopped {
                println!("stopped early: {s}");
            }
            for s in &o.summaries {
                println!("{s}");
            }
            println!("base model: {}", r.base_dir.display());
            println!("adapter saved to {}", r.adapter_dir.display());
            if let Some(c) = &r.outcome.last_checkpoint {
                println!("last checkpoint (for --resume): {}", c.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
