//! `bit-axon`: inspect Bit-Axon configs and checkpoints, and run a forward pass for parity checks.

mod benchmark;
mod forward;
mod info;
mod merge;
mod quantize;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bit-axon", version, about = "Bit-Axon hybrid SSM/attention/MoE language model on Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Layer layout, parameter counts and weight memory, computed from the shapes (nothing is allocated).
    Info(info::InfoArgs),
    /// One full forward pass over `input_ids` from a safetensors file; writes logits (and hidden states).
    Forward(forward::ForwardArgs),
    /// Generate text (or token ids) from a prompt; `--chat` for an interactive conversation.
    Run(run::RunArgs),
    /// Prefill and decode speed, time to first token, memory and weight-read bandwidth.
    Benchmark(benchmark::BenchmarkArgs),
    /// Writes a 4-bit (NF4 or MLX affine int4) copy of a float checkpoint that `forward`/`info` load.
    Quantize(quantize::QuantizeArgs),
    /// Folds a LoRA/DoRA adapter (PEFT layout) into its base model and writes a checkpoint.
    Merge(merge::MergeArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Forward(a) => forward::run(a),
        Command::Run(a) => run::run(a),
        Command::Benchmark(a) => benchmark::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Merge(a) => merge::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
