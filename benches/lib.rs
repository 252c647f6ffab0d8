//! Shared measurement helpers for the benchmarks: timing with device sync, and the same-run
//! baselines (matmul throughput, memory bandwidth) that each figure is reported against.

use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::Distribution;

/// Runs `f` `warmup` times, then `iters` times; returns the per-iteration durations, sorted.
pub fn time_it(device: &Device, warmup: usize, iters: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..warmup {
        f();
        device.sync().expect("device sync");
    }
    let mut out: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            device.sync().expect("device sync");
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

pub fn median(d: &[Duration]) -> Duration {
    d[d.len() / 2]
}

/// Dense f32 matmul throughput in GFLOP/s on `[m, k] × [k, n]`, fresh inputs each time.
pub fn matmul_gflops(device: &Device, m: usize, k: usize, n: usize) -> f64 {
    let a = Tensor::<2>::random([m, k], Distribution::Default, device);
    let b = Tensor::<2>::random([k, n], Distribution::Default, device);
    let times = time_it(device, 1, 5, || {
        let c = a.clone().matmul(b.clone());
        let _ = c.sum().into_scalar::<f32>();
    });
    2.0 * (m * k * n) as f64 / median(&times).as_secs_f64() / 1e9
}

/// Seconds for one f32 GEMV `[1, k] × [k, n]` whose matrix holds `params` weights (k = 1024):
/// the cost of reading that many weights once, the floor of a decode step.
pub fn weight_gemv_seconds(device: &Device, params: usize) -> f64 {
    let k = 1024;
    let n = params.div_ceil(k);
    let w = Tensor::<2>::random([k, n], Distribution::Default, device);
    let x = Tensor::<2>::random([1, k], Distribution::Default, device);
    let times = time_it(device, 2, 9, || {
        let _ = x.clone().matmul(w.clone()).sum().into_scalar::<f32>();
    });
    median(&times).as_secs_f64()
}
