//! Step-by-step decoding through the hybrid cache must equal one full forward: logits and the
//! final cache, for batch > 1 and sequences longer than the attention window, the scan chunk,
//! the attention query block and 512 tokens. Tolerance: relative 1e-4.

mod common;

use bit_axon::layers::{LayerState, SlidingWindowAttentionConfig};
use bit_axon::{BitAxonConfig, BitAxonModel, ModelCache};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::*;

const REL: f32 = 1e-4;

fn test_config() -> BitAxonConfig {
    BitAxonConfig {
        vocab_size: 64,
        hidden_dim: 32,
        num_layers: 3,
        num_heads: 4,
        d_source_model: 16,
        ssm_d_state: 4,
        ssm_d_conv: 3,
        ssm_expand: 2,
        ssm_scan_step: 8,
        swa_window_size: 16,
        moe_num_experts: 4,
        moe_top_k: 2,
        moe_intermediate_dim: 32,
        ..BitAxonConfig::small()
    }
}

fn setup(len: usize) -> (BitAxonModel, Tensor<2, Int>) {
    let dev = device();
    dev.seed(7);
    let cfg = test_config();
    cfg.validate().unwrap();
    let model = cfg.init(&dev);
    let ids = Tensor::<2>::random([2, len], Distribution::Uniform(0.0, cfg.vocab_size as f64), &dev).int();
    (model, ids)
}

/// Runs `ids` through the cache in pieces of the given sizes (the last piece repeats).
fn run_pieces(model: &BitAxonModel, ids: &Tensor<2, Int>, pieces: &[usize]) -> (Tensor<3>, ModelCache) {
    let len = ids.dims()[1];
    let mut cache = model.new_cache();
    let mut outs = Vec::new();
    let (mut t, mut i) = (0, 0);
    while t < len {
        let n = pieces[i.min(pieces.len() - 1)].min(len - t);
        outs.push(model.forward_cached(ids.clone().narrow(1, t, n), &mut cache));
        t += n;
        i += 1;
    }
    (Tensor::cat(outs, 1), cache)
}

fn assert_caches_equal(a: &ModelCache, b: &ModelCache) {
    assert_eq!(a.position, b.position);
    for (i, (x, y)) in a.layers.iter().zip(&b.layers).enumerate() {
        match (x.as_ref().unwrap(), y.as_ref().unwrap()) {
            (LayerState::Ssm(x), LayerState::Ssm(y)) => {
                assert_tensor_close(
                    &format!("layer {i} conv"),
                    x.conv.clone().unwrap(),
                    &to_vec(y.conv.clone().unwrap()),
                    REL,
                );
                assert_tensor_close(&format!("layer {i} ssm state"), x.ssm.clone(), &to_vec(y.ssm.clone()), REL);
            }
            (LayerState::Attention(x), LayerState::Attention(y)) => {
                assert_eq!(x.k.dims(), y.k.dims(), "layer {i}: cached K shapes differ");
                assert_tensor_close(&format!("layer {i} K"), x.k.clone(), &to_vec(y.k.clone()), REL);
                assert_tensor_close(&format!("layer {i} V"), x.v.clone(), &to_vec(y.v.clone()), REL);
            }
            _ => panic!("layer {i}: cache kinds differ"),
        }
    }
}

#[test]
fn one_token_steps_equal_full_forward_past_512_tokens() {
    let len = 600; // > window 16, > scan chunk 8, > attention query block 256, > 512
    let (model, ids) = setup(len);
    let full = to_vec(model.forward(ids.clone()));
    let (prefilled, cache_full) = run_pieces(&model, &ids, &[len]);
    assert_close("cached full prefill vs forward", &to_vec(prefilled), &full, REL);
    let (stepped, cache_steps) = run_pieces(&model, &ids, &[1]);
    assert_close("token-by-token vs forward", &to_vec(stepped), &full, REL);
    assert_caches_equal(&cache_steps, &cache_full);
    // The attention cache never holds more than the window.
    for state in cache_steps.layers.iter().flatten() {
        if let LayerState::Attention(kv) = state {
            assert_eq!(kv.len(), test_config().swa_window_size);
        }
    }
}

#[test]
fn partial_prefill_then_steps_equals_full_forward() {
    let len = 90;
    let (model, ids) = setup(len);
    let full = to_vec(model.forward(ids.clone()));
    // Prefill shorter than, equal to and longer than the window, then single steps.
    for prefill in [5, 16, 37] {
        let (out, _) = run_pieces(&model, &ids, &[prefill, 1]);
        assert_close(&format!("prefill {prefill} + steps"), &to_vec(out), &full, REL);
    }
    // Uneven chunked prefill (not multiples of the window or the scan chunk).
    let (out, _) = run_pieces(&model, &ids, &[13, 29, 7, 41]);
    assert_close("chunked prefill 13/29/7/41", &to_vec(out), &full, REL);
}

/// GPU backends compile a kernel per tensor shape: the attention cache keeps its shape between
/// doublings (16, 32, 64, then the window) instead of growing by one position a step, and
/// decoding through those doublings and past the window equals the full forward.
#[test]
fn attention_cache_doubles_up_to_the_window_and_decodes_exactly() {
    let dev = device();
    dev.seed(5);
    let window = 100;
    let attn = SlidingWindowAttentionConfig::new(16, 2, window).init(&dev);
    let len = 250;
    let x = Tensor::<3>::random([2, len, 16], Distribution::Normal(0.0, 1.0), &dev);
    let (full, _) = attn.forward(x.clone(), None);
    for prefill in [3, 40] {
        let (y0, mut cache) = attn.forward(x.clone().narrow(1, 0, prefill), None);
        let mut ys = vec![y0];
        let mut caps = vec![cache.capacity()];
        for t in prefill..len {
            let (y, c) = attn.forward(x.clone().narrow(1, t, 1), Some(cache));
            assert_eq!(c.len(), (t + 1).min(window), "valid slots after {} tokens", t + 1);
            caps.push(c.capacity());
            ys.push(y);
            cache = c;
        }
        caps.dedup();
        let want: Vec<usize> = [16, 32, 64, 100].into_iter().filter(|&c| c >= caps[0]).collect();
        assert_eq!(caps, want, "capacities after prefill {prefill}");
        assert_tensor_close(&format!("prefill {prefill} + steps"), Tensor::cat(ys, 1), &to_vec(full.clone()), REL);
    }
}
