//! `bit-axon`: inspect Bit-Axon configs and checkpoints, and run a forward pass for parity checks.

mod benchmark;
mod download;
mod forward;
mod info;
mod merge;
mod port;
mod quantize;
mod run;
mod upload;

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
    /// Builds a Bit-Axon checkpoint from a Hugging Face Qwen2 / Qwen2.5 checkpoint (weights and tokenizer).
    Port(port::PortArgs),
    /// Downloads a model repository from the Hugging Face Hub (HF_ENDPOINT, HF_HOME, HF_TOKEN).
    Download(download::DownloadArgs),
    /// Uploads a checkpoint directory to a Hugging Face Hub model repository.
    Upload(upload::UploadArgs),
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
        Command::Port(a) => port::run(a),
        Command::Download(a) => download::run(a),
        Command::Upload(a) => upload::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
