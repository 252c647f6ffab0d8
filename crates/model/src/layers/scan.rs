//! The selective scan of the AxonSSM layer, written in plain tensor ops.
//!
//! Recurrence, per batch `b`, channel `e` and state `n`:
//! `h_t = exp(dt_t·A) ⊙ h_{t-1} + dt_t·B_t·x_t`, `y_t = Σ_n C_t·h_t + D·x_t`.
//!
//! Two equivalent evaluations: [`scan_sequential`] (one step per token; the decode path and the
//! reference) and [`scan_chunked`] (parallel inside chunks, sequential across them; prefill and
//! training). A GPU kernel can replace either behind [`selective_scan`].

use burn::prelude::*;

/// Inputs of the scan. `a` is the (negative) continuous-time decay `A = -exp(A_log)`.
#[derive(Debug, Clone)]
pub struct ScanInput {
    /// `[B, L, E]` post-convolution activations.
    pub x: Tensor<3>,
    /// `[B, L, E]` positive step sizes.
    pub dt: Tensor<3>,
    /// `[E, N]` decay rates (negative).
    pub a: Tensor<2>,
    /// `[B, L, N]` input matrix, shared by all channels.
    pub b: Tensor<3>,
    /// `[B, L, N]` output matrix, shared by all channels.
    pub c: Tensor<3>,
    /// `[E]` skip connection.
    pub d: Tensor<1>,
    /// `[B, L]` document-start flags (1.0 drops the state carried into that token, 0.0 keeps it),
    /// so packed sequences do not leak state into each other. `None`: no resets.
    pub reset: Option<Tensor<2>>,
}

/// Log-decay added at a reset token: `exp` of it (and of any sum containing it) is exactly 0.
const RESET_LOG_DECAY: f64 = -1e30;

/// Element budget for one `[B, E, N, S, S]` intermediate of the chunked scan (64 MB in f32).
const CHUNK_BUDGET: usize = 1 << 24;

/// Runs the scan from state `h0 [B, E, N]`; returns `y [B, L, E]` and the final state.
///
/// Picks the sequential form for a few tokens (decode) and on the CPU backend, where a step
/// costs little and the chunked form's `S`-fold extra arithmetic dominates; elsewhere the
/// chunked form (far fewer launches), with a chunk no longer than `max_chunk` and small enough
/// to bound memory.
pub fn selective_scan(input: ScanInput, h0: Tensor<3>, max_chunk: usize) -> (Tensor<3>, Tensor<3>) {
    let [bsz, len, e] = input.x.dims();
    let n = input.a.dims()[1];
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if bit_axon_kernels::scan::is_cube(&input.x.device()) && !bit_axon_kernels::plain_forced("scan") {
        return kernel_scan(input, h0);
    }
    if len <= 2 || input.x.device().inner() == Device::flex() {
        return scan_sequential(input, h0);
    }
    let fit = ((CHUNK_BUDGET / (bsz * e * n).max(1)) as f64).sqrt() as usize;
    scan_chunked(input, h0, max_chunk.min(fit).max(1))
}

/// The CubeCL kernels (`bit_axon_kernels::scan`): the decode-step kernel for one token outside
/// autodiff, else the chunked scan kernel with its own backward.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn kernel_scan(input: ScanInput, h0: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    use bit_axon_kernels::scan as k;
    let ScanInput { x, dt, a, b, c, d, reset } = input;
    let [bsz, len, e] = x.dims();
    let n = a.dims()[1];
    if len == 1 && reset.is_none() && !x.is_autodiff() {
        let (y, h) = k::selective_scan_step(
            x.reshape([bsz, e]),
            dt.reshape([bsz, e]),
            a,
            b.reshape([bsz, n]),
            c.reshape([bsz, n]),
            d,
            h0,
        );
        return (y.reshape([bsz, 1, e]), h);
    }
    k::selective_scan(x, dt, a, b, c, d, h0, reset, None)
}

/// Token-by-token scan: `L` steps of a few `[B, E, N]` ops.
pub fn scan_sequential(input: ScanInput, mut h: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let ScanInput { x, dt, a, b, c, d, reset } = input;
    let [bsz, len, e] = x.dims();
    let n = a.dims()[1];
    let a = a.unsqueeze_dim::<3>(0);
    let mut ys = Vec::with_capacity(len);
    for t in 0..len {
        let x_t = x.clone().narrow(1, t, 1).reshape([bsz, e, 1]);
        let dt_t = dt.clone().narrow(1, t, 1).reshape([bsz, e, 1]);
        let b_t = b.clone().narrow(1, t, 1).reshape([bsz, 1, n]);
        let c_t = c.clone().narrow(1, t, 1).reshape([bsz, 1, n]);
        let mut decay = (dt_t.clone() * a.clone()).exp();
        if let Some(r) = &reset {
            decay = decay * r.clone().narrow(1, t, 1).neg().add_scalar(1.0).reshape([bsz, 1, 1]);
        }
        h = decay * h + (dt_t * x_t) * b_t;
        ys.push((h.clone() * c_t).sum_dim(2).reshape([bsz, 1, e]));
    }
    let y = Tensor::cat(ys, 1) + x * d.unsqueeze::<3>();
    (y, h)
}

/// Chunked scan: inside a chunk of `S` tokens the state contributions are a masked `S × S`
/// decay matrix (built from a segment sum, so no differences of large cumulative sums are
/// taken); across chunks the state is carried sequentially.
///
/// Memory is `O(B·E·N·S²)` per chunk; the result does not depend on `chunk`.
pub fn scan_chunked(input: ScanInput, mut h: Tensor<3>, chunk: usize) -> (Tensor<3>, Tensor<3>) {
    let ScanInput { x, dt, a, b, c, d, reset } = input;
    let [bsz, len, e] = x.dims();
    let n = a.dims()[1];
    let device = x.device();
    let a4 = a.reshape([1, e, n, 1]);
    let mut ys = Vec::with_capacity(len.div_ceil(chunk));
    let mut t0 = 0;
    while t0 < len {
        let s = chunk.min(len - t0);
        let x_c = x.clone().narrow(1, t0, s);
        let dt_c = dt.clone().narrow(1, t0, s);
        // [B, E, S]: step sizes and inputs with time last.
        let dt_p = dt_c.clone().swap_dims(1, 2);
        let u = (dt_c * x_c).swap_dims(1, 2);
        // [B, N, S]
        let b_p = b.clone().narrow(1, t0, s).swap_dims(1, 2);
        let c_p = c.clone().narrow(1, t0, s).swap_dims(1, 2);
        // Log-decay per step, [B, E, N, S].
        let mut la = dt_p.unsqueeze_dim::<4>(2) * a4.clone();
        if let Some(r) = &reset {
            la = la + r.clone().narrow(1, t0, s).reshape([bsz, 1, 1, s]).mul_scalar(RESET_LOG_DECAY);
        }
        let full = [bsz, e, n, s, s];
        // seg[t, s'] = Σ_{s' < m ≤ t} la[m]; exp of it is the decay from s' to t (t ≥ s').
        let keep_after = Tensor::<2, Bool>::tril_mask([s, s], -1, &device).unsqueeze::<5>().expand(full);
        let future = Tensor::<2, Bool>::tril_mask([s, s], 0, &device).unsqueeze::<5>().expand(full);
        let seg = la.clone().unsqueeze_dim::<5>(4).expand(full).mask_fill(keep_after, 0.0).cumsum(3);
        let decay = seg.exp().mask_fill(future, 0.0);
        // Intra-chunk: y[t] = Σ_{s' ≤ t} (Σ_n C[t,n]·decay[t,s',n]·B[s',n]) · u[s'].
        let cb = c_p.clone().unsqueeze_dim::<4>(3) * b_p.clone().unsqueeze_dim::<4>(2);
        let g = (decay.clone() * cb.unsqueeze_dim::<5>(1)).sum_dim(2).reshape([bsz, e, s, s]);
        let y_intra = g.matmul(u.clone().unsqueeze_dim::<4>(3)).reshape([bsz, e, s]);
        // Carry-in from the previous state: decays by exp(cumsum(la)) from the chunk start.
        let carry = la.cumsum(3).exp();
        let h4 = h.clone().unsqueeze_dim::<4>(3);
        let y_carry = (carry.clone() * h4.clone() * c_p.unsqueeze_dim::<4>(1)).sum_dim(2).reshape([bsz, e, s]);
        ys.push((y_intra + y_carry).swap_dims(1, 2));
        // State at the chunk end: last row of the decay matrix applied to the inputs.
        let last = decay.narrow(3, s - 1, 1).reshape([bsz, e, n, s]);
        let h_in = (last * b_p.unsqueeze_dim::<4>(1) * u.unsqueeze_dim::<4>(2)).sum_dim(3).reshape([bsz, e, n]);
        h = h_in + carry.narrow(3, s - 1, 1).reshape([bsz, e, n]) * h;
        t0 += s;
    }
    let y = Tensor::cat(ys, 1) + x * d.unsqueeze::<3>();
    (y, h)
}
