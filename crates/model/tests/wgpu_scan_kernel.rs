//! On wgpu, `selective_scan` runs the CubeCL kernels (`bit_axon_kernels::scan`); they equal the
//! plain-tensor reference on flex, in the forward (with resets, and the one-token decode kernel)
//! and in the gradients of the whole model. Needs a Vulkan driver (`mesa-vulkan-drivers`).
#![cfg(feature = "wgpu")]

mod common;

use bit_axon::BitAxonModel;
use bit_axon::device::parse_device;
use bit_axon::layers::scan::{ScanInput, scan_sequential, selective_scan};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::*;

fn inputs(b: usize, l: usize, e: usize, n: usize, reset: bool, dev: &Device) -> (ScanInput, Tensor<3>) {
    let u = |shape: [usize; 3], lo: f64, hi: f64| Tensor::<3>::random(shape, Distribution::Uniform(lo, hi), dev);
    let input = ScanInput {
        x: u([b, l, e], -1.0, 1.0),
        dt: u([b, l, e], 1e-3, 1.0),
        a: Tensor::<2>::random([e, n], Distribution::Uniform(-4.0, -0.05), dev),
        b: u([b, l, n], -1.0, 1.0),
        c: u([b, l, n], -1.0, 1.0),
        d: Tensor::<1>::random([e], Distribution::Uniform(0.5, 1.5), dev),
        reset: reset.then(|| Tensor::<2>::random([b, l], Distribution::Bernoulli(0.1), dev)),
    };
    (input, u([b, e, n], -1.0, 1.0))
}

#[test]
fn selective_scan_on_wgpu_equals_flex_reference() {
    let (flex, gpu) = (device(), parse_device("wgpu").unwrap());
    flex.seed(21);
    for (b, l, e, n, reset) in [(2, 37, 11, 16, true), (3, 1, 7, 16, false), (1, 130, 5, 3, false)] {
        let (input, h0) = inputs(b, l, e, n, reset, &flex);
        let (yr, hr) = scan_sequential(input.clone(), h0.clone());
        let on_gpu = ScanInput {
            x: input.x.to_device(&gpu),
            dt: input.dt.to_device(&gpu),
            a: input.a.to_device(&gpu),
            b: input.b.to_device(&gpu),
            c: input.c.to_device(&gpu),
            d: input.d.to_device(&gpu),
            reset: input.reset.map(|r| r.to_device(&gpu)),
        };
        let (y, h) = selective_scan(on_gpu, h0.to_device(&gpu), 64);
        assert_close(&format!("B{b} L{l} E{e} N{n} y"), &to_vec(y), &to_vec(yr), 1e-5);
        assert_close(&format!("B{b} L{l} E{e} N{n} h"), &to_vec(h), &to_vec(hr), 1e-5);
    }
}

#[test]
fn model_gradients_on_wgpu_equal_flex() {
    let dir = fixtures().join("upstream/tiny_windowed");
    let io = Oracle::open(&dir.join("io.safetensors"));
    let grads_on = |dev: Device| {
        let ad = dev.autodiff();
        let (_, model, _) = BitAxonModel::load(&dir, &ad).unwrap();
        let logits = model.forward(io.ids("input_ids", &ad));
        let w = Tensor::<3>::ones(logits.dims(), &ad).cumsum(2).sin();
        let g = (logits * w).sum().backward();
        let ssm = model.layers.iter().find_map(|b| b.ssm.as_ref()).expect("an SSM block");
        vec![
            to_vec(ssm.a_log.val().grad(&g).expect("grad A_log")),
            to_vec(ssm.d.val().grad(&g).expect("grad D")),
            to_vec(ssm.in_proj.as_float().expect("float in_proj").weight.val().grad(&g).expect("grad in_proj")),
            to_vec(model.embed_tokens.weight.val().grad(&g).expect("grad embedding")),
        ]
    };
    let (want, got) = (grads_on(device()), grads_on(parse_device("wgpu").unwrap()));
    for (name, (g, w)) in ["A_log", "D", "in_proj", "embedding"].iter().zip(got.iter().zip(&want)) {
        assert_close(&format!("wgpu vs flex grad {name}"), g, w, 1e-4);
    }
}
