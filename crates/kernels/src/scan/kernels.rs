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

/// Tokens whose inputs [`scan_fused`] requests before using them (one register block of
/// [`FUSED_GROUP`]-state inputs while the previous block is computed).
pub const FUSED_PREFETCH: usize = 8;
/// States per unit in [`scan_fused`]: `N / FUSED_GROUP` units share a channel.
pub const FUSED_GROUP: usize = 4;
/// Channels per cube of [`scan_fused`]: a cube holds `FUSED_CHANNELS_PER_CUBE · N / FUSED_GROUP`
/// units, so a channel's units never straddle two cubes.
pub const FUSED_CHANNELS_PER_CUBE: usize = 32;
/// The most units a channel is split over in [`scan_fused`] (`N ≤ 32`).
pub const FUSED_MAX_UNITS: usize = 8;

/// The inputs of tokens `t0..t0+p` (clamped to the last token) for one unit: `x, dt, 1 - reset`
/// and its `g` entries of `B, C` per token.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_load<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    reset: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    buf: &mut Array<f32>,
    b: usize,
    e: usize,
    s: usize,
    t0: usize,
    #[comptime] n: usize,
    #[comptime] g: usize,
    #[comptime] p: usize,
) {
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let w = comptime!(3 + 2 * g);
    #[unroll]
    for j in 0..p {
        let t = select(t0 + j < len, t0 + j, len - 1);
        let ix = (b * len + t) * e_dim + e;
        buf[j * w] = f32::cast_from(x[ix]);
        buf[j * w + 1] = f32::cast_from(dt[ix]);
        buf[j * w + 2] = 1.0 - f32::cast_from(reset[b * len + t]);
        let ib = (b * len + t) * n + s * g;
        #[unroll]
        for i in 0..g {
            buf[j * w + 3 + i] = f32::cast_from(bm[ib + i]);
            buf[j * w + 3 + g + i] = f32::cast_from(cm[ib + i]);
        }
    }
}

/// Advances one unit's `g` states over tokens `t0..t0+p` (those before `len`) from the inputs in
/// `buf`, then the channel's `ng` units sum their parts of `y` through shared memory (`smem`, one
/// padded row of `p + 1` per unit): unit `s` of a channel finishes tokens `s, s + ng, …` of the
/// block and writes them into rows `t` of `out`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn fused_block<F: Float>(
    h: &mut Array<f32>,
    av: &Array<f32>,
    buf: &Array<f32>,
    smem: &mut Shared<[f32]>,
    out: &mut Tensor<F>,
    dv: f32,
    b: usize,
    e: usize,
    s: usize,
    t0: usize,
    len: usize,
    valid: bool,
    #[comptime] n: usize,
    #[comptime] g: usize,
    #[comptime] p: usize,
) {
    let e_dim = out.shape(2);
    let w = comptime!(3 + 2 * g);
    let ng = comptime!(n / g);
    let row = UNIT_POS as usize * (p + 1);
    #[unroll]
    for j in 0..p {
        if t0 + j < len {
            let xv = buf[j * w];
            let dtv = buf[j * w + 1];
            let keep = buf[j * w + 2];
            let u = dtv * xv;
            // The first unit of the channel carries the skip term `D·x`.
            let mut y = select(s == 0, dv * xv, 0.0f32);
            #[unroll]
            for i in 0..g {
                let m = f32::exp(dtv * av[i]) * keep;
                h[i] = m * h[i] + u * buf[j * w + 3 + i];
                y += buf[j * w + 3 + g + i] * h[i];
            }
            smem[row + j] = y;
        }
    }
    sync_cube();
    let first = (UNIT_POS as usize - s) * (p + 1);
    #[unroll]
    for r in 0..comptime!(p.div_ceil(ng)) {
        let j = s + r * ng;
        let t = t0 + j;
        if j < p && t < len {
            let mut y = 0.0f32;
            #[unroll]
            for q in 0..ng {
                y += smem[first + q * (p + 1) + j];
            }
            if valid {
                out[(b * (len + n) + t) * e_dim + e] = F::cast_from(y);
            }
        }
    }
    sync_cube();
}

/// Single-pass forward. Units over `(b, e, s)`, `s` one of the `N / g` groups of `g` states (`s`
/// fastest, so a channel's units sit in one cube of `32 · N / g` units): each unit
/// walks the whole sequence with its states in registers, double-buffering `p` tokens of inputs
/// (the next block is requested before the current one is computed). Reads `x, dt, B, C` once and
/// writes `y` and the final state into the packed `out [B, L + N, E]`: no chunk states, no rerun.
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
    #[comptime] p: usize,
    #[define(F)] _dtype: ElemType,
) {
    let bsz = x.shape(0);
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let ng = comptime!(n / g);
    let units = bsz * e_dim * ng;
    // Units past the end run on the last unit's data (clamped) and write nothing: every unit of a
    // cube reaches each `sync_cube`.
    let valid = ABSOLUTE_POS < units;
    let q = select(valid, ABSOLUTE_POS, units - 1);
    // The cube size is a multiple of `ng`, so `s` is also this unit's place in its channel's run of
    // units within the cube (the shared-memory sum relies on it, for clamped units too).
    let s = ABSOLUTE_POS % ng;
    let be = q / ng;
    let e = be % e_dim;
    let b = be / e_dim;
    let mut h = Array::<f32>::new(g);
    let mut av = Array::<f32>::new(g);
    #[unroll]
    for i in 0..g {
        h[i] = f32::cast_from(h0[(b * e_dim + e) * n + s * g + i]);
        av[i] = f32::cast_from(a[e * n + s * g + i]);
    }
    let dv = f32::cast_from(d[e]);
    let w = comptime!(3 + 2 * g);
    let mut buf0 = Array::<f32>::new(p * w);
    let mut buf1 = Array::<f32>::new(p * w);
    let mut smem = Shared::<[f32]>::new_slice(comptime!(FUSED_CHANNELS_PER_CUBE * ng * (p + 1)));
    fused_load::<F>(x, dt, reset, bm, cm, &mut buf0, b, e, s, 0, n, g, p);
    let mut t0 = 0;
    while t0 < len {
        fused_load::<F>(x, dt, reset, bm, cm, &mut buf1, b, e, s, t0 + p, n, g, p);
        fused_block::<F>(&mut h, &av, &buf0, &mut smem, out, dv, b, e, s, t0, len, valid, n, g, p);
        fused_load::<F>(x, dt, reset, bm, cm, &mut buf0, b, e, s, t0 + 2 * p, n, g, p);
        fused_block::<F>(&mut h, &av, &buf1, &mut smem, out, dv, b, e, s, t0 + p, len, valid, n, g, p);
        t0 += 2 * p;
    }
    if valid {
        #[unroll]
        for i in 0..g {
            out[(b * (len + n) + len + s * g + i) * e_dim + e] = F::cast_from(h[i]);
        }
    }
}
