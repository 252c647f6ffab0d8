//! Selective scan (the AxonSSM recurrence) as CubeCL kernels, registered as a Burn custom op with
//! its own backward.
//!
//! ```text
//! m_t = exp(dt_t·A)·(1 - reset_t)          A [E, N] (negative), dt, x [B, L, E]
//! h_t = m_t ⊙ h_{t-1} + dt_t·x_t·B_t        B, C [B, L, N], h [B, E, N]
//! y_t = Σ_n C_t·h_t + D·x_t                 D [E]
//! ```
//! `reset_t = 1` marks a document start: the state carried into token `t` is dropped.
//!
//! [`selective_scan`] works on any CubeCL device (wgpu, CUDA), with or without autodiff;
//! [`is_cube`] tells whether a device is one. Other devices (flex) use the plain-tensor reference
//! (`bit_axon::layers::scan`). The forward is one pass ([`kernels::scan_fused`]: each unit keeps
//! 4 or 8 states in registers for the whole sequence, inputs staged through shared memory, no
//! intermediate memory in DRAM) when `N` is a multiple of 4 (up to 32); otherwise, or with an explicit chunk length, three chunked passes (chunk
//! states `O(B·E·N·L/T)`). The backward recomputes states from chunk-start states instead of
//! storing all `O(B·E·N·L)` of them.

mod autodiff;
mod cube;
pub mod kernels;

use burn::backend::{Backend, DispatchDevice, backend_extension, tensor::FloatTensor};
use burn::prelude::*;

pub use cube::{
    BWD_CHUNK, BWD_WIDTH, FusedPlan, FusedShape, auto_chunk, fused_launches, fused_plan, fused_supported,
    last_fused_plan, set_fused_shape,
};

/// The scan as a backend extension: implemented for CubeCL backends (`Cube`), lazily for `Fusion`
/// and with a custom backward for `Autodiff`.
#[backend_extension(Cube, Autodiff, Fusion)]
pub trait SelectiveScanBackend: Backend {
    /// Packed output `[B, L + N, E]`: rows `0..L` are `y`, rows `L..L+N` the final state
    /// transposed. `chunk = 0` picks the chunk length from the shapes.
    #[fusion(dtype = x, shape = {
        let mut s = x.clone();
        s[1] += a[1];
        s
    })]
    fn selective_scan_packed(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reset: FloatTensor<Self>,
        chunk: usize,
    ) -> FloatTensor<Self>;

    /// Gradients from the packed output's gradient `grad [B, L + N, E]`:
    /// `(dx, ddt [B, L, E], dA partials [B, K, N, E] f32, dB|dC partials [B, L, ⌈E/W⌉, 2N] f32, dh0)`
    /// with `K = ⌈L / BWD_CHUNK⌉`, `W = BWD_WIDTH`. [`selective_scan`]'s backward sums the partials.
    #[fusion(meta = |x, _dt, a, _b, _c, _d, h0, _r, _g| bwd_meta(x, a, h0))]
    fn selective_scan_backward(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reset: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// One decode step: `x, dt [B, E]`, `b, c [B, N]`, `h [B, E, N]` → `(y [B, E], new h)`.
    /// Not differentiable (inference only).
    #[fusion(meta = |x, _dt, _a, _b, _c, _d, h| (x.clone(), h.clone()))]
    fn selective_scan_step(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        d: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The decode step's causal depthwise convolution with SiLU: `window [B, K-1, E]`, `x [B, E]`,
    /// `weight [E, K]`, `bias [E]` → `(silu(conv) [B, E], shifted window)`. Inference only.
    #[fusion(meta = |window, x, _w, _b| (x.clone(), window.clone()))]
    fn conv_step(
        window: FloatTensor<Self>,
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

type Spec = burn::backend::fusion::custom::TensorSpec;

fn bwd_meta(x: &Spec, a: &Spec, h0: &Spec) -> (Spec, Spec, Spec, Spec, Spec) {
    let (bsz, len, e, n) = (x.shape[0], x.shape[1], x.shape[2], a.shape[1]);
    let f32 = burn::tensor::DType::F32;
    (
        x.clone(),
        x.clone(),
        Spec::new(burn::tensor::Shape::new([bsz, len.div_ceil(BWD_CHUNK), n, e]), f32),
        Spec::new(burn::tensor::Shape::new([bsz, len, e.div_ceil(BWD_WIDTH), 2 * n]), f32),
        h0.clone(),
    )
}

/// Whether `device` (with or without autodiff) runs CubeCL kernels.
pub fn is_cube(device: &Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Cube(_))
}

fn check(what: &str, got: &[usize], want: &[usize]) {
    assert_eq!(got, want, "selective_scan: `{what}` has shape {got:?}, expected {want:?}");
}

/// The selective scan from state `h0 [B, E, N]`: returns `y [B, L, E]` and the final state
/// `[B, E, N]`. `reset [B, L]` (1.0 at document starts, else 0.0) is optional; `chunk` overrides
/// the forward chunk length (`None`: [`auto_chunk`]). Differentiable in every input but `reset`.
///
/// Panics when a shape disagrees with `x [B, L, E]` / `a [E, N]`, or on a non-CubeCL device.
#[allow(clippy::too_many_arguments)]
pub fn selective_scan(
    x: Tensor<3>,
    dt: Tensor<3>,
    a: Tensor<2>,
    b: Tensor<3>,
    c: Tensor<3>,
    d: Tensor<1>,
    h0: Tensor<3>,
    reset: Option<Tensor<2>>,
    chunk: Option<usize>,
) -> (Tensor<3>, Tensor<3>) {
    let [bsz, len, e] = x.dims();
    let n = a.dims()[1];
    assert!(is_cube(&x.device()), "selective_scan kernel: device {:?} is not a CubeCL device", x.device());
    assert!(len > 0 && e > 0 && n > 0, "selective_scan: empty input x {:?}, A {:?}", x.dims(), a.dims());
    assert!(n <= 64, "selective_scan kernel: state size N = {n} > 64 is not supported");
    check("dt", &dt.dims(), &[bsz, len, e]);
    check("A", &a.dims(), &[e, n]);
    check("B", &b.dims(), &[bsz, len, n]);
    check("C", &c.dims(), &[bsz, len, n]);
    check("D", &d.dims(), &[e]);
    check("h0", &h0.dims(), &[bsz, e, n]);
    let reset = match reset {
        Some(r) => {
            check("reset", &r.dims(), &[bsz, len]);
            r
        }
        None => Tensor::zeros([bsz, len], &x.device()),
    };
    let packed = Tensor::<3>::from_dispatch(<burn::backend::Dispatch as SelectiveScanBackend>::selective_scan_packed(
        x.into_dispatch(),
        dt.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        c.into_dispatch(),
        d.into_dispatch(),
        h0.into_dispatch(),
        reset.into_dispatch(),
        chunk.unwrap_or(0),
    ));
    let y = packed.clone().narrow(1, 0, len);
    let h = packed.narrow(1, len, n).swap_dims(1, 2);
    (y, h)
}

/// The decode step's causal convolution: the window of the last `K-1` inputs `[B, K-1, E]` and
/// the new input `x [B, E]` → `(silu(bias + conv) [B, E], the window shifted by x)`, with the
/// weight `[E, K]` (`weight[e, K-1]` multiplies `x`). Inference only; needs `K ≥ 2`.
pub fn conv_step(window: Tensor<3>, x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> (Tensor<2>, Tensor<3>) {
    let [bsz, km1, e] = window.dims();
    assert!(is_cube(&x.device()), "conv_step kernel: device {:?} is not a CubeCL device", x.device());
    assert!(km1 >= 1, "conv_step: the window must hold K-1 ≥ 1 inputs, got {km1}");
    check("x", &x.dims(), &[bsz, e]);
    check("conv weight", &weight.dims(), &[e, km1 + 1]);
    check("conv bias", &bias.dims(), &[e]);
    let (out, window) = <burn::backend::Dispatch as SelectiveScanBackend>::conv_step(
        window.into_dispatch(),
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    );
    (Tensor::from_dispatch(out), Tensor::from_dispatch(window))
}

/// One decode step: `x, dt [B, E]`, `b, c [B, N]`, state `h [B, E, N]` → `(y [B, E], new state)`.
/// Inference only: on an autodiff device use [`selective_scan`] with `L = 1`.
#[allow(clippy::too_many_arguments)]
pub fn selective_scan_step(
    x: Tensor<2>,
    dt: Tensor<2>,
    a: Tensor<2>,
    b: Tensor<2>,
    c: Tensor<2>,
    d: Tensor<1>,
    h: Tensor<3>,
) -> (Tensor<2>, Tensor<3>) {
    let [bsz, e] = x.dims();
    let n = a.dims()[1];
    assert!(is_cube(&x.device()), "selective_scan_step kernel: device {:?} is not a CubeCL device", x.device());
    assert!(n <= 64, "selective_scan_step kernel: state size N = {n} > 64 is not supported");
    check("dt", &dt.dims(), &[bsz, e]);
    check("A", &a.dims(), &[e, n]);
    check("B", &b.dims(), &[bsz, n]);
    check("C", &c.dims(), &[bsz, n]);
    check("D", &d.dims(), &[e]);
    check("h", &h.dims(), &[bsz, e, n]);
    let (y, h) = <burn::backend::Dispatch as SelectiveScanBackend>::selective_scan_step(
        x.into_dispatch(),
        dt.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        c.into_dispatch(),
        d.into_dispatch(),
        h.into_dispatch(),
    );
    (Tensor::from_dispatch(y), Tensor::from_dispatch(h))
}
