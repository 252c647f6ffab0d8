//! Adapters on a whole model: training changes only the adapters (the base stays bit-identical),
//! PEFT files round-trip, and merging gives the adapter model's logits (within 1e-4, LoRA and
//! DoRA, float and 4-bit bases).

use bit_axon::BitAxonConfig;
use bit_axon::BitAxonModel;
use bit_axon_quant::QuantFormat;
use bit_axon_train::adapters;
use bit_axon_train::config::AdapterSection;
use bit_axon_train::lm::CausalLm;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;

fn tiny() -> BitAxonConfig {
    BitAxonConfig {
        vocab_size: 64,
        hidden_dim: 32,
        num_layers: 3,
        num_heads: 2,
        d_source_model: 32,
        ssm_d_state: 4,
        ssm_d_conv: 3,
        swa_window_size: 8,
        moe_num_experts: 4,
        moe_top_k: 2,
        moe_intermediate_dim: 32,
        ..BitAxonConfig::small()
    }
}

fn section(kind: &str) -> AdapterSection {
    AdapterSection { kind: kind.into(), rank: 4, alpha: 8.0, ..Default::default() }
}

fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Non-zero `B` so the adapters change the output.
fn perturb(mut m: BitAxonModel, seed: u64) -> BitAxonModel {
    let dev = Device::flex();
    dev.seed(seed);
    m.visit_projections_mut(&mut |_, p| {
        if let Some(a) = &mut p.adapter {
            let shape = a.lora_b.dims();
            let b = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.2), &dev);
            a.lora_b = burn::module::Param::initialized(a.lora_b.id, b);
            if let Some(mg) = &mut a.magnitude {
                let v = mg.val().mul_scalar(1.1);
                *mg = burn::module::Param::initialized(mg.id, v);
            }
        }
    });
    m
}

/// Fixed token ids, not drawn from the device's RNG: the flex RNG is shared by the tests running
/// in parallel, so `seed` + `random` here gave different ids to two calls of one test now and then.
fn ids(dev: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = (0..40).map(|i| (i * 37 + 11) % 64).collect();
    Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(v, [2, 20]), dev)
}

#[test]
fn training_changes_only_the_adapters() {
    let dev = Device::flex();
    dev.seed(1);
    let base = tiny().init(&dev);
    let before: Vec<Vec<f32>> =
        base.projections().iter().map(|(_, p)| vec(p.as_float().unwrap().weight.val())).collect();
    let embed_before = vec(base.embed_tokens.weight.val());
    let expected: Vec<String> = base
        .projections()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| bit_axon_train::config::DEFAULT_TARGETS.iter().any(|t| adapters::matches(p, t)))
        .collect();
    let (m, paths) = adapters::apply(base, &section("dora"), &dev).unwrap();
    assert_eq!(paths, expected);
    assert!(
        !paths.iter().any(|p| p.ends_with("x_proj") || p.ends_with("moe.gate") || p.ends_with("shared_expert_gate"))
    );
    let ad = dev.clone().autodiff();
    let mut lm = CausalLm { model: m }.fork(&ad).train();
    let mut optim = AdamWConfig::new().init();
    let ids = ids(&ad);
    for _ in 0..3 {
        let logits = lm.model.forward(ids.clone());
        let loss = logits.powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &lm);
        assert_eq!(grads.len(), adapters::trainable_params(&lm.model).len(), "only adapter tensors get gradients");
        lm = optim.step(1e-2, lm, grads);
    }
    let lm = lm.valid();
    for ((path, p), w0) in lm.model.projections().iter().zip(&before) {
        assert_eq!(&vec(p.as_float().unwrap().weight.val()), w0, "{path}: base weight changed");
        if let Some(a) = &p.adapter {
            assert!(vec(a.lora_b.val()).iter().any(|v| *v != 0.0), "{path}: adapter did not train");
        }
    }
    assert_eq!(vec(lm.model.embed_tokens.weight.val()), embed_before);
}

fn merge_case(kind: &str, quant: bool) {
    let dev = Device::flex();
    dev.seed(2);
    let cfg = tiny();
    let mut base = cfg.init(&dev);
    if quant {
        base = base.quantize_weights(&cfg, QuantFormat::Nf4, 32).unwrap();
    }
    let (m, _) = adapters::apply(base, &section(kind), &dev).unwrap();
    let m = perturb(m, 9);
    let want = vec(m.forward(ids(&dev)));
    // PEFT round trip onto a fresh copy of the base.
    let dir = std::env::temp_dir().join(format!("bit-axon-peft-{}-{kind}-{quant}", std::process::id()));
    adapters::save_peft(&m, &section(kind), None, &dir).unwrap();
    let cfg_json = adapters::read_peft_config(&dir).unwrap();
    assert_eq!((cfg_json.r, cfg_json.use_dora), (4, kind == "dora"));
    let mut fresh = cfg.init(&Device::flex());
    fresh = clone_weights(&m, fresh);
    let (loaded, _) = adapters::load_peft(fresh, &dir, &dev).unwrap();
    for ((path, a), (_, b)) in m.projections().iter().zip(loaded.projections()) {
        if let (Some(a), Some(b)) = (&a.adapter, &b.adapter) {
            assert_eq!(vec(a.lora_a.val()), vec(b.lora_a.val()), "{path}");
            assert_eq!(vec(a.lora_b.val()), vec(b.lora_b.val()), "{path}");
            assert_eq!(a.lora_a.id, b.lora_a.id, "{path}: parameter ids must survive a reload");
        }
    }
    let got = vec(loaded.forward(ids(&dev)));
    assert!(max_abs(&got, &want) <= 1e-6, "{kind}: PEFT round trip changed the output");
    let merged = adapters::merge(loaded, None).unwrap();
    for ((path, before), (_, after)) in m.projections().iter().zip(merged.projections()) {
        assert!(after.adapter.is_none(), "{path}");
        // Adapted projections become float (dequantized when 4-bit); the others are unchanged.
        assert_eq!(after.is_quantized(), before.adapter.is_none() && before.is_quantized(), "{path}");
    }
    let err = max_abs(&vec(merged.forward(ids(&dev))), &want);
    println!("{kind} (4-bit base: {quant}): merged vs adapter logits max abs err {err:.3e}");
    assert!(err <= 1e-4, "{kind}: merged logits differ by {err}");
}

/// The base of `src` (weights only) copied into `dst`, so loading the adapter onto it is fair.
fn clone_weights(src: &BitAxonModel, mut dst: BitAxonModel) -> BitAxonModel {
    let bases: Vec<_> = src.projections().into_iter().map(|(_, p)| p.weight.clone()).collect();
    // A 4-bit base has its own quantized copy of a tied head.
    dst.lm_head = src.lm_head.clone();
    let mut i = 0;
    dst.visit_projections_mut(&mut |_, p| {
        p.weight = bases[i].clone();
        i += 1;
    });
    dst.embed_tokens = src.embed_tokens.clone();
    dst.layers = src
        .layers
        .iter()
        .zip(dst.layers)
        .map(|(s, mut d)| {
            d.input_norm = s.input_norm.clone();
            d.post_norm = s.post_norm.clone();
            if let (Some(a), Some(b)) = (&s.ssm, &mut d.ssm) {
                b.conv_weight = a.conv_weight.clone();
                b.conv_bias = a.conv_bias.clone();
                b.dt_proj = a.dt_proj.clone();
                b.a_log = a.a_log.clone();
                b.d = a.d.clone();
            }
            if let (Some(a), Some(b)) = (&s.moe, &mut d.moe) {
                b.switch_mlp = a.switch_mlp.clone();
            }
            d
        })
        .collect();
    dst
}

#[test]
fn lora_merge_equals_adapter_model() {
    merge_case("lora", false);
}

#[test]
fn dora_merge_equals_adapter_model() {
    merge_case("dora", false);
}

#[test]
fn qlora_merge_dequantized_equals_adapter_model() {
    merge_case("lora", true);
}
