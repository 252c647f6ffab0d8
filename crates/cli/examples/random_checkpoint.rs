//! Writes a randomly initialised checkpoint of a preset (reference layout, f32 with f16 expert
//! stacks, as `BitAxonModel::save` writes by default), for trying `bit-axon quantize`, `info` and
//! `benchmark --model` at full size without a download:
//!
//! `cargo run --release -p bit-axon-cli --example random_checkpoint -- medium /tmp/medium`
//!
//! The weights are untrained.

use bit_axon::{BitAxonConfig, SaveOptions};
use burn::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [preset, dir] = args.as_slice() else {
        eprintln!("usage: random_checkpoint PRESET OUTPUT_DIR   (presets: small, medium, default)");
        std::process::exit(2);
    };
    let cfg = match BitAxonConfig::preset(preset) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let device = Device::flex();
    device.seed(0);
    let model = cfg.init(&device);
    if let Err(e) = model.save(&cfg, dir.as_ref(), SaveOptions::default()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!("{dir}: random `{preset}` checkpoint");
}
