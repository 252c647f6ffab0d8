//! Full-forward throughput and one-token decode latency of a Bit-Axon preset, each reported
//! against a baseline measured in the same run:
//! - forward: achieved model GFLOP/s (≈ 2 × active parameters per token) over the device's
//!   dense matmul GFLOP/s;
//! - decode: the time of one GEMV over as many f32 weights as a token touches (the floor of a
//!   decode step, which must read them all) over the measured step latency.
//!
//! `cargo bench -p bit-axon-benches --bench model -- [--preset small] [--device flex] [--batch 4] [--seq 512] [--steps 64]`

use bit_axon::BitAxonConfig;
use bit_axon::device::parse_device;
use bit_axon_benches::{matmul_gflops, median, time_it, weight_gemv_seconds};
use burn::prelude::*;
use burn::tensor::Distribution;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn main() {
    let preset = arg("--preset", "small");
    let device = parse_device(&arg("--device", "flex")).expect("device");
    let batch: usize = arg("--batch", "4").parse().expect("--batch");
    let seq: usize = arg("--seq", "512").parse().expect("--seq");
    let steps: usize = arg("--steps", "64").parse().expect("--steps");
    let cfg = BitAxonConfig::preset(&preset).expect("preset");
    device.seed(0);
    let model = cfg.init(&device);
    let counts = cfg.param_counts();
    println!("preset {preset} on {device:?}: {} params, {} active/token", counts.total, counts.active_per_token);

    // Baselines measured now, on this device.
    let peak_gflops = matmul_gflops(&device, 1024, 1024, 1024);
    let floor = weight_gemv_seconds(&device, counts.active_per_token);
    println!(
        "baseline: dense f32 matmul 1024³ {peak_gflops:.1} GFLOP/s; one GEMV over {} f32 weights {:.3} ms",
        counts.active_per_token,
        floor * 1e3
    );

    // Full forward.
    let ids = Tensor::<2>::random([batch, seq], Distribution::Uniform(0.0, cfg.vocab_size as f64), &device).int();
    let times = time_it(&device, 1, 3, || {
        let _ = model.forward(ids.clone()).slice([0..1, 0..1, 0..1]).into_scalar::<f32>();
    });
    let t = median(&times).as_secs_f64();
    let tokens = (batch * seq) as f64;
    let gflops = 2.0 * counts.active_per_token as f64 * tokens / t / 1e9;
    println!(
        "forward  batch {batch} × seq {seq}: {:.1} ms, {:.0} tokens/s, ≈{gflops:.1} GFLOP/s = {:.2} of matmul peak",
        t * 1e3,
        tokens / t,
        gflops / peak_gflops
    );

    // One-token decode after a short prefill, batch 1.
    let prompt = ids.clone().narrow(0, 0, 1).narrow(1, 0, seq.min(64));
    let mut cache = model.new_cache();
    let _ = model.forward_cached(prompt, &mut cache).slice([0..1, 0..1, 0..1]).into_scalar::<f32>();
    let mut tok = ids.clone().narrow(0, 0, 1).narrow(1, 0, 1);
    let times = time_it(&device, 2, steps, || {
        let logits = model.forward_cached(tok.clone(), &mut cache);
        tok = logits.argmax(2).reshape([1, 1]);
        let _ = tok.clone().into_scalar::<i64>();
    });
    let step = median(&times).as_secs_f64();
    println!(
        "decode   batch 1: median {:.2} ms/token (p10 {:.2}, p90 {:.2}), {:.0} tokens/s; active-weight GEMV {:.3} ms = {:.3} of that floor",
        step * 1e3,
        times[times.len() / 10].as_secs_f64() * 1e3,
        times[times.len() * 9 / 10].as_secs_f64() * 1e3,
        1.0 / step,
        floor * 1e3,
        floor / step
    );
}
