//! The fused 4-bit matmul kernels on wgpu (Mesa lavapipe in CI) against the plain-tensor path
//! (`bit_axon_quant`'s dequantize-then-matmul, run on flex): forward (GEMV for ≤ 8 rows, tiled
//! GEMM above), the transposed product, and the gradient w.r.t. `x` through autodiff. Weights are
//! real quantizations (NF4 and affine int4) of random matrices whose sizes are not multiples of
//! the kernels' tiles. Needs a Vulkan driver (`mesa-vulkan-drivers`).
//! With the `cuda` feature, `BIT_AXON_TEST_DEVICE=cuda` runs the same comparisons on CUDA device 0.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use bit_axon_kernels::quant::{
    GEMV_MAX_ROWS, GemvKernel, QuantWeight, quant_linear, quant_linear_t, quant_linear_with,
};
use bit_axon_quant::{QuantFormat, QuantLinear, QuantMatrix, QuantizedWeight};
use burn::prelude::*;
use burn::tensor::{DType, Distribution};

mod common;
use common::{assert_close, gpu, to_vec};

/// A random `[n, k]` matrix (normal, with a few rows scaled up so groups differ), quantized.
fn matrix(format: QuantFormat, n: usize, k: usize, gs: usize, seed: u64) -> QuantMatrix {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let w: Vec<f32> =
        (0..n * k).map(|i| (next() + next() + next()) * (1.0 + (i / k % 3) as f32) + 0.1 * next()).collect();
    QuantMatrix::quantize("test weight", format, &w, &[n, k], gs).expect("quantize")
}

fn weight(l: &QuantLinear) -> QuantWeight {
    QuantWeight {
        packed: l.packed.clone(),
        scales: l.scales.clone(),
        biases: l.biases.clone(),
        lut: l.lut.clone(),
        group_size: l.group_size,
    }
}

struct Case {
    format: QuantFormat,
    n: usize,
    k: usize,
    gs: usize,
}

const FORMATS: [QuantFormat; 2] = [QuantFormat::Nf4, QuantFormat::Affine4];

/// `(out, in, group)`: `out` not a multiple of 8 / 64 rows, `in` not a multiple of the 32-wide
/// reduction step or the 64-wide output tile.
fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (i, format) in FORMATS.into_iter().enumerate() {
        v.push(Case { format, n: 45 + i, k: 96, gs: 32 });
        v.push(Case { format, n: 70, k: 192 + 64 * i, gs: 64 });
        v.push(Case { format, n: 13, k: 384, gs: 128 });
    }
    // Long rows: the GEMV's unrolled main loop (4 words per lane in flight) plus its remainder;
    // `Rows` strides 128 threads over 200 words, and falls back to `Lanes` at 8 rows (shared memory).
    v.push(Case { format: QuantFormat::Nf4, n: 11, k: 1600, gs: 64 });
    v.push(Case { format: QuantFormat::Affine4, n: 21, k: 1088, gs: 64 });
    // Small scale groups (16, 8 codes) on rows longer than one pass of 32 lanes (130, 65 words).
    v.push(Case { format: QuantFormat::Nf4, n: 7, k: 1040, gs: 16 });
    v.push(Case { format: QuantFormat::Affine4, n: 6, k: 520, gs: 8 });
    // Rows the streaming GEMV splits exactly into whole planes (320 words: 160 threads × 2 words at
    // 32 lanes; 640 words: 160 × 4), the other cases take its bounds-checked split.
    v.push(Case { format: QuantFormat::Nf4, n: 19, k: 2560, gs: 64 });
    v.push(Case { format: QuantFormat::Affine4, n: 9, k: 5120, gs: 128 });
    v
}

#[test]
fn forward_matches_plain_path() {
    let (gpu, cpu) = (gpu(), Device::flex());
    let stream_before = bit_axon_kernels::quant::stream_launches();
    let slices_before = bit_axon_kernels::quant::slice_launches();
    for (ci, c) in cases().iter().enumerate() {
        let m = matrix(c.format, c.n, c.k, c.gs, ci as u64);
        let (lg, lc) = (QuantLinear::from_matrix(&m, &gpu), QuantLinear::from_matrix(&m, &cpu));
        let w = weight(&lg);
        for rows in [1usize, 2, 3, 8, 9, 37] {
            let x = Tensor::<2>::random([rows, c.k], Distribution::Uniform(-1.0, 1.0), &cpu);
            let want = to_vec(QuantizedWeight::forward(&lc, x.clone()));
            let got = to_vec(quant_linear(x.clone().to_device(&gpu), &w));
            let what = format!("{:?} out={} in={} gs={} rows={rows}", c.format, c.n, c.k, c.gs);
            assert_close(&what, &got, &want, 1e-5);
            if rows <= GEMV_MAX_ROWS {
                // The fixed outputs-per-cube variants at 1 and 3 rows (`Rows`), 1 and 2 (`Stream`)
                // only: each shape is a JIT compile.
                let keep = |g: &GemvKernel| match g {
                    GemvKernel::RowsPerCube(_) => rows == 1 || rows == 3,
                    GemvKernel::StreamWith { .. } | GemvKernel::Slices { .. } => rows <= 2,
                    _ => true,
                };
                for gemv in GemvKernel::ALL.into_iter().filter(keep) {
                    let got = to_vec(quant_linear_with(x.clone().to_device(&gpu), &w, gemv));
                    assert_close(&format!("{what} {gemv:?}"), &got, &want, 1e-5);
                }
            }
        }
    }
    // `Stream` needs a fixed plane size (else it ran as `Rows`, compared above all the same);
    // `StreamWith` always runs the streaming kernel.
    let launches = bit_axon_kernels::quant::stream_launches() - stream_before;
    eprintln!("quant_gemv_stream launches: {launches}");
    assert!(launches > 0, "the streaming GEMV never ran");
    let slices = bit_axon_kernels::quant::slice_launches() - slices_before;
    eprintln!("quant_gemv_slices launches: {slices}");
    assert!(slices > 0, "the slices GEMV never ran");
}

/// `t [r, c]` as a view into a wider `[r, c + pad]` buffer: rows contiguous, row stride above the
/// width (what CUDA's padded allocations look like; lavapipe never pads on its own).
fn padded(t: Tensor<2>, pad: usize) -> Tensor<2> {
    let c = t.dims()[1];
    Tensor::cat(vec![t.clone(), t.narrow(1, 0, pad.min(c))], 1).narrow(1, 0, c)
}

fn padded_int(t: Tensor<2, Int>, pad: usize) -> Tensor<2, Int> {
    let c = t.dims()[1];
    Tensor::cat(vec![t.clone(), t.narrow(1, 0, pad.min(c))], 1).narrow(1, 0, c)
}

#[test]
fn weights_with_padded_rows_match_plain_path() {
    let (gpu, cpu) = (gpu(), Device::flex());
    let padded_cases = [
        Case { format: QuantFormat::Affine4, n: 45, k: 96, gs: 32 },
        Case { format: QuantFormat::Nf4, n: 19, k: 2560, gs: 64 },
    ];
    for (ci, c) in padded_cases.iter().enumerate() {
        let m = matrix(c.format, c.n, c.k, c.gs, 40 + ci as u64);
        let (lg, lc) = (QuantLinear::from_matrix(&m, &gpu), QuantLinear::from_matrix(&m, &cpu));
        let mut w = weight(&lg);
        // A row stride of 15 words (12 + 3: scalar loads only), then 324 (320 + 4: 128-bit loads).
        w.packed = padded_int(w.packed, 3 + ci);
        w.scales = padded(w.scales, 1);
        w.biases = w.biases.map(|b| padded(b, 2));
        for rows in [1usize, 3, 9] {
            let x = Tensor::<2>::random([rows, c.k], Distribution::Uniform(-1.0, 1.0), &cpu);
            let want = to_vec(QuantizedWeight::forward(&lc, x.clone()));
            for gemv in [
                GemvKernel::Lanes,
                GemvKernel::Rows,
                GemvKernel::Stream,
                GemvKernel::StreamWith { rows: 2, chunks: 2 },
                GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 },
            ] {
                let got = to_vec(quant_linear_with(x.clone().to_device(&gpu), &w, gemv));
                let what = format!("padded rows {:?} out={} in={} rows={rows} {gemv:?}", c.format, c.n, c.k);
                assert_close(&what, &got, &want, 1e-5);
            }
        }
        for rows in [1usize, 9] {
            let g = Tensor::<2>::random([rows, c.n], Distribution::Uniform(-1.0, 1.0), &cpu);
            let want = to_vec(lc.backward_input(g.clone()));
            let got = to_vec(quant_linear_t(g.to_device(&gpu), &w));
            assert_close(&format!("padded rows {:?} transposed rows={rows}", c.format), &got, &want, 1e-5);
        }
    }
}

#[test]
fn transposed_matches_plain_path() {
    let (gpu, cpu) = (gpu(), Device::flex());
    for (ci, c) in cases().iter().enumerate() {
        let m = matrix(c.format, c.n, c.k, c.gs, 100 + ci as u64);
        let (lg, lc) = (QuantLinear::from_matrix(&m, &gpu), QuantLinear::from_matrix(&m, &cpu));
        let w = weight(&lg);
        for rows in [1usize, 9, 37] {
            let g = Tensor::<2>::random([rows, c.n], Distribution::Uniform(-1.0, 1.0), &cpu);
            let want = to_vec(lc.backward_input(g.clone()));
            let got = to_vec(quant_linear_t(g.to_device(&gpu), &w));
            let what = format!("transposed {:?} out={} in={} gs={} rows={rows}", c.format, c.n, c.k, c.gs);
            assert_close(&what, &got, &want, 1e-5);
        }
    }
}

/// A 3-D input `[2, 5, in]` (GEMM path) and `[1, 2, in]` (GEMV path): the gradient w.r.t. `x` of
/// `Σ y ⊙ r` through autodiff equals the plain path's (flex autodiff of dequantize-then-matmul).
#[test]
fn input_gradient_matches_plain_path() {
    let (gpu, cpu) = (gpu().autodiff(), Device::flex().autodiff());
    for (ci, format) in FORMATS.into_iter().enumerate() {
        let (n, k, gs) = (70, 96, 32);
        let m = matrix(format, n, k, gs, 200 + ci as u64);
        let (lg, lc) = (QuantLinear::from_matrix(&m, &gpu), QuantLinear::from_matrix(&m, &cpu));
        let w = weight(&lg);
        for (b, l) in [(2usize, 5usize), (1, 2)] {
            let x = Tensor::<3>::random([b, l, k], Distribution::Uniform(-1.0, 1.0), &cpu.clone().inner());
            let r = Tensor::<3>::random([b, l, n], Distribution::Uniform(-1.0, 1.0), &cpu.clone().inner());
            let xc = x.clone().autodiff().require_grad();
            let yc = QuantizedWeight::forward(&lc, xc.clone());
            let gc = (yc.clone() * r.clone().autodiff()).sum().backward();
            let want = to_vec(xc.grad(&gc).expect("flex grad x"));
            let xg = x.to_device(&gpu.clone().inner()).autodiff().require_grad();
            let yg = quant_linear(xg.clone(), &w);
            let gg = (yg.clone() * r.to_device(&gpu.clone().inner()).autodiff()).sum().backward();
            let got = to_vec(xg.grad(&gg).expect("wgpu grad x"));
            assert_close(&format!("{format:?} [{b},{l}] y"), &to_vec(yg.inner()), &to_vec(yc.inner()), 1e-5);
            assert_close(&format!("{format:?} [{b},{l}] grad x"), &got, &want, 1e-5);
        }
    }
}

/// f16 activations (the model's decode dtype): the output equals the plain path's on the same
/// f16-rounded `x` (in f32). Tolerances: `f32` decode with f16 input and output, 5e-4 (the output's
/// rounding is 2.4e-4); on CUDA, NF4 takes the `f16x2` path (pair table, products summed in f16
/// within each word of 8 codes, f16 table values), 4e-3. Sizes as in `cases`: rows that are not a
/// whole number of vectors per lane, groups of 32-128, 1-3 input rows (3: not `Slices`).
#[test]
fn half_precision_input_matches_plain_path() {
    let (gpu, cpu) = (gpu(), Device::flex());
    let cuda = std::env::var("BIT_AXON_TEST_DEVICE").is_ok_and(|v| v == "cuda");
    let half2_before = bit_axon_kernels::quant::half2_launches();
    let half_cases = [
        Case { format: QuantFormat::Nf4, n: 45, k: 96, gs: 32 },
        Case { format: QuantFormat::Nf4, n: 70, k: 1600, gs: 64 },
        Case { format: QuantFormat::Nf4, n: 19, k: 2560, gs: 128 },
        Case { format: QuantFormat::Affine4, n: 21, k: 1088, gs: 64 },
    ];
    for (ci, c) in half_cases.iter().enumerate() {
        let m = matrix(c.format, c.n, c.k, c.gs, 300 + ci as u64);
        let (lg, lc) = (QuantLinear::from_matrix(&m, &gpu), QuantLinear::from_matrix(&m, &cpu));
        let w = weight(&lg);
        let tol = if cuda && c.format == QuantFormat::Nf4 { 4e-3 } else { 5e-4 };
        for rows in [1usize, 2, 3] {
            let x = Tensor::<2>::random([rows, c.k], Distribution::Uniform(-1.0, 1.0), &cpu)
                .cast(DType::F16)
                .cast(DType::F32);
            let want = to_vec(QuantizedWeight::forward(&lc, x.clone()));
            for gemv in [GemvKernel::Auto, GemvKernel::Slices { lanes: 16, rows: 3, depth: 1 }, GemvKernel::Rows] {
                let xg = x.clone().cast(DType::F16).to_device(&gpu);
                let y = quant_linear_with(xg, &w, gemv);
                assert_eq!(y.dtype(), DType::F16, "the output keeps the input's dtype");
                let what = format!("f16 {:?} out={} in={} gs={} rows={rows} {gemv:?}", c.format, c.n, c.k, c.gs);
                assert_close(&what, &to_vec(y.cast(DType::F32)), &want, tol);
            }
        }
    }
    let half2 = bit_axon_kernels::quant::half2_launches() - half2_before;
    eprintln!("f16x2 launches: {half2}");
    assert_eq!(half2 > 0, cuda, "the f16x2 path runs on CUDA (NF4, f16 input), and only there");
}

#[test]
#[should_panic(expected = "has last axis")]
fn wrong_input_width_is_rejected() {
    let gpu = gpu();
    let m = matrix(QuantFormat::Nf4, 8, 64, 32, 7);
    let w = weight(&QuantLinear::from_matrix(&m, &gpu));
    let _ = quant_linear(Tensor::<2>::zeros([2, 63], &gpu), &w);
}
