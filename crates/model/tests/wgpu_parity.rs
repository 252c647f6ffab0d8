//! The same checkpoint on `wgpu` (Mesa lavapipe in CI) and on `flex` agrees within 1e-4, for the
//! full forward and for cached step decoding. Needs a Vulkan driver (`mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

mod common;

use bit_axon::BitAxonModel;
use bit_axon::device::parse_device;
use burn::prelude::*;
use common::*;

#[test]
fn wgpu_equals_flex_and_reference_on_tiny_windowed() {
    let dir = fixtures().join("upstream/tiny_windowed");
    let io = Oracle::open(&dir.join("io.safetensors"));
    let wgpu = parse_device("wgpu").unwrap();
    let (_, flex_model, _) = BitAxonModel::load(&dir, &device()).unwrap();
    let (_, gpu_model, _) = BitAxonModel::load(&dir, &wgpu).unwrap();

    let flex_logits = to_vec(flex_model.forward(io.ids("input_ids", &device())));
    let ids = io.ids("input_ids", &wgpu);
    let gpu_logits = to_vec(gpu_model.forward(ids.clone()));
    assert_close("wgpu vs flex logits", &gpu_logits, &flex_logits, 1e-4);
    assert_close("wgpu vs reference logits", &gpu_logits, &io.vec("logits"), 1e-4);

    // Cached decoding on the GPU, crossing the window (8) and the scan chunk (8).
    let len = ids.dims()[1];
    let mut cache = gpu_model.new_cache();
    let mut outs = vec![gpu_model.forward_cached(ids.clone().narrow(1, 0, 3), &mut cache)];
    for t in 3..len {
        outs.push(gpu_model.forward_cached(ids.clone().narrow(1, t, 1), &mut cache));
    }
    assert_close("wgpu step decode vs reference", &to_vec(Tensor::cat(outs, 1)), &io.vec("logits"), 1e-4);
}

/// The reference's 4-bit checkpoint on wgpu: the quantized projections run the fused CubeCL
/// kernels (tiled GEMM for the prompt, GEMV for each decoded token), and the logits match the
/// reference within 1e-4. Opt-in like `quantized_model.rs` (`$BIT_AXON_SHARED`).
#[test]
fn wgpu_small_q4_runs_the_4bit_kernels_and_matches_reference() {
    let Some(shared) = shared_fixtures() else {
        eprintln!("skipped: set BIT_AXON_SHARED to run the small_q4 case");
        return;
    };
    let dir = shared.join("upstream/small_q4");
    let io = Oracle::open(&dir.join("io.safetensors"));
    let wgpu = parse_device("wgpu").unwrap();
    let (_, model, _) = BitAxonModel::load(&dir, &wgpu).unwrap();
    assert!(model.input_proj.is_quantized());
    let ids = io.ids("input_ids", &wgpu);
    assert_close("wgpu small_q4 logits vs reference", &to_vec(model.forward(ids.clone())), &io.vec("logits"), 1e-4);
    let len = ids.dims()[1];
    let mut cache = model.new_cache();
    let mut outs = vec![model.forward_cached(ids.clone().narrow(1, 0, 2), &mut cache)];
    for t in 2..len {
        outs.push(model.forward_cached(ids.clone().narrow(1, t, 1), &mut cache));
    }
    assert_close("wgpu small_q4 step decode vs reference", &to_vec(Tensor::cat(outs, 1)), &io.vec("logits"), 1e-4);
}
