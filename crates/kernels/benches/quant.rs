//! Fused 4-bit dequantize-matmul kernels: GEMV (decode, batch 1) and tiled GEMM (prefill, 2048
//! tokens) at the default config's projection shapes, with achieved bandwidth against the device's
//! copy bandwidth and the speed-up over a dense f16 matmul of the same shape, all measured in the
//! same run. Also the plain-tensor path (dequantize then f32 matmul) and, for the GEMM, the
//! transposed product (QLoRA's input gradient). Each shape is checked against the plain path.
//!
//! ```sh
//! CUDARC_CUDA_VERSION=13000 cargo bench -p bit-axon-kernels --features cuda --bench quant
//! # small smoke run on wgpu/lavapipe:
//! QBENCH_SHAPES=256x384 QBENCH_TOKENS=64 QBENCH_COPY_LOG2=22 cargo bench -p bit-axon-kernels --features wgpu --bench quant
//! ```
//! Knobs (env): `QBENCH_SHAPES` (`in x out` list, default
//! "2560x7680,2560x15360,7680x2560,2560x4096,4096x2560"; 2560x15360 is the gate and up projections
//! side by side, "2560×7680×2"), `QBENCH_TOKENS` (2048), `QBENCH_GS` (64), `QBENCH_ITERS` (GEMV
//! 500 calls, GEMM 25 calls), `QBENCH_COPY_LOG2` (30).
//!
//! Timing: GEMV calls are launched `iters` at a time back to back, their outputs kept, then the
//! device is synced; the figure is the mean per call (after two warm-up calls, which include JIT
//! and autotune); the same call on a 256×256 weight is printed as the per-call floor. GEMM calls
//! and the copy read one element back after each call (see `time_probe`).
//! Bytes counted for the 4-bit kernels: packed codes `N·K/2`, scales `4·N·K/gs` (and biases for
//! affine), input and output (f32). Dense f16: weight `2·N·K`, input and output (f16).

use std::io::Write;
use std::time::Instant;

use bit_axon_kernels::quant::{QuantWeight, quant_linear, quant_linear_t};
use bit_axon_quant::{QuantFormat, QuantLinear, QuantMatrix, QuantizedWeight};
use burn::prelude::*;
use burn::tensor::{DType, Distribution};

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_one(name: &str, default: usize) -> usize {
    let s = env_str(name, &default.to_string());
    s.trim().parse().unwrap_or_else(|_| panic!("{name}: `{s}` is not a number"))
}

fn device() -> Device {
    #[cfg(feature = "cuda")]
    return Device::cuda(0);
    #[cfg(not(feature = "cuda"))]
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// Mean seconds per call: two warm-up calls, then `iters` calls back to back (outputs kept alive
/// until the sync, so none can be dropped unexecuted), then a device sync.
fn time<T>(dev: &Device, iters: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..2 {
        drop(f());
    }
    dev.sync().expect("sync");
    let start = Instant::now();
    let outs: Vec<T> = (0..iters).map(|_| f()).collect();
    dev.sync().expect("sync");
    let t = start.elapsed().as_secs_f64() / iters as f64;
    drop(outs);
    t
}

/// Mean seconds per call for large outputs: each call's first element is read back before the
/// next call and the output dropped, so the memory pool reuses its buffers (allocation stays out of
/// the figure); the read-back latency is counted (small against a millisecond call).
fn time_probe(dev: &Device, iters: usize, mut f: impl FnMut() -> Tensor<2>) -> f64 {
    let probe = |t: Tensor<2>| drop(t.narrow(0, 0, 1).narrow(1, 0, 1).into_data());
    probe(f());
    dev.sync().expect("sync");
    let start = Instant::now();
    for _ in 0..iters {
        probe(f());
    }
    dev.sync().expect("sync");
    start.elapsed().as_secs_f64() / iters as f64
}

fn random_matrix(format: QuantFormat, n: usize, k: usize, gs: usize) -> QuantMatrix {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let w: Vec<f32> = (0..n * k)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
        })
        .collect();
    QuantMatrix::quantize("bench weight", format, &w, &[n, k], gs).expect("quantize")
}

fn max_rel_err(got: Tensor<2>, want: Tensor<2>) -> f32 {
    let scale = want.clone().abs().max().into_scalar::<f32>();
    let err = (got - want).abs().max().into_scalar::<f32>();
    err / scale.max(1e-30)
}

fn main() {
    let dev = device();
    dev.seed(1);
    let shapes: Vec<(usize, usize)> = env_str("QBENCH_SHAPES", "2560x7680,2560x15360,7680x2560,2560x4096,4096x2560")
        .split(',')
        .map(|s| {
            let v: Vec<usize> = s.split('x').map(|x| x.trim().parse().expect("QBENCH_SHAPES: INxOUT,..")).collect();
            (v[0], v[1])
        })
        .collect();
    let tokens = env_one("QBENCH_TOKENS", 2048);
    let gs = env_one("QBENCH_GS", 64);
    let gemv_iters = env_one("QBENCH_ITERS", 500);
    let gemm_iters = (gemv_iters / 20).max(3);
    println!("device: {dev:?}; group size {gs}; GEMM tokens {tokens}; iters GEMV {gemv_iters}, GEMM {gemm_iters}");

    let k = env_one("QBENCH_COPY_LOG2", 30);
    let big = Tensor::<2>::random([1, 1 << k], Distribution::Uniform(0.0, 1.0), &dev);
    let t = time_probe(&dev, 5, || big.clone().add_scalar(1.0));
    let copy = 2.0 * 4.0 * (1u64 << k) as f64 / t / 1e9;
    println!("copy bandwidth (x+1 over 2^{k} f32, read + write): {copy:.0} GB/s");
    drop(big);
    // The per-call floor of this path and timing method: the same GEMV on a 256×256 NF4 weight
    // (its 32 KB take ~10 ns at the copy bandwidth, so what is left is the cost of a call).
    {
        let m = random_matrix(QuantFormat::Nf4, 256, 256, gs);
        let l = QuantLinear::from_matrix(&m, &dev);
        let w = QuantWeight {
            packed: l.packed.clone(),
            scales: l.scales.clone(),
            biases: None,
            lut: l.lut.clone(),
            group_size: gs,
        };
        let x = Tensor::<2>::random([1, 256], Distribution::Uniform(-1.0, 1.0), &dev);
        let t = time(&dev, gemv_iters, || quant_linear(x.clone(), &w));
        println!("per-call floor (the 4-bit GEMV on a 256×256 weight, timed the same way): {:.1} µs", t * 1e6);
    }
    println!();
    println!("GEMV, batch 1 (x f32 for the 4-bit kernels, f16 for the dense matmul):");
    println!(
        "| in | out | format | 4-bit µs | GB/s | % copy | dense f16 µs | f16 GB/s | speed-up vs f16 | plain µs | max rel err vs plain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut gemm_rows = Vec::new();
    for &(d_in, d_out) in &shapes {
        let wf16 = Tensor::<2>::random([d_in, d_out], Distribution::Normal(0.0, 0.02), &dev).cast(DType::F16);
        let x16 = Tensor::<2>::random([1, d_in], Distribution::Uniform(-1.0, 1.0), &dev).cast(DType::F16);
        let t_dense = time(&dev, gemv_iters, || x16.clone().matmul(wf16.clone()));
        let dense_bytes = 2.0 * (d_in * d_out + d_in + d_out) as f64;
        for format in [QuantFormat::Nf4, QuantFormat::Affine4] {
            let m = random_matrix(format, d_out, d_in, gs);
            let layer = QuantLinear::from_matrix(&m, &dev);
            let w = QuantWeight {
                packed: layer.packed.clone(),
                scales: layer.scales.clone(),
                biases: layer.biases.clone(),
                lut: layer.lut.clone(),
                group_size: gs,
            };
            let x = Tensor::<2>::random([1, d_in], Distribution::Uniform(-1.0, 1.0), &dev);
            let t_q = time(&dev, gemv_iters, || quant_linear(x.clone(), &w));
            let t_plain = time(&dev, gemv_iters.min(20), || layer.forward_plain(x.clone()));
            let err = max_rel_err(quant_linear(x.clone(), &w), layer.forward_plain(x.clone()));
            let groups = (d_out * d_in / gs) as f64 * if layer.biases.is_some() { 8.0 } else { 4.0 };
            let bytes = (d_out * d_in) as f64 / 2.0 + groups + 4.0 * (d_in + d_out) as f64;
            let gbs = bytes / t_q / 1e9;
            println!(
                "| {d_in} | {d_out} | {format:?} | {:.1} | {gbs:.0} | {:.0}% | {:.1} | {:.0} | {:.2}× | {:.1} | {err:.1e} |",
                t_q * 1e6,
                100.0 * gbs / copy,
                t_dense * 1e6,
                dense_bytes / t_dense / 1e9,
                t_dense / t_q,
                t_plain * 1e6,
            );
            std::io::stdout().flush().ok();
            if format == QuantFormat::Nf4 {
                // GEMM at `tokens` rows (NF4 only), measured after the GEMV table.
                let xm = Tensor::<2>::random([tokens, d_in], Distribution::Uniform(-1.0, 1.0), &dev);
                let x16m = xm.clone().cast(DType::F16);
                let gm = Tensor::<2>::random([tokens, d_out], Distribution::Uniform(-1.0, 1.0), &dev);
                let t_gemm = time_probe(&dev, gemm_iters, || quant_linear(xm.clone(), &w));
                let t_gemm_t = time_probe(&dev, gemm_iters, || quant_linear_t(gm.clone(), &w));
                let t_dense_m = time_probe(&dev, gemm_iters, || x16m.clone().matmul(wf16.clone()));
                let err_m = max_rel_err(quant_linear(xm.clone(), &w), layer.forward_plain(xm.clone()));
                let err_t = max_rel_err(quant_linear_t(gm.clone(), &w), layer.backward_input_plain(gm.clone()));
                let flop = 2.0 * (tokens * d_in * d_out) as f64;
                let row = format!(
                    "| {d_in} | {d_out} | {:.3} | {:.1} | {:.3} | {:.1} | {:.3} | {:.1} | {:.2}× | {err_m:.1e} / {err_t:.1e} |",
                    t_gemm * 1e3,
                    flop / t_gemm / 1e12,
                    t_gemm_t * 1e3,
                    flop / t_gemm_t / 1e12,
                    t_dense_m * 1e3,
                    flop / t_dense_m / 1e12,
                    t_dense_m / t_gemm,
                );
                println!("GEMM row (table below): {row}");
                std::io::stdout().flush().ok();
                gemm_rows.push(row);
            }
        }
    }
    println!();
    println!("GEMM, {tokens} tokens, NF4 (x f32; dense: f16 x and W):");
    println!(
        "| in | out | 4-bit ms | TFLOP/s | transposed (g·W) ms | TFLOP/s | dense f16 ms | TFLOP/s | speed-up vs f16 | max rel err fwd / transposed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in gemm_rows {
        println!("{r}");
    }
}
