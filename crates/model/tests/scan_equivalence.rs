//! The chunked scan equals the sequential scan (outputs, final state and gradients) on random
//! inputs of several shapes and chunk sizes, including lengths that are not chunk multiples.

mod common;

use bit_axon::layers::scan::{ScanInput, scan_chunked, scan_sequential, selective_scan};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::*;

fn inputs(b: usize, l: usize, e: usize, n: usize, dt_max: f64, dev: &Device) -> (ScanInput, Tensor<3>) {
    let u = |shape: [usize; 3], lo: f64, hi: f64| Tensor::<3>::random(shape, Distribution::Uniform(lo, hi), dev);
    let input = ScanInput {
        x: u([b, l, e], -1.0, 1.0),
        dt: u([b, l, e], 1e-3, dt_max),
        a: Tensor::<2>::random([e, n], Distribution::Uniform(-4.0, -0.05), dev),
        b: u([b, l, n], -1.0, 1.0),
        c: u([b, l, n], -1.0, 1.0),
        d: Tensor::<1>::random([e], Distribution::Uniform(0.5, 1.5), dev),
        reset: None,
    };
    (input, u([b, e, n], -1.0, 1.0))
}

#[test]
fn chunked_equals_sequential_on_random_shapes() {
    let dev = device();
    dev.seed(11);
    for &(b, l, e, n) in &[(1, 1, 3, 2), (1, 7, 5, 4), (3, 64, 9, 4), (2, 100, 17, 16), (1, 333, 8, 3)] {
        for dt_max in [0.5, 30.0] {
            let (input, h0) = inputs(b, l, e, n, dt_max, &dev);
            let (ys, hs) = scan_sequential(input.clone(), h0.clone());
            let (ys, hs) = (to_vec(ys), to_vec(hs));
            for chunk in [1, 3, 8, 64] {
                let (yc, hc) = scan_chunked(input.clone(), h0.clone(), chunk);
                let what = format!("B{b} L{l} E{e} N{n} dt≤{dt_max} chunk {chunk}");
                assert_close(&format!("{what} y"), &to_vec(yc), &ys, 1e-5);
                assert_close(&format!("{what} h"), &to_vec(hc), &hs, 1e-5);
            }
            let (ya, _) = selective_scan(input, h0, 16);
            assert_close("selective_scan dispatch", &to_vec(ya), &ys, 1e-5);
        }
    }
}

#[test]
fn chunked_gradients_equal_sequential_gradients() {
    let dev = device().autodiff();
    dev.seed(5);
    let (input, h0) = inputs(2, 19, 6, 4, 2.0, &dev);
    let track = |t: Tensor<3>| t.require_grad();
    let leaves = (
        track(input.x),
        track(input.dt),
        input.a.require_grad(),
        track(input.b),
        track(input.c),
        input.d.require_grad(),
        track(h0),
    );
    let grads_of = |chunked: bool| {
        let (x, dt, a, b, c, d, h0) = leaves.clone();
        let inp = ScanInput {
            x: x.clone(),
            dt: dt.clone(),
            a: a.clone(),
            b: b.clone(),
            c: c.clone(),
            d: d.clone(),
            reset: None,
        };
        let (y, h) = if chunked { scan_chunked(inp, h0.clone(), 4) } else { scan_sequential(inp, h0.clone()) };
        // A loss that weights every output and state element differently.
        let wy = Tensor::<3>::ones(y.dims(), &y.device()).cumsum(1).sin();
        let loss = (y * wy).sum() + (h.clone() * h).sum();
        let g = loss.backward();
        vec![
            to_vec(x.grad(&g).unwrap()),
            to_vec(dt.grad(&g).unwrap()),
            to_vec(a.grad(&g).unwrap()),
            to_vec(b.grad(&g).unwrap()),
            to_vec(c.grad(&g).unwrap()),
            to_vec(d.grad(&g).unwrap()),
            to_vec(h0.grad(&g).unwrap()),
        ]
    };
    let (seq, chk) = (grads_of(false), grads_of(true));
    for (name, (s, c)) in ["x", "dt", "A", "B", "C", "D", "h0"].iter().zip(seq.iter().zip(&chk)) {
        assert_close(&format!("grad {name}"), c, s, 1e-4);
    }
}

#[test]
fn reset_flags_agree_between_chunked_and_sequential() {
    let dev = device();
    dev.seed(17);
    for &(b, l, e, n) in &[(2, 23, 5, 4), (3, 64, 7, 16)] {
        let (mut input, h0) = inputs(b, l, e, n, 2.0, &dev);
        input.reset = Some(Tensor::<2>::random([b, l], Distribution::Bernoulli(0.15), &dev));
        let (ys, hs) = scan_sequential(input.clone(), h0.clone());
        let (ys, hs) = (to_vec(ys), to_vec(hs));
        for chunk in [1, 5, 16] {
            let (yc, hc) = scan_chunked(input.clone(), h0.clone(), chunk);
            assert_close(&format!("reset B{b} L{l} chunk {chunk} y"), &to_vec(yc), &ys, 1e-5);
            assert_close(&format!("reset B{b} L{l} chunk {chunk} h"), &to_vec(hc), &hs, 1e-5);
        }
        // Every flag set: each token starts from zero, so y_t = C_t·(dt_t·x_t·B_t) + D·x_t.
        let mut all = input.clone();
        all.reset = Some(Tensor::ones([b, l], &dev));
        let (y1, _) = scan_sequential(all, h0.clone());
        let u = input.dt.clone() * input.x.clone();
        let cb = (input.c.clone() * input.b.clone()).sum_dim(2);
        let want = u * cb + input.x.clone() * input.d.clone().unsqueeze::<3>();
        assert_close(&format!("all reset B{b} L{l}"), &to_vec(y1), &to_vec(want), 1e-5);
    }
}
