//! Diagnostic for `bit-axon benchmark`'s read-bandwidth ceiling (`measure_read_gbps`), which printed
//! 5.6-14.4 TB/s on a 4.8 TB/s H200: times a full `sum` over a large f32 vector made in several
//! ways, and checks the sum against the value it must have, so a reduction that skipped part of its
//! input shows up as a wrong value, not only as a fast time.
//!
//! `cargo run --release -p bit-axon-cli --features cuda --example read_probe -- cuda [LOG2_N]`

use std::time::Instant;

use bit_axon::device::parse_device;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

fn best_of(mut f: impl FnMut() -> f32) -> (f64, f32) {
    let v = f();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let _ = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, v)
}

fn report(what: &str, n: usize, (t, v): (f64, f32), want: f64) {
    let gbps = n as f64 * 4.0 / t / 1e9;
    println!(
        "{what:<44} {:>9.1} µs  {gbps:>8.1} GB/s  sum {v:.6e} (expected {want:.6e}, ratio {:.4})",
        t * 1e6,
        v as f64 / want
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = parse_device(args.first().map(String::as_str).unwrap_or("flex"))?;
    let log2: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(28);
    let n = 1usize << log2;
    println!("n = 2^{log2} f32 = {} MiB on {device:?}", n * 4 >> 20);
    let scalar = |t: Tensor<1>| t.into_data().convert::<f32>().try_to_vec::<f32>().map(|v| v[0]).unwrap_or(f32::NAN);

    // As `measure_read_gbps` did before 2026-12-02: random uniform [0, 1), expected sum ≈ n / 2.
    let x = Tensor::<1>::random([n], Distribution::Default, &device);
    report("random, sum()", n, best_of(|| scalar(x.clone().sum())), n as f64 / 2.0);
    report(
        "random, reshape [n/1024, 1024], sum()",
        n,
        best_of(|| scalar(x.clone().reshape([n / 1024, 1024]).sum())),
        n as f64 / 2.0,
    );
    report(
        "random, sum_dim(1) of [n/1024, 1024], sum()",
        n,
        best_of(|| scalar(x.clone().reshape([n / 1024, 1024]).sum_dim(1).sum())),
        n as f64 / 2.0,
    );
    drop(x);

    // Host data: all ones, so the exact sum is n (f32 accumulation may round: ratio ≈ 1).
    let ones = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; n], [n]), &device);
    report("ones from host, sum()", n, best_of(|| scalar(ones.clone().sum())), n as f64);
    report(
        "ones from host, sum_dim(1) of [n/1024, 1024]",
        n,
        best_of(|| scalar(ones.clone().reshape([n / 1024, 1024]).sum_dim(1).sum())),
        n as f64,
    );
    // A device-side value: the row index pattern, sum = 1024 · Σ_{i<n/1024} (i mod 7).
    let rows = n / 1024;
    let pat: Vec<f32> = (0..n).map(|i| ((i / 1024) % 7) as f32).collect();
    let want: f64 = (0..rows).map(|r| (r % 7) as f64 * 1024.0).sum();
    let p = Tensor::<1>::from_data(TensorData::new(pat, [n]), &device);
    report("pattern from host, sum()", n, best_of(|| scalar(p.clone().sum())), want);
    Ok(())
}
