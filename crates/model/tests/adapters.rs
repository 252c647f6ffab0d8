//! LoRA / DoRA (and on a 4-bit base: QLoRA / QDoRA) against the reference's adapter oracle
//! (`tests/fixtures/layers/adapters.safetensors`: in 64, out 48, r 4, scale 20; copied from
//! `../shared/fixtures/layers`). Tolerance 1e-5 relative to max(1, max|ref|), as the fixtures'
//! README suggests for adapters.
//!
//! DoRA: the reference's forward drops the factor 2 on the cross term of the weight norm
//! (catalogue §4 B9), so its `dora.output` disagrees with its own `dora.fused_weight`. This
//! implementation uses the exact norm: its forward is checked against `x·fused_weightᵀ` (the
//! reference's fused weight, which is exact), and its distance to the buggy `dora.output` is
//! printed and required to be large (the quirk is real, not noise).

mod common;

use bit_axon::checkpoint::Loader;
use bit_axon::layers::*;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use common::*;

const REL: f32 = 1e-5;

fn oracle() -> Oracle {
    Oracle::open(&fixtures().join("layers/adapters.safetensors"))
}

fn float_base(o: &Oracle, dev: &Device) -> ProjectionWeight {
    let w = o.tensor::<2>("base.weight", dev); // [out, in]
    ProjectionWeight::Float(Linear { weight: Param::from_tensor(w.transpose()), bias: None })
}

fn quant_base(o: &Oracle, dev: &Device) -> ProjectionWeight {
    let p = Loader::new(&o.files, dev).projection("qbase", 64, 48).expect("4-bit base");
    assert!(p.is_quantized());
    p.weight
}

fn adapter(o: &Oracle, w: &ProjectionWeight, dora: bool, dev: &Device) -> Adapter {
    let m = dora.then(|| row_sq_norms(w).sqrt());
    Adapter::from_tensors(o.tensor("lora_a", dev), o.tensor("lora_b", dev), m, 20.0, 0.0, w, 7)
}

fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn x_wt(o: &Oracle, w: Tensor<2>, dev: &Device) -> Vec<f32> {
    vec(o.tensor::<3>("input", dev).matmul(w.transpose().unsqueeze::<3>()))
}

#[test]
fn lora_forward_and_fusion_match_reference() {
    let (o, dev) = (oracle(), device());
    let w = float_base(&o, &dev);
    let a = adapter(&o, &w, false, &dev);
    assert_close("lora.output", &vec(a.forward(&w, o.tensor::<3>("input", &dev))), &o.vec("lora.output"), REL);
    assert_close("lora.fused_weight", &vec(a.fused_weight(&w)), &o.vec("lora.fused_weight"), REL);
}

#[test]
fn dora_forward_equals_its_fused_weight_and_fusion_matches_reference() {
    let (o, dev) = (oracle(), device());
    let w = float_base(&o, &dev);
    let a = adapter(&o, &w, true, &dev);
    let m = a.magnitude.as_ref().unwrap().val();
    assert_close("dora.m", &vec(m), &o.vec("dora.m"), REL);
    let fused = a.fused_weight(&w);
    assert_close("dora.fused_weight", &vec(fused.clone()), &o.vec("dora.fused_weight"), REL);
    let y = vec(a.forward(&w, o.tensor::<3>("input", &dev)));
    assert_close(
        "dora forward vs x·W'ᵀ (reference fused)",
        &y,
        &x_wt(&o, o.tensor("dora.fused_weight", &dev), &dev),
        REL,
    );
    let (quirk, _) = max_err(&y, &o.vec("dora.output"));
    println!("distance to the reference's dora.output (missing factor 2): {quirk:.3e}");
    assert!(quirk > 1e-2, "the reference's DoRA forward quirk should show ({quirk})");
}

#[test]
fn qlora_and_qdora_on_a_4bit_base() {
    let (o, dev) = (oracle(), device());
    let w = quant_base(&o, &dev);
    let a = adapter(&o, &w, false, &dev);
    assert_close("qlora.output", &vec(a.forward(&w, o.tensor::<3>("input", &dev))), &o.vec("qlora.output"), REL);
    assert_close("qlora.fused_weight_dequant", &vec(a.fused_weight(&w)), &o.vec("qlora.fused_weight_dequant"), REL);
    let d = adapter(&o, &w, true, &dev);
    assert_close("qdora.m", &vec(d.magnitude.as_ref().unwrap().val()), &o.vec("qdora.m"), REL);
    let y = vec(d.forward(&w, o.tensor::<3>("input", &dev)));
    assert_close("qdora forward vs x·W'ᵀ", &y, &x_wt(&o, d.fused_weight(&w), &dev), REL);
}

/// The exact norm is differentiable: gradients of A and B through DoRA match central finite
/// differences of the forward (f32, step 1e-2 on a loss of O(1); tolerance 2e-2 relative).
#[test]
fn dora_gradient_matches_finite_differences() {
    let (o, dev) = (oracle(), device());
    let ad = dev.clone().autodiff();
    let w = float_base(&o, &ad);
    let x = o.tensor::<3>("input", &ad);
    let b0 = o.tensor::<2>("lora_b", &dev).mul_scalar(0.05);
    let a0 = o.tensor::<2>("lora_a", &dev);
    let loss_of = |a: Tensor<2>, b: Tensor<2>| -> Tensor<1> {
        // A fresh leaf (the magnitude is a parameter of its own).
        let m = Tensor::<1>::from_data(row_sq_norms(&w).sqrt().add_scalar(0.3).into_data(), &ad);
        let ad_ = Adapter::from_tensors(a, b, Some(m), 2.0, 0.0, &w, 1);
        ad_.forward(&w, x.clone()).powi_scalar(2).mean().reshape([1])
    };
    let a = Tensor::<2>::from_data(a0.to_data(), &ad).require_grad();
    let b = Tensor::<2>::from_data(b0.to_data(), &ad).require_grad();
    let grads = loss_of(a.clone(), b.clone()).backward();
    let ga = vec(a.grad(&grads).unwrap());
    let gb = vec(b.grad(&grads).unwrap());
    let h = 1e-2f32;
    let eval = |a: &Tensor<2>, b: &Tensor<2>| vec(loss_of(a.clone(), b.clone()))[0];
    for (which, idx) in [(0, 3usize), (0, 100), (1, 5), (1, 150)] {
        let (base, g) = if which == 0 { (a0.clone(), ga[idx]) } else { (b0.clone(), gb[idx]) };
        let mut plus = vec(base.clone());
        let mut minus = plus.clone();
        plus[idx] += h;
        minus[idx] -= h;
        let shape = base.dims();
        let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, shape), &ad);
        let (ap, am, bp, bm) = if which == 0 {
            (t(plus), t(minus), Tensor::from_data(b0.to_data(), &ad), Tensor::from_data(b0.to_data(), &ad))
        } else {
            (Tensor::from_data(a0.to_data(), &ad), Tensor::from_data(a0.to_data(), &ad), t(plus), t(minus))
        };
        let fd = (eval(&ap, &bp) - eval(&am, &bm)) / (2.0 * h);
        println!("param {which} [{idx}]: autodiff {g:.6e}, finite difference {fd:.6e}");
        assert!((g - fd).abs() <= 2e-2 * g.abs().max(fd.abs()).max(1e-3), "gradient mismatch");
    }
}
