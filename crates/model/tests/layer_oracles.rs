//! Each layer against the reference implementation's single-layer oracles
//! (`tests/fixtures/layers`, exported from the MLX reference; see its README in `../shared`).
//! Tolerance: relative 1e-4 of max(1, max|ref|) (observed errors are printed, ~1e-6).

mod common;

use bit_axon::checkpoint::Loader;
use bit_axon::layers::*;
use burn::prelude::*;
use common::*;

const REL: f32 = 1e-4;

fn layer(name: &str) -> Oracle {
    Oracle::open(&fixtures().join("layers").join(format!("{name}.safetensors")))
}

#[test]
fn rms_norm_matches_reference() {
    let o = layer("rms_norm");
    let dev = device();
    let ld = Loader::new(&o.files, &dev);
    let norm = RmsNormConfig::new(64).load(&ld, "param").unwrap();
    let y = norm.forward(o.tensor::<3>("input", &dev));
    assert_tensor_close("rms_norm", y, &o.vec("output"), REL);
}

fn ssm_case(name: &str) {
    let o = layer(name);
    let dev = device();
    let c = &o.info["config"];
    let get = |k: &str| c[k].as_u64().unwrap() as usize;
    let cfg = AxonSsmConfig::new(get("hidden_dim"), get("ssm_intermediate_dim"), get("ssm_d_state"), get("ssm_d_conv"))
        .with_scan_chunk(get("ssm_scan_step"));
    let ld = Loader::new(&o.files, &dev);
    let ssm = cfg.load(&ld, "param").unwrap();
    let x = o.tensor::<3>("input", &dev);
    let (y, state) = ssm.forward(x.clone(), None);
    assert_tensor_close(&format!("{name}.output"), y, &o.vec("output"), REL);
    assert_tensor_close(&format!("{name}.conv_cache"), state.conv.unwrap(), &o.vec("conv_cache"), REL);
    assert_tensor_close(&format!("{name}.ssm_state"), state.ssm, &o.vec("ssm_state"), REL);

    // Prefill then one token at a time.
    let prefill = o.info["prefill_len"].as_u64().unwrap() as usize;
    let len = x.dims()[1];
    let (y0, mut st) = ssm.forward(x.clone().narrow(1, 0, prefill), None);
    let mut ys = vec![y0];
    for t in prefill..len {
        let (y, s) = ssm.forward(x.clone().narrow(1, t, 1), Some(st));
        ys.push(y);
        st = s;
    }
    assert_tensor_close(&format!("{name}.output_incremental"), Tensor::cat(ys, 1), &o.vec("output_incremental"), REL);
    assert_tensor_close(&format!("{name}.ssm_state_incremental"), st.ssm, &o.vec("ssm_state_incremental"), REL);
}

#[test]
fn ssm_small_matches_reference() {
    ssm_case("ssm_small");
}

#[test]
fn ssm_chunked_matches_reference() {
    ssm_case("ssm_chunked");
}

fn swa(o: &Oracle, window: usize) -> SlidingWindowAttention {
    let heads = o.info["num_heads"].as_u64().unwrap() as usize;
    let dim = o.info["hidden_dim"].as_u64().unwrap() as usize;
    SlidingWindowAttentionConfig::new(dim, heads, window).load(&Loader::new(&o.files, &device()), "param").unwrap()
}

#[test]
fn swa_matches_reference_full_and_incremental() {
    let o = layer("swa");
    let window = o.info["window_size"].as_u64().unwrap() as usize;
    let attn = swa(&o, window);
    let x = o.tensor::<3>("input", &device());
    let (y, _) = attn.forward(x.clone(), None);
    assert_tensor_close("swa.output", y, &o.vec("output"), REL);
    let (y64, _) = swa(&o, 64).forward(x.clone(), None);
    assert_tensor_close("swa.output_window64", y64, &o.vec("output_window64"), REL);

    // The reference's cached path, prefill 3 then single steps.
    let len = x.dims()[1];
    for prefill in [3, 6] {
        let (y0, mut cache) = attn.forward(x.clone().narrow(1, 0, prefill), None);
        let mut ys = vec![y0];
        for t in prefill..len {
            let (y, c) = attn.forward(x.clone().narrow(1, t, 1), Some(cache));
            assert!(c.len() <= window, "cache holds {} > window {window}", c.len());
            ys.push(y);
            cache = c;
        }
        // Prefill 6 > window is where the reference returns NaN rows (its KV cache trims before
        // masking); the correct answer is the full forward, which this must equal.
        assert_tensor_close(&format!("swa.incremental_prefill{prefill}"), Tensor::cat(ys, 1), &o.vec("output"), REL);
    }
}

fn moe_case(name: &str) {
    let o = layer(name);
    let dev = device();
    let get = |k: &str| o.info[k].as_u64().unwrap() as usize;
    let cfg = SharedExpertMoeConfig::new(get("dim"), get("intermediate_dim"), get("num_experts"), get("top_k"));
    let moe = cfg.load(&Loader::new(&o.files, &dev), "param").unwrap();
    let x = o.tensor::<3>("input", &dev);
    let [b, l, h] = x.dims();
    let routing = moe.route(x.clone().reshape([b * l, h]));
    assert_tensor_close(&format!("{name}.router_probs"), routing.probs, &o.vec("router_probs"), REL);
    // Same expert sets as the reference (its order is argpartition's, so compare sorted).
    let ours: Vec<i64> = routing.indices.into_data().convert::<i64>().try_to_vec().unwrap();
    let (theirs, _) = o.files.read_i64("topk_indices").unwrap();
    let k = get("top_k");
    for (t, (a, b)) in ours.chunks(k).zip(theirs.chunks(k)).enumerate() {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: token {t} routed differently");
    }
    assert_tensor_close(&format!("{name}.output"), moe.forward(x), &o.vec("output"), REL);
}

#[test]
fn moe_matches_reference() {
    moe_case("moe");
}

#[test]
fn moe_sort_path_matches_reference() {
    moe_case("moe_sorted");
}
