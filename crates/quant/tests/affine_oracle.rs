//! MLX affine int4 against the reference's oracle (`tests/fixtures/layers/nf4.safetensors`):
//! quantize bit-exact (codes, scales, biases), dequantize within the README tolerances.

mod common;

use bit_axon_quant::{QuantFormat, QuantLinear, QuantMatrix, QuantizedWeight, affine, pack};
use burn::prelude::*;
use common::{File, fixture, max_abs_diff};

fn oracle() -> File {
    File::open(&fixture("nf4.safetensors"))
}

fn group_size(f: &File, case: &str) -> usize {
    let d_in = f.shape(&format!("{case}.w"))[1];
    d_in / f.shape(&format!("{case}.scales"))[1]
}

#[test]
fn quantize_is_bit_exact_on_f32_cases() {
    let f = oracle();
    for case in ["f32_randn", "f32_uniform_pos", "f32_with_zero_groups", "gs32", "gs128"] {
        let gs = group_size(&f, case);
        let w = f.f32s(&format!("{case}.w"));
        let g = affine::quantize(&w, gs);
        let want_codes = pack::unpack4(&f.u32s(&format!("{case}.packed")));
        assert_eq!(g.codes, want_codes, "{case}: codes");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&g.scales), bits(&f.f32s(&format!("{case}.scales"))), "{case}: scales");
        assert_eq!(bits(&g.biases), bits(&f.f32s(&format!("{case}.biases"))), "{case}: biases");
        assert_eq!(pack::pack4(&g.codes), f.u32s(&format!("{case}.packed")), "{case}: packed words");
        println!("{case}: gs {gs}, {} groups bit-exact", g.scales.len());
    }
}

#[test]
fn quantize_f16_bf16_matches_after_rounding_the_parameters() {
    // MLX widens f16/bf16 to f32, quantizes, and stores scales/biases in the input dtype.
    let f = oracle();
    for (case, round) in [
        ("f16_randn", (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32),
        ("bf16_randn", |v: f32| half::bf16::from_f32(v).to_f32()),
    ] {
        let gs = group_size(&f, case);
        let g = affine::quantize(&f.f32s(&format!("{case}.w")), gs);
        let want = pack::unpack4(&f.u32s(&format!("{case}.packed")));
        let same = g.codes.iter().zip(&want).filter(|(a, b)| a == b).count();
        println!("{case}: {same}/{} codes equal", want.len());
        assert_eq!(g.codes, want, "{case}: codes");
        let s: Vec<f32> = g.scales.iter().map(|&v| round(v)).collect();
        let b: Vec<f32> = g.biases.iter().map(|&v| round(v)).collect();
        assert_eq!(s, f.f32s(&format!("{case}.scales")), "{case}: scales");
        assert_eq!(b, f.f32s(&format!("{case}.biases")), "{case}: biases");
    }
}

#[test]
fn dequantize_matches_all_dtypes() {
    let f = oracle();
    for (case, tol) in [
        ("f32_randn", 1e-6),
        ("f32_uniform_pos", 1e-6),
        ("f32_with_zero_groups", 1e-6),
        ("gs32", 1e-6),
        ("gs128", 1e-6),
        ("f16_randn", 1e-2),
        ("bf16_randn", 2e-2),
    ] {
        let gs = group_size(&f, case);
        let shape = f.shape(&format!("{case}.w"));
        let m = QuantMatrix::from_parts(
            case,
            QuantFormat::Affine4,
            &shape,
            gs,
            f.u32s(&format!("{case}.packed")),
            f.f32s(&format!("{case}.scales")),
            Some(f.f32s(&format!("{case}.biases"))),
        )
        .unwrap();
        let want = f.f32s(&format!("{case}.dequant"));
        let err = max_abs_diff(&m.dequantize(), &want);
        // The plain-tensor (device) path must agree with the host path.
        let dev = QuantLinear::from_matrix(&m, &Device::flex()).dequantize();
        let dev: Vec<f32> = dev.into_data().convert::<f32>().try_to_vec().unwrap();
        let dev_err = max_abs_diff(&dev, &want);
        println!("{case}: host err {err:.2e}, device err {dev_err:.2e} (tol {tol:.0e})");
        assert!(err <= tol && dev_err <= tol, "{case}: dequant error {err} / {dev_err} > {tol}");
    }
}

#[test]
fn quantized_linear_matches_reference_output() {
    let f = oracle();
    let m = QuantMatrix::from_parts(
        "f32_randn",
        QuantFormat::Affine4,
        &f.shape("f32_randn.w"),
        64,
        f.u32s("f32_randn.packed"),
        f.f32s("f32_randn.scales"),
        Some(f.f32s("f32_randn.biases")),
    )
    .unwrap();
    let device = Device::flex();
    let layer = QuantLinear::from_matrix(&m, &device);
    let x = Tensor::<2>::from_data(TensorData::new(f.f32s("qlinear.input"), f.shape("qlinear.input")), &device);
    let y: Vec<f32> = layer.forward(x).into_data().convert::<f32>().try_to_vec().unwrap();
    let err = max_abs_diff(&y, &f.f32s("qlinear.output"));
    println!("qlinear: max_abs_err {err:.2e}");
    assert!(err <= 1e-5, "qlinear error {err}");
}

#[test]
fn shape_errors_name_the_tensor() {
    let e = QuantMatrix::quantize("layer_0.x", QuantFormat::Nf4, &[0.0; 96], &[1, 96], 64).unwrap_err();
    assert!(e.to_string().contains("layer_0.x") && e.to_string().contains("96"), "{e}");
    let e =
        QuantMatrix::from_parts("w", QuantFormat::Affine4, &[2, 64], 64, vec![0; 16], vec![0.0; 2], None).unwrap_err();
    assert!(e.to_string().contains("biases"), "{e}");
}
