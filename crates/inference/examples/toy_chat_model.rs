//! Writes a randomly initialised small Bit-Axon checkpoint with a byte-level tokenizer, so the
//! CLI's `run`, `--chat` and `benchmark` can be tried without any download:
//!
//! `cargo run --release -p bit-axon-inference --example toy_chat_model -- /tmp/toy`
//! `cargo run --release -p bit-axon-cli -- run --model /tmp/toy --chat`
//!
//! The output is random bytes: the weights are untrained.

use bit_axon::{BitAxonConfig, SaveOptions};
use bit_axon_inference::byte_level_tokenizer_json;
use burn::prelude::*;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: toy_chat_model OUTPUT_DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    // The small preset with a vocabulary that covers the 259 byte-level tokens.
    let cfg = BitAxonConfig { vocab_size: 320, ..BitAxonConfig::small() };
    let device = Device::flex();
    device.seed(0);
    let model = cfg.init(&device);
    if let Err(e) = model.save(&cfg, &dir, SaveOptions::default()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    if let Err(e) = std::fs::write(dir.join("tokenizer.json"), byte_level_tokenizer_json()) {
        eprintln!("error: {}: {e}", dir.display());
        std::process::exit(1);
    }
    println!("wrote {}", dir.display());
}
