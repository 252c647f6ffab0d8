//! The reference's 4-bit checkpoint (`small_q4`, MLX affine int4, group 64) loads into the model
//! and reproduces its logits. Opt-in: the case lives in `$BIT_AXON_SHARED/fixtures/upstream/`.

mod common;

use bit_axon::BitAxonModel;
use common::{Oracle, assert_tensor_close, device, shared_fixtures};

#[test]
fn small_q4_reference_logits() {
    let Some(shared) = shared_fixtures() else {
        eprintln!("skipped: set BIT_AXON_SHARED to run the small_q4 case");
        return;
    };
    let dir = shared.join("upstream/small_q4");
    let device = device();
    let (_, model, report) = BitAxonModel::load(&dir, &device).unwrap();
    assert!(report.unused.is_empty(), "unused tensors: {:?}", report.unused);
    assert!(model.input_proj.is_quantized() && model.lm_head.as_ref().is_some_and(|h| h.is_quantized()));
    let io = Oracle::open(&dir.join("io.safetensors"));
    let hidden = model.forward_hidden(io.ids("input_ids", &device));
    assert_tensor_close("small_q4 logits", hidden.logits, &io.vec("logits"), 1e-4);
    assert_tensor_close("small_q4 hidden.layer_3", hidden.layers[3].clone(), &io.vec("hidden.layer_3"), 1e-4);
}
