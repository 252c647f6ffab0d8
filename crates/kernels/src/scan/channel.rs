//! The single-pass forward with one thread per channel (`g = N`), the default where there are
//! enough channels (`FusedShape::for_shape`).
//!
//! Unlike [`super::kernels::scan_fused`], a thread's `x, dt` never go through shared memory: with
//! one thread per channel, the thread that loads a channel's `x, dt` is the one that uses them, so
//! each block of `T` tokens is requested into registers one block ahead (two register buffers,
//! alternating). Only `B, C` and the reset term, shared by the whole cube, are staged in shared
//! memory. That saves a shared-memory store and load per value of `x` and `dt`, and their
//! addresses; full blocks also load without clamping indices.
//!
//! Tokens past the end of the last block read `x = dt = 0` and no reset, so their decay is exactly
//! 1 and their input 0: the state passes through them unchanged, and the token loop needs no
//! bound check (only their `y` is not stored). One copy of the loop body keeps the kernel's code
//! small: instruction fetch stalls were a sixth of the issue stalls with the checked copy.


use cubecl::{cube, prelude::*};

use super::kernels::{LOG2_E, decay};

/// Requests `x, dt` of channel `e`, tokens `t0..t0+T`, into `xr, dr`; 0 for tokens past the end.
#[cube]
#[allow(clippy::too_many_arguments)]
fn channel_fetch<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    xr: &mut Array<f32>,
    dr: &mut Array<f32>,
    b: usize,
    e: usize,
    t0: usize,
    #[comptime] tb: usize,
) {
    let len = x.shape(1);
    let e_dim = x.shape(2);
    if t0 + tb <= len {
        let base = (b * len + t0) * e_dim + e;
        #[unroll]
        for k in 0..tb {
            let ix = base + k * e_dim;
            xr[k] = f32::cast_from(x[ix]);
            dr[k] = f32::cast_from(dt[ix]);
        }
    } else {
        #[unroll]
        for k in 0..tb {
            let t = t0 + k;
            let ix = (b * len + select(t < len, t, len - 1)) * e_dim + e;
            xr[k] = select(t < len, f32::cast_from(x[ix]), 0.0f32);
            dr[k] = select(t < len, f32::cast_from(dt[ix]), 0.0f32);
        }
    }
}

/// Requests this thread's share of the cube's `B, C` rows and reset term for tokens `t0..t0+T`
/// into `r` (`kb` values of `B`, then `kb` of `C`, then the reset term `-1e30·reset`, which makes
/// the decay 0, and 0 past the end). `B, C` past the end repeat the row's last value.
#[cube]
#[allow(clippy::too_many_arguments)]
fn shared_fetch<F: Float>(
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    reset: &Tensor<F>,
    r: &mut Array<f32>,
    b: usize,
    t0: usize,
    len: usize,
    #[comptime] n: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
) {
    let tid = UNIT_POS as usize;
    let kb = comptime!((tb * n).div_ceil(threads));
    // The last value of this batch row: indices past it (tokens past the end) read it instead.
    let last = (b * len + len) * n - 1;
    let base = (b * len + t0) * n + tid;
    #[unroll]
    for k in 0..kb {
        let ib = base + k * threads;
        let ib = select(ib < last, ib, last);
        r[k] = f32::cast_from(bm[ib]);
        r[kb + k] = f32::cast_from(cm[ib]);
    }
    let t = select(t0 + tid < len, t0 + tid, len - 1);
    r[2 * kb] = select(t0 + tid < len, -1.0e30f32 * f32::cast_from(reset[b * len + t]), 0.0f32);
}

/// Writes the registers of [`shared_fetch`] into stage buffer `buf` (0 or 1), laid out
/// `[2][B: T·N | C: T·N | reset term: T]`.
#[cube]
fn shared_stage(
    r: &mut Array<f32>,
    stage: &mut Shared<[f32]>,
    buf: usize,
    #[comptime] n: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
) {
    let tid = UNIT_POS as usize;
    let kb = comptime!((tb * n).div_ceil(threads));
    let size = comptime!(2 * tb * n + tb);
    let base = buf * size + tid;
    #[unroll]
    for k in 0..kb {
        if tid + k * threads < tb * n {
            stage[base + k * threads] = r[k];
            stage[base + tb * n + k * threads] = r[kb + k];
        }
    }
    if tid < tb {
        stage[base + 2 * tb * n] = r[2 * kb];
    }
}

/// Advances the channel's `N` states over the block at `t0` (`x, dt` in `xr, dr`; `B, C`, reset in
/// stage buffer `cur`) and stores the `y` of its first `stored` tokens at `obase + j·E` (0 when the
/// channel does not exist).
#[cube]
#[allow(clippy::too_many_arguments)]
fn channel_tokens<F: Float>(
    stage: &mut Shared<[f32]>,
    out: &mut Tensor<F>,
    h: &mut Array<f32>,
    av: &Array<f32>,
    xr: &Array<f32>,
    dr: &Array<f32>,
    dv: f32,
    cur: usize,
    obase: usize,
    stored: usize,
    live: bool,
    #[comptime] n: usize,
    #[comptime] tb: usize,
    #[comptime] fast: bool,
    #[comptime] full: bool,
) {
    let e_dim = out.shape(2);
    let sb = cur * comptime!(2 * tb * n + tb);
    #[unroll]
    for j in 0..tb {
        let xv = xr[j];
        let dtv = dr[j];
        let rb = stage[sb + comptime!(2 * tb * n + j)];
        let u = dtv * xv;
        let mut y = dv * xv;
        #[unroll]
        for i in 0..n {
            let arg = dtv * av[i] + rb;
            let m = decay(arg, fast);
            h[i] = m * h[i] + u * stage[sb + comptime!(j * n + i)];
            y += stage[sb + comptime!(tb * n + j * n + i)] * h[i];
        }
        if full {
            if live {
                out[obase + comptime!(j) * e_dim] = F::cast_from(y);
            }
        } else if j < stored {
            out[obase + comptime!(j) * e_dim] = F::cast_from(y);
        }
    }
}

/// One block of [`scan_fused_channel`], if `blk < blocks`: requests the next block (`x, dt` into
/// `xn, dn`, the shared inputs into `r`), runs this one from `xc, dc` and stage buffer `cur`, stages
/// the next block's shared inputs into the other buffer, and syncs the cube.
#[cube]
#[allow(clippy::too_many_arguments)]
fn channel_block<F: Float>(
    x: &Tensor<F>,
    dt: &Tensor<F>,
    bm: &Tensor<F>,
    cm: &Tensor<F>,
    reset: &Tensor<F>,
    out: &mut Tensor<F>,
    stage: &mut Shared<[f32]>,
    r: &mut Array<f32>,
    h: &mut Array<f32>,
    av: &Array<f32>,
    xc: &Array<f32>,
    dc: &Array<f32>,
    xn: &mut Array<f32>,
    dn: &mut Array<f32>,
    dv: f32,
    b: usize,
    e: usize,
    live: bool,
    blk: usize,
    blocks: usize,
    #[comptime] cur: usize,
    #[comptime] n: usize,
    #[comptime] threads: usize,
    #[comptime] tb: usize,
    #[comptime] fast: bool,
    #[comptime] split: bool,
) {
    // `blk` and `blocks` are the same for the whole cube, so every thread reaches the sync.
    if blk < blocks {
        let len = x.shape(1);
        let e_dim = x.shape(2);
        let t0 = blk * tb;
        let more = blk + 1 < blocks;
        if more {
            channel_fetch::<F>(x, dt, xn, dn, b, e, t0 + tb, tb);
            shared_fetch::<F>(bm, cm, reset, r, b, t0 + tb, len, n, threads, tb);
        }
        let obase = (b * (len + n) + t0) * e_dim + e;
        let stored = select(live, len - t0, 0);
        if split && t0 + tb <= len {
            channel_tokens::<F>(stage, out, h, av, xc, dc, dv, cur, obase, stored, live, n, tb, fast, true);
        } else {
            channel_tokens::<F>(stage, out, h, av, xc, dc, dv, cur, obase, stored, live, n, tb, fast, false);
        }
        if more {
            shared_stage(r, stage, comptime!(1 - cur), n, threads, tb);
        }
        sync_cube();
    }
}

/// Single-pass forward, one thread per channel. Cube `(channel block, b)`: `threads` channels of
/// batch `b`; each thread keeps its channel's `N` states in registers for the whole sequence and
/// stores `y` directly (neighbouring threads, neighbouring channels). Blocks of `T` tokens
/// alternate between two register buffers for `x, dt` and two shared buffers for `B, C, reset`,
/// each filled one block ahead; one sync per block. Reads `x, dt, B, C` once and writes `y` and
/// the final state into the packed `out [B, L + N, E]`. `fast`: CUDA's `ex2.approx` for the decay.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn scan_fused_channel<F: Float>(
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
    #[comptime] threads: usize,
    #[comptime] tb: usize,
    #[comptime] fast: bool,
    #[comptime] split: bool,
    #[define(F)] _dtype: ElemType,
) {
    let len = x.shape(1);
    let e_dim = x.shape(2);
    let tid = UNIT_POS as usize;
    let b = CUBE_POS_Y as usize;
    let ch = CUBE_POS_X as usize * threads + tid;
    // Threads past the last channel compute on its data (every thread reaches each sync) and
    // store nothing.
    let live = ch < e_dim;
    let e = select(live, ch, e_dim - 1);
    let mut h = Array::<f32>::new(n);
    let mut av = Array::<f32>::new(n);
    #[unroll]
    for i in 0..n {
        h[i] = f32::cast_from(h0[(b * e_dim + e) * n + i]);
        let v = f32::cast_from(a[e * n + i]);
        if fast {
            av[i] = v * LOG2_E;
        } else {
            av[i] = v;
        }
    }
    let dv = f32::cast_from(d[e]);
    let kb = comptime!((tb * n).div_ceil(threads));
    let mut stage = Shared::<[f32]>::new_slice(comptime!(2 * (2 * tb * n + tb)));
    let mut r = Array::<f32>::new(comptime!(2 * kb + 1));
    let mut xa = Array::<f32>::new(tb);
    let mut da = Array::<f32>::new(tb);
    let mut xb = Array::<f32>::new(tb);
    let mut db = Array::<f32>::new(tb);
    channel_fetch::<F>(x, dt, &mut xa, &mut da, b, e, 0, tb);
    shared_fetch::<F>(bm, cm, reset, &mut r, b, 0, len, n, threads, tb);
    shared_stage(&mut r, &mut stage, 0, n, threads, tb);
    sync_cube();
    let blocks = (len + tb - 1) / tb;
    // Two blocks per iteration, so that the two register buffers swap roles without copies.
    for p in 0..(blocks + 1) / 2 {
        channel_block::<F>(
            x, dt, bm, cm, reset, out, &mut stage, &mut r, &mut h, &av, &xa, &da, &mut xb, &mut db, dv, b, e, live,
            2 * p, blocks, 0usize, n, threads, tb, fast, split,
        );
        channel_block::<F>(
            x, dt, bm, cm, reset, out, &mut stage, &mut r, &mut h, &av, &xb, &db, &mut xa, &mut da, dv, b, e, live,
            2 * p + 1, blocks, 1usize, n, threads, tb, fast, split,
        );
    }
    if live {
        #[unroll]
        for i in 0..n {
            out[(b * (len + n) + len + i) * e_dim + e] = F::cast_from(h[i]);
        }
    }
}
