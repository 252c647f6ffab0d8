//! NF4 against published bitsandbytes / QLoRA numbers, plus error statistics on Gaussian weights.

mod common;

use bit_axon_quant::nf4::{self, CODEBOOK, DQ_BLOCK, DoubleQuant};
use bit_axon_quant::{QuantExperts, QuantFormat, QuantLinear, QuantMatrix, QuantizedWeight, affine, pack};
use burn::prelude::*;
use common::{gaussian, max_abs_diff};

/// Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
fn norm_ppf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

#[test]
fn codebook_is_the_qlora_normal_quantile_construction() {
    // bitsandbytes create_normal_map(offset = 0.9677083, use_extra_value = True):
    // 8 positive quantiles, 7 negative, an exact zero, normalised by the largest.
    let offset = 0.967_708_3;
    let mut v: Vec<f64> = linspace(offset, 0.5, 9)[..8].iter().map(|&p| norm_ppf(p)).collect();
    v.extend(linspace(offset, 0.5, 8)[..7].iter().map(|&p| -norm_ppf(p)));
    v.push(0.0);
    v.sort_by(f64::total_cmp);
    let max = v[15];
    for (i, (&got, want)) in CODEBOOK.iter().zip(v.iter().map(|x| x / max)).enumerate() {
        assert!((f64::from(got) - want).abs() < 2e-6, "level {i}: {got} vs quantile construction {want}");
    }
}

/// The decision tree of bitsandbytes `dQuantizeNF4` (csrc/kernels.cu), thresholds as published.
#[allow(clippy::excessive_precision)]
fn bnb_tree(x: f32) -> u8 {
    if x > 0.03979014977812767 {
        if x > 0.3893125355243683 {
            if x > 0.6427869200706482 {
                if x > 0.8614784181118011 { 15 } else { 14 }
            } else if x > 0.5016634166240692 {
                13
            } else {
                12
            }
        } else if x > 0.2035212516784668 {
            if x > 0.2920137718319893 { 11 } else { 10 }
        } else if x > 0.1202552504837513 {
            9
        } else {
            8
        }
    } else if x > -0.33967943489551544 {
        if x > -0.13791173323988914 {
            if x > -0.045525018125772476 { 7 } else { 6 }
        } else if x > -0.23460740596055984 {
            5
        } else {
            4
        }
    } else if x > -0.6106329262256622 {
        if x > -0.4599952697753906 { 3 } else { 2 }
    } else if x > -0.8480964004993439 {
        1
    } else {
        0
    }
}

#[test]
fn encode_matches_bitsandbytes_decision_tree() {
    let mut xs: Vec<f32> = gaussian(20_000, 7).iter().map(|v| v * 0.5).collect();
    xs.extend((0..=2200).map(|i| -1.1 + i as f32 * 1e-3));
    for i in 0..15 {
        let mid = nf4::THRESHOLDS[i];
        // Each threshold is the midpoint of its two levels (to f32 rounding).
        let exact = 0.5 * (f64::from(CODEBOOK[i]) + f64::from(CODEBOOK[i + 1]));
        assert!((f64::from(mid) - exact).abs() <= 1e-7, "threshold {i}: {mid} vs midpoint {exact}");
        xs.extend([mid, f32::from_bits(mid.to_bits() + 1), f32::from_bits(mid.to_bits() - 1)]);
    }
    for &x in &xs {
        assert_eq!(nf4::encode(x), bnb_tree(x), "x = {x:e}");
    }
}

#[test]
fn round_trip_is_exact_on_codebook_multiples() {
    // A block holding every level times 3.5 (absmax 3.5) decodes to itself with codes 0..16.
    let w: Vec<f32> = (0..64).map(|i| CODEBOOK[i % 16] * 3.5).collect();
    let (codes, absmax) = nf4::quantize(&w, 64);
    assert_eq!(absmax, vec![3.5]);
    assert_eq!(codes, (0..64).map(|i| (i % 16) as u8).collect::<Vec<_>>());
    assert_eq!(nf4::dequantize(&codes, &absmax, 64), w);
    // Zero block → zeros; a block with one outlier keeps the outlier exactly.
    let (c, a) = nf4::quantize(&[0.0; 64], 64);
    assert_eq!(nf4::dequantize(&c, &a, 64), vec![0.0; 64]);
    let mut w = vec![0.01f32; 64];
    w[5] = -7.25;
    let (c, a) = nf4::quantize(&w, 64);
    let d = nf4::dequantize(&c, &a, 64);
    assert_eq!(d[5], -7.25);
    assert_eq!(d[0], 0.0, "0.01/7.25 is nearest the zero level");
}

fn stats(w: &[f32], d: &[f32]) -> (f64, f64) {
    let mae = w.iter().zip(d).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / w.len() as f64;
    let mean_abs = w.iter().map(|a| f64::from(a.abs())).sum::<f64>() / w.len() as f64;
    (mae, mae / mean_abs)
}

#[test]
fn gaussian_error_statistics() {
    let w = gaussian(64 * 8192, 42);
    let shape = [512, 1024];
    let nf = QuantMatrix::quantize("gauss", QuantFormat::Nf4, &w, &shape, 64).unwrap().dequantize();
    let af = QuantMatrix::quantize("gauss", QuantFormat::Affine4, &w, &shape, 64).unwrap().dequantize();
    let (nf_mae, nf_rel) = stats(&w, &nf);
    let (af_mae, af_rel) = stats(&w, &af);
    let rmse =
        |d: &[f32]| (w.iter().zip(d).map(|(a, b)| f64::from((a - b).powi(2))).sum::<f64>() / w.len() as f64).sqrt();
    println!(
        "N(0,1), block 64: NF4 MAE {nf_mae:.4} (rel {nf_rel:.4}, RMSE {:.4}); affine4 MAE {af_mae:.4} (rel {af_rel:.4}, RMSE {:.4})",
        rmse(&nf),
        rmse(&af)
    );
    // NF4's levels follow the Gaussian, so on Gaussian weights it beats uniform levels.
    assert!(nf_mae < af_mae, "NF4 {nf_mae} should beat affine {af_mae} on Gaussian weights");
    assert!(nf_rel < 0.12, "NF4 relative MAE {nf_rel}");
    // Double quantization of the absmax adds little error.
    let m = QuantMatrix::quantize("gauss", QuantFormat::Nf4, &w, &shape, 64).unwrap();
    let dq = DoubleQuant::encode(&m.scales).decode();
    let dq_w = nf4::dequantize(&m.codes(), &dq, 64);
    let (dq_mae, _) = stats(&w, &dq_w);
    println!("NF4 + double quant: MAE {dq_mae:.4}");
    assert!(dq_mae < nf_mae * 1.02, "double-quant MAE {dq_mae} vs {nf_mae}");
}

#[test]
fn double_quant_error_is_within_half_a_step() {
    let absmax: Vec<f32> = gaussian(1000, 3).iter().map(|v| 2.0 + v.abs()).collect();
    let dq = DoubleQuant::encode(&absmax);
    assert_eq!(dq.codes.len(), 1000);
    assert_eq!(dq.block_scales.len(), 1000usize.div_ceil(DQ_BLOCK));
    for (i, (a, b)) in absmax.iter().zip(dq.decode()).enumerate() {
        let step = dq.block_scales[i / DQ_BLOCK];
        assert!((a - b).abs() <= 0.5 * step * 1.0001 + 1e-6, "{i}: {a} vs {b} (step {step})");
    }
}

#[test]
fn pack_round_trip_and_layout() {
    let codes: Vec<u8> = (0..64).map(|i| ((i * 7) % 16) as u8).collect();
    assert_eq!(pack::unpack4(&pack::pack4(&codes)), codes);
    assert_eq!(pack::pack4(&[1, 2, 3, 4, 5, 6, 7, 8]), vec![0x8765_4321]);
}

#[test]
fn device_dequant_equals_host_for_both_formats_and_experts() {
    let device = Device::flex();
    for format in [QuantFormat::Nf4, QuantFormat::Affine4] {
        for gs in [32, 64, 128] {
            let w = gaussian(3 * 40 * 256, gs as u64);
            let m = QuantMatrix::quantize("stack", format, &w, &[3, 40, 256], gs).unwrap();
            let host = m.dequantize();
            let experts = QuantExperts::from_matrix(&m, &device);
            for e in 0..3 {
                let got: Vec<f32> = experts.expert(e).dequantize().into_data().convert::<f32>().try_to_vec().unwrap();
                let want = &host[e * 40 * 256..(e + 1) * 40 * 256];
                assert_eq!(max_abs_diff(&got, want), 0.0, "{format:?} gs {gs} expert {e}");
            }
            assert_eq!(experts.to_matrix(), m, "{format:?} gs {gs}: device round trip");
            let two = QuantMatrix::quantize("w", format, &w[..40 * 256], &[40, 256], gs).unwrap();
            assert_eq!(QuantLinear::from_matrix(&two, &device).to_matrix(), two);
        }
    }
    let _ = affine::quantize(&[0.0; 8], 8);
}
