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
use burn::tensor::Distribution;

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
    v
}

#[test]
fn forward_matches_plain_path() {
    let (gpu, cpu) = (gpu(), Device::flex());
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
                // The fixed outputs-per-cube variants at 1 and 3 rows only (each shape is a JIT compile).
                let fixed = rows == 1 || rows == 3;
                for gemv in GemvKernel::ALL.into_iter().filter(|g| fixed || !matches!(g, GemvKernel::RowsPerCube(_))) {
                    let got = to_vec(quant_linear_with(x.clone().to_device(&gpu), &w, gemv));
                    assert_close(&format!("{what} {gemv:?}"), &got, &want, 1e-5);
                }
            }
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

#[test]
#[should_panic(expected = "has last axis")]
fn wrong_input_width_is_rejected() {
    let gpu = gpu();
    let m = matrix(QuantFormat::Nf4, 8, 64, 32, 7);
    let w = weight(&QuantLinear::from_matrix(&m, &gpu));
    let _ = quant_linear(Tensor::<2>::zeros([2, 63], &gpu), &w);
}
