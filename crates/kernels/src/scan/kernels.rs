//! The CubeCL kernels of the selective scan. All tensors are contiguous; `F` is the element type
//! of the inputs and outputs (f32, f16 or bf16), every sum and the state are f32.
//!
//! Recurrence per batch `b`, channel `e`, state `i` (`r_t` = reset flag, `m_t` = decay):
//! `m_t = exp(dt_t·A[e,i])·(1 - r_t)`, `h_t = m_t·h_{t-1} + dt_t·x_t·B_t[i]`,
//! `y_t = Σ_i C_t[i]·h_t + D[e]·x_t`.
//!
//! Time is split into chunks of `T` tokens. Forward: (1) each chunk's end state from zero and its
//! total decay `P = Π m_t` ([`scan_chunk_local`]); (2) a sequential pass over chunks gives every
//! chunk's start state and the final state ([`scan_chunk_carry`]); (3) each chunk is rerun from its
//! start state and writes `y` ([`scan_chunk_out`]). Chunk states are `[B, K, N, E]` f32 (`E`
//! fastest, so neighbouring units touch neighbouring addresses). Backward mirrors it in reverse
//! time ([`scan_bwd_local`], [`scan_bwd_carry`], [`scan_bwd_chunk`]).
//!
//! The packed forward output is `[B, L + N, E]`: rows `0..L` hold `y`, rows `L..L+N` the final
//! state transposed (`h_last[b, e, i]` at row `L + i`).

use cubecl::{cube, prelude::*};

/// Forward pass 1: units over `(b, k, e)`; writes `hl` (chunk end state from zero) and `pp`
/// (chunk decay product), both `[B, K, N, E]`.
#[cube(launch)]
pub fn scan_chunk_local<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    a: &Tensor<F>,
    bm: &Tensor<F>,
    reset: &Tensor<F>,
    hl: &mut Tensor<f32>,
    pp: &mut Tensor<f32>,
    chunk: u32,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = x.shape(0);
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let chunk = chunk as usize;
    let kc = hl.shape(1);
    if ABSOLUTE_POS >= bsz * kc * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let bk = ABSOLUTE_POS / e_dim;
    let k = bk % kc;
    let b = bk / kc;
    let mut h = Array::<f32>::new(n);
    let mut p = Array::<f32>::new(n);
    let mut av = Array::<f32>::new(n);
    #[unroll]
    for i in 0..n {
        h[i] = 0.0;
        p[i] = 1.0;
        av[i] = f32::cast_from(a[e * n + i]);
    }
    let t0 = k * chunk;
    let t1 = select(t0 + chunk < len, t0 + chunk, len);
    for t in t0..t1 {
        let ix = (b * len + t) * e_dim + e;
        let dtv = f32::cast_from(dt[ix]);
        let u = dtv * f32::cast_from(x[ix]);
        let keep = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n;
        #[unroll]
        for i in 0..n {
            let m = f32::exp(dtv * av[i]) * keep;
            h[i] = m * h[i] + u * f32::cast_from(bm[ib + i]);
            p[i] *= m;
        }
    }
    let base = bk * n * e_dim + e;
    #[unroll]
    for i in 0..n {
        hl[base + i * e_dim] = h[i];
        pp[base + i * e_dim] = p[i];
    }
}

/// Forward pass 2: units over `(b, i, e)`; carries the state across chunks from `h0 [B, E, N]`,
/// writes every chunk's start state `hs [B, K, N, E]` and the final state into `out`.
#[cube(launch)]
pub fn scan_chunk_carry<F: Float>(
    h0: &Tensor<F>,
    hl: &Tensor<f32>,
    pp: &Tensor<f32>,
    hs: &mut Tensor<f32>,
    out: &mut Tensor<F>,
    len: u32,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = h0.shape(0);
    let e_dim = h0.shape(1);
    let kc = hl.shape(1);
    let len = len as usize;
    if ABSOLUTE_POS >= bsz * n * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let bi = ABSOLUTE_POS / e_dim;
    let i = bi % n;
    let b = bi / n;
    let mut h = f32::cast_from(h0[(b * e_dim + e) * n + i]);
    for k in 0..kc {
        let idx = ((b * kc + k) * n + i) * e_dim + e;
        hs[idx] = h;
        h = pp[idx] * h + hl[idx];
    }
    out[(b * (len + n) + len + i) * e_dim + e] = F::cast_from(h);
}

/// Forward pass 3: units over `(b, k, e)`; reruns each chunk from its start state and writes `y`
/// into rows `0..L` of `out`.
#[cube(launch)]
pub fn scan_chunk_out<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    a: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    d: &Tensor<F>,
    reset: &Tensor<F>,
    hs: &Tensor<f32>,
    out: &mut Tensor<F>,
    chunk: u32,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = x.shape(0);
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let chunk = chunk as usize;
    let kc = hs.shape(1);
    if ABSOLUTE_POS >= bsz * kc * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let bk = ABSOLUTE_POS / e_dim;
    let k = bk % kc;
    let b = bk / kc;
    let mut h = Array::<f32>::new(n);
    let mut av = Array::<f32>::new(n);
    let base = bk * n * e_dim + e;
    #[unroll]
    for i in 0..n {
        h[i] = hs[base + i * e_dim];
        av[i] = f32::cast_from(a[e * n + i]);
    }
    let dv = f32::cast_from(d[e]);
    let t0 = k * chunk;
    let t1 = select(t0 + chunk < len, t0 + chunk, len);
    for t in t0..t1 {
        let ix = (b * len + t) * e_dim + e;
        let dtv = f32::cast_from(dt[ix]);
        let xv = f32::cast_from(x[ix]);
        let u = dtv * xv;
        let keep = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n;
        let mut y = dv * xv;
        #[unroll]
        for i in 0..n {
            let m = f32::exp(dtv * av[i]) * keep;
            h[i] = m * h[i] + u * f32::cast_from(bm[ib + i]);
            y += f32::cast_from(cm[ib + i]) * h[i];
        }
        out[(b * (len + n) + t) * e_dim + e] = F::cast_from(y);
    }
}

/// One decode step, units over `(b, e)`: `x, dt [B, E]`, `B, C [B, N]`, state `h [B, E, N]` →
/// `y [B, E]` and the new state `h_out [B, E, N]`.
#[cube(launch)]
pub fn scan_decode_step<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    a: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    d: &Tensor<F>,
    h: &Tensor<F>,
    y: &mut Tensor<F>,
    h_out: &mut Tensor<F>,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = x.shape(0);
    let e_dim = x.shape(1);
    if ABSOLUTE_POS >= bsz * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let b = ABSOLUTE_POS / e_dim;
    let dtv = f32::cast_from(dt[ABSOLUTE_POS]);
    let xv = f32::cast_from(x[ABSOLUTE_POS]);
    let u = dtv * xv;
    let mut acc = f32::cast_from(d[e]) * xv;
    #[unroll]
    for i in 0..n {
        let hi = ABSOLUTE_POS * n + i;
        let m = f32::exp(dtv * f32::cast_from(a[e * n + i]));
        let hn = m * f32::cast_from(h[hi]) + u * f32::cast_from(bm[b * n + i]);
        acc += f32::cast_from(cm[b * n + i]) * hn;
        h_out[hi] = F::cast_from(hn);
    }
    y[ABSOLUTE_POS] = F::cast_from(acc);
}

/// Backward pass 1: units over `(b, k, e)`; each chunk's adjoint flowing into the state before
/// it, with nothing coming from later chunks: `gl [B, K, N, E]`.
#[cube(launch)]
pub fn scan_bwd_local<F: Float>(
    dt: &Tensor<F>,
    a: &Tensor<F>,
    cm: &Tensor<F>,
    reset: &Tensor<F>,
    gp: &Tensor<F>,
    gl: &mut Tensor<f32>,
    chunk: u32,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = dt.shape(0);
    let len = dt.shape(1);
    let e_dim = dt.shape(2);
    let chunk = chunk as usize;
    let kc = gl.shape(1);
    if ABSOLUTE_POS >= bsz * kc * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let bk = ABSOLUTE_POS / e_dim;
    let k = bk % kc;
    let b = bk / kc;
    let mut g = Array::<f32>::new(n);
    let mut av = Array::<f32>::new(n);
    #[unroll]
    for i in 0..n {
        g[i] = 0.0;
        av[i] = f32::cast_from(a[e * n + i]);
    }
    let t0 = k * chunk;
    let t1 = select(t0 + chunk < len, t0 + chunk, len);
    let cnt = t1 - t0;
    for jj in 0..cnt {
        let t = t1 - 1 - jj;
        let ix = (b * len + t) * e_dim + e;
        let dtv = f32::cast_from(dt[ix]);
        let gy = f32::cast_from(gp[(b * (len + n) + t) * e_dim + e]);
        let keep = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n;
        #[unroll]
        for i in 0..n {
            g[i] += f32::cast_from(cm[ib + i]) * gy;
            g[i] *= f32::exp(dtv * av[i]) * keep;
        }
    }
    let base = bk * n * e_dim + e;
    #[unroll]
    for i in 0..n {
        gl[base + i * e_dim] = g[i];
    }
}

/// Backward pass 2: units over `(b, i, e)`; carries the adjoint from the final state's gradient
/// back across chunks: `cs [B, K, N, E]` (adjoint entering each chunk from its end) and `dh0`.
#[cube(launch)]
pub fn scan_bwd_carry<F: Float>(
    gp: &Tensor<F>,
    gl: &Tensor<f32>,
    pp: &Tensor<f32>,
    cs: &mut Tensor<f32>,
    dh0: &mut Tensor<F>,
    #[comptime] n: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = dh0.shape(0);
    let e_dim = dh0.shape(1);
    let kc = gl.shape(1);
    let len = gp.shape(1) - n;
    if ABSOLUTE_POS >= bsz * n * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let bi = ABSOLUTE_POS / e_dim;
    let i = bi % n;
    let b = bi / n;
    let mut c = f32::cast_from(gp[(b * (len + n) + len + i) * e_dim + e]);
    for kk in 0..kc {
        let k = kc - 1 - kk;
        let idx = ((b * kc + k) * n + i) * e_dim + e;
        cs[idx] = c;
        c = gl[idx] + pp[idx] * c;
    }
    dh0[(b * e_dim + e) * n + i] = F::cast_from(c);
}

/// Backward pass 3. A cube is `width` channels of one `(b, k)` (cube position `(e-block, b·K+k)`).
/// Each unit recomputes its chunk's states from `hs` (kept in a local array of `tc·n`), then walks
/// back through the chunk: writes `dx`, `ddt`, its `dA` partial `[B, K, N, E]`, and, summed over
/// the cube's channels in shared memory, the `dB | dC` partials `[B, L, E/width, 2N]`.
#[cube(launch)]
pub fn scan_bwd_chunk<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    a: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    d: &Tensor<F>,
    reset: &Tensor<F>,
    gp: &Tensor<F>,
    hs: &Tensor<f32>,
    cs: &Tensor<f32>,
    dx: &mut Tensor<F>,
    ddt: &mut Tensor<F>,
    da: &mut Tensor<f32>,
    dbc: &mut Tensor<f32>,
    #[comptime] n: usize,
    #[comptime] tc: usize,
    #[comptime] width: usize,
    #[define(F)] _dtype: ElemType,
) {
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let kc = hs.shape(1);
    let eb = dbc.shape(2);
    let ux = UNIT_POS_X as usize;
    let e_raw = CUBE_POS_X as usize * width + ux;
    let valid = e_raw < e_dim;
    let e = select(valid, e_raw, e_dim - 1);
    let bk = CUBE_POS_Y as usize;
    let k = bk % kc;
    let b = bk / kc;
    let mut hist = Array::<f32>::new(tc * n);
    let mut hstart = Array::<f32>::new(n);
    let mut h = Array::<f32>::new(n);
    let mut g = Array::<f32>::new(n);
    let mut dacc = Array::<f32>::new(n);
    let mut av = Array::<f32>::new(n);
    let mut smem = Shared::<[f32]>::new_slice(2 * n * width);
    let reps = comptime!((2 * n).div_ceil(width));
    let base = bk * n * e_dim + e;
    #[unroll]
    for i in 0..n {
        hstart[i] = hs[base + i * e_dim];
        h[i] = hstart[i];
        g[i] = cs[base + i * e_dim];
        dacc[i] = 0.0;
        av[i] = f32::cast_from(a[e * n + i]);
    }
    let dv = f32::cast_from(d[e]);
    let t0 = k * tc;
    let t1 = select(t0 + tc < len, t0 + tc, len);
    let cnt = t1 - t0;
    for j in 0..cnt {
        let t = t0 + j;
        let ix = (b * len + t) * e_dim + e;
        let dtv = f32::cast_from(dt[ix]);
        let u = dtv * f32::cast_from(x[ix]);
        let keep = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n;
        #[unroll]
        for i in 0..n {
            let m = f32::exp(dtv * av[i]) * keep;
            h[i] = m * h[i] + u * f32::cast_from(bm[ib + i]);
            hist[j * n + i] = h[i];
        }
    }
    for jj in 0..cnt {
        let j = cnt - 1 - jj;
        let t = t0 + j;
        let jp = select(j > 0, j, 1) - 1;
        let ix = (b * len + t) * e_dim + e;
        let dtv = f32::cast_from(dt[ix]);
        let xv = f32::cast_from(x[ix]);
        let gy = f32::cast_from(gp[(b * (len + n) + t) * e_dim + e]);
        let keep = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n;
        let mut dxv = dv * gy;
        let mut ddtv = 0.0;
        #[unroll]
        for i in 0..n {
            let hprev = select(j > 0, hist[jp * n + i], hstart[i]);
            let ht = hist[j * n + i];
            let bi = f32::cast_from(bm[ib + i]);
            g[i] += f32::cast_from(cm[ib + i]) * gy;
            let m = f32::exp(dtv * av[i]) * keep;
            dxv += g[i] * dtv * bi;
            ddtv += g[i] * (av[i] * m * hprev + bi * xv);
            dacc[i] += g[i] * dtv * m * hprev;
            smem[i * width + ux] = select(valid, g[i] * dtv * xv, 0.0);
            smem[(n + i) * width + ux] = select(valid, gy * ht, 0.0);
            g[i] *= m;
        }
        if valid {
            dx[ix] = F::cast_from(dxv);
            ddt[ix] = F::cast_from(ddtv);
        }
        sync_cube();
        #[unroll]
        for r in 0..reps {
            let col = r * width + ux;
            if col < 2 * n {
                let mut s = 0.0;
                for u in 0..width {
                    s += smem[col * width + u];
                }
                dbc[((b * len + t) * eb + CUBE_POS_X as usize) * 2 * n + col] = s;
            }
        }
        sync_cube();
    }
    if valid {
        #[unroll]
        for i in 0..n {
            da[base + i * e_dim] = dacc[i];
        }
    }
}

/// The decode step's causal depthwise convolution, units over `(b, e)`: window `[B, K-1, E]` of
/// earlier inputs, new input `x [B, E]`, weight `[E, K]`, bias `[E]` →
/// `out = silu(bias + Σ_j w[e, j]·[window; x][j])` `[B, E]` and the shifted window.
#[cube(launch)]
pub fn conv_step<F: Float>(
    window: &Tensor<F>,
    x: &Tensor<F>,
    w: &Tensor<F>,
    bias: &Tensor<F>,
    out: &mut Tensor<F>,
    new_window: &mut Tensor<F>,
    #[comptime] k: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = x.shape(0);
    let e_dim = x.shape(1);
    if ABSOLUTE_POS >= bsz * e_dim {
        terminate!();
    }
    let e = ABSOLUTE_POS % e_dim;
    let b = ABSOLUTE_POS / e_dim;
    let xv = f32::cast_from(x[ABSOLUTE_POS]);
    let mut acc = f32::cast_from(bias[e]) + xv * f32::cast_from(w[e * k + k - 1]);
    #[unroll]
    for j in 0..k - 1 {
        let v = window[(b * (k - 1) + j) * e_dim + e];
        acc += f32::cast_from(v) * f32::cast_from(w[e * k + j]);
        if j > 0 {
            new_window[(b * (k - 1) + j - 1) * e_dim + e] = v;
        }
    }
    new_window[(b * (k - 1) + k - 2) * e_dim + e] = x[ABSOLUTE_POS];
    out[ABSOLUTE_POS] = F::cast_from(acc / (1.0 + f32::exp(-acc)));
}

/// Tokens per block of [`scan_fused`]: a block's inputs are staged in shared memory (one cube-wide
/// sync per block), and the next block is requested before the current one is computed.
pub const FUSED_BLOCK: usize = 16;
/// States per unit of [`scan_fused`] by default (8 with many units, see
/// `cube::FusedShape::for_shape`): on the H200, two states per unit (twice the units) were slower at
/// every shape timed, also at B = 1 where they double the resident warps
/// (`experiments/scan-kernels/results.md` run 4).
pub const FUSED_STATES_PER_UNIT: usize = 4;
/// The largest state size [`scan_fused`] takes (its shared memory grows with `N`).
pub const FUSED_MAX_N: usize = 32;
/// `log2(e)`: the fast path computes `exp(dt·A)` as `2^(dt·A·log2 e)`.
pub const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// `exp(v)` for `v = arg / log2(e)` when `fast` (CUDA: one `ex2.approx.ftz` on the special-function
/// unit, max relative error 2^-22, values below 2^-126 flushed to zero), `exp(arg)` otherwise.
/// The caller scales `arg` accordingly.
#[cube]
fn decay(arg: f32, #[comptime] fast: bool) -> f32 {
    if fast {
        let out: f32;
        gpu_asm!("ex2.approx.ftz.f32 {}, {};", out(_) out, in(_) arg, options(pure, nomem));
        out
    } else {
        f32::exp(arg)
    }
}

// Every shared-memory and global index below is one runtime base (hoisted out of the unrolled
// loops) plus a compile-time offset. CubeCL indexes with `u32`, and NVCC does not fold a constant
// out of a `u32` sum whose runtime part comes last (`base + j·cpc + c`): run 4's kernel spent about
// 13 integer instructions per token on addresses, a third of all it issued (SASS in
// `experiments/scan-kernels/results.md`, run 5). Written as `(base + c) + j·cpc`, the offset
// goes into the load's immediate.

/// Requests block `t0..t0+T` of a cube's inputs into registers `r` (this thread's share):
/// `x, dt` for the cube's `cpc` channels, `B, C` rows, and the reset term `-1e30·reset` (added to the
/// decay's exponent, it makes the decay exactly 0). Tokens past the end read the last token.
/// Thread `tid` loads channel `c = tid % cpc` of tokens `tid / cpc + k·ng` (`threads = cpc·ng`).
/// With `strided`, inputs are read through their batch and token strides (dense last dimension):
/// CUDA's pitched rows and kept views are read in place, not copied first.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_fetch<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    reset: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    r: &mut Array<f32>,
    b: usize,
    ch: usize,
    t0: usize,
    #[comptime] n: usize,
    #[comptime] cpc: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
    #[comptime] strided: bool,
) {
    let len = x.shape(1);
    let tid = UNIT_POS as usize;
    let ng = comptime!(threads / cpc);
    let kx = comptime!((tb * cpc).div_ceil(threads));
    let kb = comptime!((tb * n).div_ceil(threads));
    // `ch` is this thread's channel, already clamped into `E`.
    let tj = t0 + tid / cpc;
    if strided {
        let xb = b * x.stride(0) + ch;
        let db = b * dt.stride(0) + ch;
        let (xs, ds) = (x.stride(1), dt.stride(1));
        #[unroll]
        for k in 0..kx {
            let t = tj + k * ng;
            let t = select(t < len, t, len - 1);
            r[k] = f32::cast_from(x[xb + t * xs]);
            r[kx + k] = f32::cast_from(dt[db + t * ds]);
        }
        let bb = b * bm.stride(0);
        let cb = b * cm.stride(0);
        let (bs, cs) = (bm.stride(1), cm.stride(1));
        #[unroll]
        for k in 0..kb {
            let i = tid + k * threads;
            let t = t0 + i / n;
            let t = select(t < len, t, len - 1);
            r[2 * kx + k] = f32::cast_from(bm[bb + t * bs + i % n]);
            r[2 * kx + kb + k] = f32::cast_from(cm[cb + t * cs + i % n]);
        }
        let t = select(t0 + tid < len, t0 + tid, len - 1);
        r[2 * kx + 2 * kb] = -1.0e30f32 * f32::cast_from(reset[b * reset.stride(0) + t * reset.stride(1)]);
    } else {
        // Dense inputs: one index for `x` and `dt`, one for `B` and `C` (run 16: the strided
        // indexing above cost the dense forward 7–9 %).
        let e_dim = x.shape(2);
        #[unroll]
        for k in 0..kx {
            let t = tj + k * ng;
            let ix = (b * len + select(t < len, t, len - 1)) * e_dim + ch;
            r[k] = f32::cast_from(x[ix]);
            r[kx + k] = f32::cast_from(dt[ix]);
        }
        #[unroll]
        for k in 0..kb {
            let i = tid + k * threads;
            let t = t0 + i / n;
            let ib = (b * len + select(t < len, t, len - 1)) * n + i % n;
            r[2 * kx + k] = f32::cast_from(bm[ib]);
            r[2 * kx + kb + k] = f32::cast_from(cm[ib]);
        }
        let t = select(t0 + tid < len, t0 + tid, len - 1);
        r[2 * kx + 2 * kb] = -1.0e30f32 * f32::cast_from(reset[b * len + t]);
    }
}

/// Writes the registers of [`fused_fetch`] into stage buffer `buf` (0 or 1) of `stage`, laid out
/// `[2][x: T·cpc | dt: T·cpc | B: T·N | C: T·N | reset term: T]`.
#[cube]
fn fused_stage(
    r: &Array<f32>,
    stage: &mut Shared<[f32]>,
    buf: usize,
    #[comptime] n: usize,
    #[comptime] cpc: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
) {
    let tid = UNIT_POS as usize;
    let kx = comptime!((tb * cpc).div_ceil(threads));
    let kb = comptime!((tb * n).div_ceil(threads));
    let size = comptime!(2 * tb * cpc + 2 * tb * n + tb);
    let base = buf * size + tid;
    #[unroll]
    for k in 0..kx {
        if tid + k * threads < tb * cpc {
            stage[base + k * threads] = r[k];
            stage[base + tb * cpc + k * threads] = r[kx + k];
        }
    }
    #[unroll]
    for k in 0..kb {
        if tid + k * threads < tb * n {
            stage[base + 2 * tb * cpc + k * threads] = r[2 * kx + k];
            stage[base + 2 * tb * cpc + tb * n + k * threads] = r[2 * kx + kb + k];
        }
    }
    if tid < tb {
        stage[base + 2 * tb * cpc + 2 * tb * n] = r[2 * kx + 2 * kb];
    }
}

/// Sums the `ng` partial `y` of each (token, channel) of the block starting at `t0`, held in
/// `ybuf[buf]` (`[T][ng][row]`, `row ≥ cpc` with `row ≡ 32 / ng (mod 32)`, so that a plane's
/// writes, `ng` units of `32 / ng` channels, fall in distinct banks), and writes them to `out`
/// (neighbouring threads, neighbouring channels): thread `tid` sums channel `tid % cpc` of tokens
/// `tid / cpc + k·ng`. `live`: this thread's channel exists.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_flush<F: Float>(
    ybuf: &Shared<[f32]>,
    out: &mut Tensor<F>,
    buf: usize,
    b: usize,
    ch: usize,
    live: bool,
    t0: usize,
    len: usize,
    #[comptime] n: usize,
    #[comptime] ng: usize,
    #[comptime] cpc: usize,
    #[comptime] row: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
) {
    let e_dim = out.shape(2);
    let tid = UNIT_POS as usize;
    let j0 = tid / cpc;
    let base = buf * comptime!(tb * ng * row) + j0 * comptime!(ng * row) + tid % cpc;
    let obase = (b * (len + n) + t0 + j0) * e_dim + ch;
    #[unroll]
    for k in 0..comptime!((tb * cpc).div_ceil(threads)) {
        // Token `j0 + k·ng` of the block.
        if j0 + k * ng < tb && t0 + j0 + k * ng < len && live {
            let mut y = 0.0f32;
            #[unroll]
            for s in 0..ng {
                y += ybuf[base + comptime!(k * ng * ng * row + s * row)];
            }
            out[obase + comptime!(k * ng) * e_dim] = F::cast_from(y);
        }
    }
}

/// Advances one unit's `g` states over the block at `t0` from stage buffer `cur`, and writes its
/// part of each token's `y` into `ybuf[cur]`, or, with one unit per channel (`g = N`), the whole
/// `y` straight into `out` at `obase + j·E` (`live`: the channel exists). With `psum` the
/// channel's units (neighbouring lanes) sum their parts by plane shuffles and the first stores
/// it. The block runs in steps of `tu` unrolled tokens. `check`: tokens past `len` are skipped
/// (last block).
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_tokens<F: Float>(
    stage: &Shared<[f32]>,
    ybuf: &mut Shared<[f32]>,
    out: &mut Tensor<F>,
    h: &mut Array<f32>,
    av: &Array<f32>,
    dv: f32,
    cur: usize,
    s: usize,
    c: usize,
    t0: usize,
    len: usize,
    obase: usize,
    live: bool,
    #[comptime] n: usize,
    #[comptime] g: usize,
    #[comptime] cpc: usize,
    #[comptime] row: usize,
    #[comptime] tb: usize,
    #[comptime] tu: usize,
    #[comptime] fast: bool,
    #[comptime] psum: bool,
    #[comptime] check: bool,
) {
    let ng = comptime!(n / g);
    let e_dim = out.shape(2);
    let size = comptime!(2 * tb * cpc + 2 * tb * n + tb);
    for step in 0..comptime!(tb / tu) {
        // Runtime bases; every index below adds a compile-time offset to one of them.
        let j0 = step * tu;
        let xb = cur * size + c + j0 * cpc;
        let bb = cur * size + s * g + j0 * n;
        let rb0 = cur * size + j0;
        let yb = cur * comptime!(tb * ng * row) + s * row + c + j0 * comptime!(ng * row);
        let ob = obase + j0 * e_dim;
        #[unroll]
        for j in 0..tu {
            if !check || t0 + j0 + j < len {
                let xv = stage[xb + comptime!(j * cpc)];
                let dtv = stage[xb + comptime!(tb * cpc + j * cpc)];
                let rb = stage[rb0 + comptime!(2 * tb * cpc + 2 * tb * n + j)];
                let u = dtv * xv;
                let mut y = dv * xv;
                #[unroll]
                for i in 0..g {
                    let m = decay(dtv * av[i] + rb, fast);
                    h[i] = m * h[i] + u * stage[bb + comptime!(2 * tb * cpc + j * n + i)];
                    y += stage[bb + comptime!(2 * tb * cpc + tb * n + j * n + i)] * h[i];
                }
                if comptime!(ng == 1) {
                    if live {
                        out[ob + comptime!(j) * e_dim] = F::cast_from(y);
                    }
                } else if comptime!(psum) {
                    // A channel's `ng` units are neighbouring lanes of one plane.
                    let mut yt = y;
                    if comptime!(ng >= 2) {
                        yt += plane_shuffle_xor(yt, 1u32);
                    }
                    if comptime!(ng >= 4) {
                        yt += plane_shuffle_xor(yt, 2u32);
                    }
                    if comptime!(ng >= 8) {
                        yt += plane_shuffle_xor(yt, 4u32);
                    }
                    if s == 0 && live {
                        out[ob + comptime!(j) * e_dim] = F::cast_from(yt);
                    }
                } else {
                    ybuf[yb + comptime!(j * ng * row)] = y;
                }
            }
        }
    }
}

/// Single-pass forward. Cube `(channel block, b)`: `cpc` channels of batch `b`, each split over
/// `ng = N / g` units of `g` states (`s` fastest). Every unit walks the whole sequence with its
/// states in registers; the cube stages each block of [`FUSED_BLOCK`] tokens of `x, dt, B, C,
/// reset` in shared memory (requested one block ahead, one sync per block), and each unit's part of
/// `y` goes through shared memory to be summed over the channel's units one block later (with
/// one unit per channel, `g = N`, it is stored directly: neighbouring threads, neighbouring
/// channels; with `psum`, plane shuffles sum a channel's units and `y` is stored directly too).
/// Blocks run in unrolled steps of `tu` tokens. Reads
/// `x, dt, B, C` once and writes `y` and the final state into the packed `out [B, L + N, E]`.
/// `fast`: CUDA's `ex2.approx` for the decay (see [`decay`]). `strided`: some input is not dense
/// (see [`fused_fetch`]).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_fused<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    a: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    d: &Tensor<F>,
    reset: &Tensor<F>,
    h0: &Tensor<F>,
    out: &mut Tensor<F>,
    #[comptime] n: usize,
    #[comptime] g: usize,
    #[comptime] cpc: usize,
    #[comptime] row: usize,
    #[comptime] tb: usize,
    #[comptime] tu: usize,
    #[comptime] fast: bool,
    #[comptime] psum: bool,
    #[comptime] strided: bool,
    #[define(F)] _dtype: ElemType,
) {
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let ng = comptime!(n / g);
    let threads = comptime!(cpc * ng);
    let tid = UNIT_POS as usize;
    let s = tid % ng;
    let ch0 = CUBE_POS_X as usize * cpc;
    let b = CUBE_POS_Y as usize;
    let c = tid / ng;
    // Units past the last channel compute on its data (every unit reaches each sync) and write
    // nothing.
    let valid = ch0 + c < e_dim;
    let e = select(valid, ch0 + c, e_dim - 1);
    // The channel this thread loads and stores in the fetch and flush (`tid % cpc`; not `c`).
    let fc = ch0 + tid % cpc;
    let flive = fc < e_dim;
    let fch = select(flive, fc, e_dim - 1);
    let mut h = Array::<f32>::new(g);
    let mut av = Array::<f32>::new(g);
    #[unroll]
    for i in 0..g {
        h[i] = f32::cast_from(h0[(b * e_dim + e) * n + s * g + i]);
        let v = f32::cast_from(a[e * n + s * g + i]);
        if fast {
            av[i] = v * LOG2_E;
        } else {
            av[i] = v;
        }
    }
    let dv = select(s == 0, f32::cast_from(d[e]), 0.0f32);
    let kx = comptime!((tb * cpc).div_ceil(threads));
    let kb = comptime!((tb * n).div_ceil(threads));
    let size = comptime!(2 * tb * cpc + 2 * tb * n + tb);
    // One unit per channel, or plane sums: `y` goes straight out, no `y` buffers.
    let ybufs = comptime!(ng > 1 && !psum);
    let ysize = comptime!(if ybufs { tb * ng * row } else { 1 });
    let mut stage = Shared::<[f32]>::new_slice(comptime!(2 * size));
    let mut ybuf = Shared::<[f32]>::new_slice(comptime!(2 * ysize));
    let mut r = Array::<f32>::new(comptime!(2 * kx + 2 * kb + 1));
    fused_fetch::<F>(x, dt, reset, bm, cm, &mut r, b, fch, 0, n, cpc, threads, tb, strided);
    fused_stage(&r, &mut stage, 0, n, cpc, threads, tb);
    sync_cube();
    let blocks = (len + tb - 1) / tb;
    for blk in 0..blocks {
        let cur = blk % 2;
        let t0 = blk * tb;
        if blk + 1 < blocks {
            fused_fetch::<F>(x, dt, reset, bm, cm, &mut r, b, fch, t0 + tb, n, cpc, threads, tb, strided);
        }
        if comptime!(ybufs) {
            if blk > 0 {
                fused_flush::<F>(&ybuf, out, 1 - cur, b, fch, flive, t0 - tb, len, n, ng, cpc, row, threads, tb);
            }
        }
        let obase = (b * (len + n) + t0) * e_dim + e;
        // Full blocks run without a bound check per token, so the compiler can schedule the
        // block's loads and decays ahead of the recurrence; only the last block checks.
        if t0 + tb <= len {
            fused_tokens::<F>(
                &stage, &mut ybuf, out, &mut h, &av, dv, cur, s, c, t0, len, obase, valid, n, g, cpc, row, tb, tu,
                fast, psum, false,
            );
        } else {
            fused_tokens::<F>(
                &stage, &mut ybuf, out, &mut h, &av, dv, cur, s, c, t0, len, obase, valid, n, g, cpc, row, tb, tu,
                fast, psum, true,
            );
        }
        if blk + 1 < blocks {
            fused_stage(&r, &mut stage, 1 - cur, n, cpc, threads, tb);
        }
        sync_cube();
    }
    if comptime!(ybufs) {
        if blocks > 0 {
            let last = blocks - 1;
            fused_flush::<F>(&ybuf, out, last % 2, b, fch, flive, last * tb, len, n, ng, cpc, row, threads, tb);
        }
    }
    if valid {
        #[unroll]
        for i in 0..g {
            out[(b * (len + n) + len + s * g + i) * e_dim + e] = F::cast_from(h[i]);
        }
    }
}
