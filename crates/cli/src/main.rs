//! `bit-axon`: inspect Bit-Axon configs and checkpoints, and run a forward pass for parity checks.

mod forward;
mod info;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Forward(a) => forward::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
