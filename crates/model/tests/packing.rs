//! Packed rows: a forward over several documents packed in one row, with their [`Segments`],
//! must give each document exactly the logits it gets alone (no attention, convolution or SSM
//! state across a boundary). Documents longer than the attention window (16) and the scan chunk
//! (8), in a batch of 2. Tolerance: relative 1e-4. Also checks that without the segments the
//! documents do leak (so the test can fail).

mod common;

use bit_axon::BitAxonConfig;
use bit_axon::layers::Segments;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::*;

fn test_config() -> BitAxonConfig {
    BitAxonConfig {
        vocab_size: 64,
        hidden_dim: 32,
        num_layers: 3,
        num_heads: 4,
        d_source_model: 16,
        ssm_d_state: 4,
        ssm_d_conv: 4,
        ssm_expand: 2,
        ssm_scan_step: 8,
        swa_window_size: 16,
        moe_num_experts: 4,
        moe_top_k: 2,
        moe_intermediate_dim: 32,
        ..BitAxonConfig::small()
    }
}

#[test]
fn packed_documents_do_not_see_each_other() {
    let dev = device();
    dev.seed(11);
    let cfg = test_config();
    let model = cfg.init(&dev);
    let rows: [&[usize]; 2] = [&[5, 40, 3], &[30, 18]];
    let len = 48;
    let ids = Tensor::<2>::random([2, len], Distribution::Uniform(0.0, cfg.vocab_size as f64), &dev).int();
    let mut seg = Vec::new();
    for docs in rows {
        for (d, &n) in docs.iter().enumerate() {
            seg.extend(std::iter::repeat_n(d as u32, n));
        }
    }
    let segments = Segments::new(seg, 2, len);
    let packed = model.forward_packed(ids.clone(), &segments);
    let unmasked = model.forward(ids.clone());
    let mut leak = 0.0f32;
    for (b, docs) in rows.iter().enumerate() {
        let mut t0 = 0;
        for &n in docs.iter() {
            let doc_ids = ids.clone().narrow(0, b, 1).narrow(1, t0, n);
            let alone = model.forward(doc_ids);
            let got = packed.clone().narrow(0, b, 1).narrow(1, t0, n);
            assert_tensor_close(&format!("row {b} doc at {t0} (len {n})"), got, &to_vec(alone.clone()), 1e-4);
            if t0 > 0 {
                let (e, _) = max_err(&to_vec(unmasked.clone().narrow(0, b, 1).narrow(1, t0, n)), &to_vec(alone));
                leak = leak.max(e);
            }
            t0 += n;
        }
    }
    println!("without segments, later documents differ by up to {leak:.3e}");
    assert!(leak > 1e-3, "packing without segments should leak context");
}
