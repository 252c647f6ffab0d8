//! The CubeCL kernels of the fused 4-bit dequantize-matmul. `x` and the outputs are contiguous;
//! `packed`, `scales` and `biases` have contiguous rows but may have a row stride above their width
//! (CUDA allocates 2-D tensors of unaligned width with padded rows): the kernels index their rows
//! with `stride(0)`, so no copy is made per call.
//!
//! Weight `W [N, K]` (out × in) is stored as `packed [N, K/8]` (8 four-bit codes per 32-bit word,
//! code `j` in bits `4j..4j+3`, read as `I` = i32/u32 and reinterpreted as `u32`), `scales` and
//! `biases` `[N, K/gs]` (f32), and a 16-entry decode table `lut` (f32):
//! `W[n, k] = lut[q[n, k]]·scales[n, k/gs] + biases[n, k/gs]` (NF4: `lut` = codebook, no bias;
//! affine int4: `lut[q] = q`). `W` is never written to memory: each kernel decodes the words it
//! needs in registers or shared memory and accumulates in f32. `F` is the activation type (f32,
//! f16 or bf16) of the input and output.

use cubecl::{cube, prelude::*};

/// Output rows of [`quant_gemv`] per cube (one plane of [`GEMV_LANES`] lanes each).
pub const GEMV_ROWS_PER_CUBE: usize = 8;
/// Lanes per output row in [`quant_gemv`].
pub const GEMV_LANES: usize = 32;
/// Words each lane of [`quant_gemv`] loads before using them.
pub const GEMV_UNROLL: usize = 4;
/// Tile of [`quant_gemm`]: `TILE_M × TILE_C` outputs per cube, reduction in steps of `TILE_R`.
pub const TILE_M: usize = 64;
pub const TILE_C: usize = 64;
pub const TILE_R: usize = 32;
/// [`quant_gemm`]'s cube is `GEMM_THREADS × GEMM_THREADS`, each thread `4 × 4` outputs.
pub const GEMM_THREADS: usize = 16;

/// The value `lut[q]·s + b` of code `j` of `word`.
#[cube]
fn decode(table: &Shared<[f32]>, word: u32, j: u32, s: f32, b: f32) -> f32 {
    table[((word >> (4 * j)) & 15) as usize] * s + b
}

/// Adds word `w` of row `n` (8 codes) times `x[m, 8w..8w+8]` to `acc[m]` for every row `m`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn gemv_word<F: Float>(
    x: &Tensor<F>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    table: &Shared<[f32]>,
    acc: &mut Array<f32>,
    word: u32,
    n: usize,
    w: usize,
    k_dim: usize,
    _groups: usize,
    #[comptime] rows: usize,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
) {
    let gi = w * 8 / gs;
    let s = scales[n * scales.stride(0) + gi];
    let mut b = 0.0f32;
    if has_bias {
        b = biases[n * biases.stride(0) + gi];
    }
    let mut vals = Array::<f32>::new(8usize);
    #[unroll]
    for j in 0..8u32 {
        vals[j as usize] = table[((word >> (4 * j)) & 15) as usize];
    }
    #[unroll]
    for m in 0..rows {
        let xb = m * k_dim + w * 8;
        let mut dot = 0.0f32;
        let mut sx = 0.0f32;
        #[unroll]
        for j in 0..8 {
            let xv = f32::cast_from(x[xb + j]);
            dot += vals[j] * xv;
            if has_bias {
                sx += xv;
            }
        }
        acc[m] += s * dot + b * sx;
    }
}

/// GEMV for decoding, `y [M, N] = x [M, K]·Wᵀ` with `M = rows ≤ 8` (comptime). Cube
/// `GEMV_LANES × GEMV_ROWS_PER_CUBE`: each row of the cube owns one output `n`, its lanes stride
/// over the words of `W[n]` (neighbouring lanes read neighbouring words: coalesced), decode 8
/// codes per word and accumulate `rows` dot products; a shared-memory sum across the lanes ends it.
/// Per word, `Σ_j (lut[q_j]·s + b)·x_j = s·Σ_j lut[q_j]·x_j + b·Σ_j x_j`.
#[cube(launch)]
pub fn quant_gemv<F: Float, I: Int>(
    x: &Tensor<F>,
    packed: &Tensor<I>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] rows: usize,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let k_dim = x.shape(1);
    let n_dim = out.shape(1);
    let words = k_dim / 8;
    let groups = k_dim / gs;
    let lane = UNIT_POS_X as usize;
    let row = UNIT_POS_Y as usize;
    let n = CUBE_POS_X as usize * GEMV_ROWS_PER_CUBE + row;
    let tid = row * GEMV_LANES + lane;
    let mut table = Shared::<[f32]>::new_slice(16usize);
    if tid < 16 {
        table[tid] = lut[tid];
    }
    sync_cube();
    let mut acc = Array::<f32>::new(rows);
    #[unroll]
    for m in 0..rows {
        acc[m] = 0.0;
    }
    if n < n_dim {
        // UNROLL words per lane in flight (independent loads hide the memory latency), then the rest.
        let mut w = lane;
        while w + (GEMV_UNROLL - 1) * GEMV_LANES < words {
            let mut ws = Array::<u32>::new(GEMV_UNROLL);
            #[unroll]
            for u in 0..GEMV_UNROLL {
                ws[u] = u32::cast_from(packed[n * packed.stride(0) + w + u * GEMV_LANES]);
            }
            #[unroll]
            for u in 0..GEMV_UNROLL {
                gemv_word::<F>(
                    x,
                    scales,
                    biases,
                    &table,
                    &mut acc,
                    ws[u],
                    n,
                    w + u * GEMV_LANES,
                    k_dim,
                    groups,
                    rows,
                    gs,
                    has_bias,
                );
            }
            w += GEMV_UNROLL * GEMV_LANES;
        }
        while w < words {
            let word = u32::cast_from(packed[n * packed.stride(0) + w]);
            gemv_word::<F>(x, scales, biases, &table, &mut acc, word, n, w, k_dim, groups, rows, gs, has_bias);
            w += GEMV_LANES;
        }
    }
    let mut red = Shared::<[f32]>::new_slice(rows * GEMV_ROWS_PER_CUBE * GEMV_LANES);
    #[unroll]
    for m in 0..rows {
        red[(m * GEMV_ROWS_PER_CUBE + row) * GEMV_LANES + lane] = acc[m];
    }
    sync_cube();
    if lane < rows && n < n_dim {
        let base = (lane * GEMV_ROWS_PER_CUBE + row) * GEMV_LANES;
        let mut s = 0.0f32;
        #[unroll]
        for u in 0..GEMV_LANES {
            s += red[base + u];
        }
        out[lane * n_dim + n] = F::cast_from(s);
    }
}

/// Threads per cube of [`quant_gemv_rows`] (four planes of 32; its reduction tree has 7 levels).
pub const GEMV2_THREADS: usize = 128;
const _: () = assert!(GEMV2_THREADS == 1 << 7);
const _: () = assert!(GEMV_LANES == 1 << 5);
/// Most shared memory [`quant_gemv_rows`] asks for (its launcher falls back to [`quant_gemv`]
/// above it, or above the device's limit: 32 KiB on lavapipe).
pub const GEMV2_MAX_SHARED: usize = 48 * 1024;
/// Cubes per SM that `GemvKernel::Rows` aims for when it picks its outputs per cube: on the H200
/// this picks the fastest fixed count, or one within 1.1 % of it, at the three default shapes
/// timed (`experiments/nf4-kernels/results.md` run 7); 2 left it latency-bound, 8 overshot.
pub const GEMV2_CUBES_PER_SM: usize = 4;
/// Most products `rows_per_cube · rows` each thread of [`quant_gemv_rows`] accumulates.
pub const GEMV2_ACC: usize = 16;

/// Largest output rows per cube of [`quant_gemv_rows`] for `rows` input rows.
pub fn gemv2_max_rows_per_cube(rows: usize) -> usize {
    (GEMV2_ACC / rows.max(1)).max(1)
}

/// Shared memory of [`quant_gemv_rows`] in bytes: staged `x`, decode table, reduction buffer.
pub fn gemv2_shared_bytes(rows: usize, k: usize, rows_per_cube: usize) -> usize {
    4 * (rows * (k + k / 8) + 16 + rows_per_cube * rows * GEMV2_THREADS)
}

/// GEMV, second layout: `y [M, N] = x [M, K]·Wᵀ` with `M = rows` and `K = k_dim` comptime. Each
/// cube of [`GEMV2_THREADS`] owns `rpc` (comptime) consecutive outputs `n` and stages `x` once in shared
/// memory as f32, padded by one slot every 8 values (`xs[m·K' + 9w + j]` = `x[m, 8w + j]`,
/// `K' = 9K/8`), so 32 lanes reading the 8 values of 32 consecutive words hit 32 different banks.
/// Thread `t` strides over words `w = t, t + 128, …`: per word it reads `x`'s 8 values once and
/// the word of each of its `rpc` rows (neighbouring lanes read neighbouring words: coalesced), so
/// `x` is re-read from shared memory once per `rpc` weight words rather than once per word. The
/// `rpc · rows` sums end in a shared-memory tree over the cube's threads.
#[cube(launch)]
pub fn quant_gemv_rows<F: Float, I: Int>(
    x: &Tensor<F>,
    packed: &Tensor<I>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] rows: usize,
    #[comptime] k_dim: usize,
    #[comptime] rpc: usize,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let n_dim = out.shape(1);
    let words = comptime!(k_dim / 8);
    let kp = comptime!(k_dim + k_dim / 8);
    let tid = UNIT_POS as usize;
    let n0 = CUBE_POS_X as usize * rpc;
    let mut table = Shared::<[f32]>::new_slice(16usize);
    if tid < 16 {
        table[tid] = lut[tid];
    }
    // The first words of this thread's rows are requested before `x` is staged (they do not
    // depend on it), then each step requests the next step's words before its arithmetic.
    let mut w = tid;
    let mut ws = Array::<u32>::new(rpc);
    #[unroll]
    for r in 0..rpc {
        let n = n0 + r;
        let mut v = 0u32;
        if n < n_dim && w < words {
            v = u32::cast_from(packed[n * packed.stride(0) + w]);
        }
        ws[r] = v;
    }
    let mut xs = Shared::<[f32]>::new_slice(comptime!(rows * (k_dim + k_dim / 8)));
    #[unroll]
    for m in 0..rows {
        let mut i = tid;
        while i < k_dim {
            xs[m * kp + i + i / 8] = f32::cast_from(x[m * k_dim + i]);
            i += GEMV2_THREADS;
        }
    }
    sync_cube();
    let mut acc = Array::<f32>::new(comptime!(rpc * rows));
    #[unroll]
    for i in 0..rpc * rows {
        acc[i] = 0.0;
    }
    while w < words {
        let mut cur = Array::<u32>::new(rpc);
        let next = w + GEMV2_THREADS;
        #[unroll]
        for r in 0..rpc {
            cur[r] = ws[r];
            let n = n0 + r;
            let mut v = 0u32;
            if n < n_dim && next < words {
                v = u32::cast_from(packed[n * packed.stride(0) + next]);
            }
            ws[r] = v;
        }
        let mut xv = Array::<f32>::new(comptime!(rows * 8));
        let mut sx = Array::<f32>::new(rows);
        #[unroll]
        for m in 0..rows {
            let mut s = 0.0f32;
            #[unroll]
            for j in 0..8 {
                let v = xs[m * kp + w * 9 + j];
                xv[m * 8 + j] = v;
                s += v;
            }
            sx[m] = s;
        }
        let g = w * 8 / gs;
        #[unroll]
        for r in 0..rpc {
            let n = n0 + r;
            let mut s = 0.0f32;
            let mut b = 0.0f32;
            if n < n_dim {
                s = scales[n * scales.stride(0) + g];
                if has_bias {
                    b = biases[n * biases.stride(0) + g];
                }
            }
            let word = cur[r];
            let mut vals = Array::<f32>::new(8usize);
            #[unroll]
            for j in 0..8u32 {
                vals[j as usize] = table[((word >> (4 * j)) & 15) as usize];
            }
            #[unroll]
            for m in 0..rows {
                let mut dot = 0.0f32;
                #[unroll]
                for j in 0..8 {
                    dot += vals[j] * xv[m * 8 + j];
                }
                if has_bias {
                    acc[r * rows + m] += s * dot + b * sx[m];
                } else {
                    acc[r * rows + m] += s * dot;
                }
            }
        }
        w = next;
    }
    let mut red = Shared::<[f32]>::new_slice(comptime!(rpc * rows * GEMV2_THREADS));
    #[unroll]
    for i in 0..rpc * rows {
        red[i * GEMV2_THREADS + tid] = acc[i];
    }
    sync_cube();
    #[unroll]
    for step in 0..7 {
        let half = GEMV2_THREADS >> (step + 1);
        if tid < half {
            #[unroll]
            for i in 0..rpc * rows {
                red[i * GEMV2_THREADS + tid] += red[i * GEMV2_THREADS + tid + half];
            }
        }
        sync_cube();
    }
    if tid < rpc * rows {
        let r = tid / rows;
        let m = tid % rows;
        let n = n0 + r;
        if n < n_dim {
            out[m * n_dim + n] = F::cast_from(red[tid * GEMV2_THREADS]);
        }
    }
}

/// Most input rows `M` the streaming GEMV [`quant_gemv_stream`] takes (its `x` lives in registers:
/// `8·M` per word a thread owns).
pub const STREAM_MAX_ROWS: usize = 2;
/// Most products `rows_per_cube · M` each thread of [`quant_gemv_stream`] accumulates.
pub const STREAM_ACC: usize = 16;

/// Threads and words per thread of [`quant_gemv_stream`] for a row of `words` 32-bit words and
/// planes of `plane` lanes: the fewest words per thread, at least `⌈words / 256⌉`, that split the
/// row exactly into whole planes; else 128 threads with the last words bounds-checked.
pub fn stream_split(words: usize, plane: usize) -> (usize, usize) {
    let plane = plane.max(1);
    let mut wpt = words.div_ceil(256).max(1);
    while wpt <= words {
        let threads = words / wpt;
        if words % wpt == 0 && threads % plane == 0 && threads <= 1024 {
            return (threads, wpt);
        }
        if threads < plane {
            break;
        }
        wpt += 1;
    }
    let threads = 128usize.max(plane);
    (threads, words.div_ceil(threads))
}

/// Streaming GEMV for decoding: `y [M, N] = x [M, K]·Wᵀ`, `M = rows ≤ STREAM_MAX_ROWS`, `K = k_dim`
/// comptime. A cube of `threads` spans a whole row of `W`: thread `t` owns words
/// `w = t + threads·j` (`j < wpt`) of every row, keeps the `8·wpt·M` values of `x` they multiply in
/// registers (loaded once), then streams the words of its cube's `rpc` consecutive rows, all
/// requested before any is decoded (`rpc·wpt` loads in flight per thread, neighbouring threads on
/// neighbouring words). Each code is one shared-memory table read and one FMA. Sums end with a
/// plane sum and one cube-wide sync across the `threads / PLANE_DIM` planes (`planes`, comptime:
/// the launcher checks the plane size is fixed and divides `threads`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn quant_gemv_stream<F: Float, I: Int>(
    x: &Tensor<F>,
    packed: &Tensor<I>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] rows: usize,
    #[comptime] k_dim: usize,
    #[comptime] rpc: usize,
    #[comptime] wpt: usize,
    #[comptime] threads: usize,
    #[comptime] planes: usize,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let n_dim = out.shape(1);
    let words = comptime!(k_dim / 8);
    let exact = comptime!(words == threads * wpt);
    let tid = UNIT_POS as usize;
    let n0 = CUBE_POS_X as usize * rpc;
    let mut table = Shared::<[f32]>::new_slice(16usize);
    if tid < 16 {
        table[tid] = lut[tid];
    }
    // This thread's words of every row, requested first (they depend on nothing).
    let mut ws = Array::<u32>::new(comptime!(rpc * wpt));
    let mut ss = Array::<f32>::new(comptime!(rpc * wpt));
    let mut bs = Array::<f32>::new(comptime!(rpc * wpt));
    #[unroll]
    for r in 0..rpc {
        let n = select(n0 + r < n_dim, n0 + r, n_dim - 1);
        #[unroll]
        for j in 0..wpt {
            let w = tid + j * threads;
            let mut v = 0u32;
            let mut s = 0.0f32;
            let mut b = 0.0f32;
            if exact || w < words {
                v = u32::cast_from(packed[n * packed.stride(0) + w]);
                s = scales[n * scales.stride(0) + w * 8 / gs];
                if has_bias {
                    b = biases[n * biases.stride(0) + w * 8 / gs];
                }
            }
            ws[r * wpt + j] = v;
            ss[r * wpt + j] = s;
            bs[r * wpt + j] = b;
        }
    }
    let mut xr = Array::<f32>::new(comptime!(rows * wpt * 8));
    let mut sx = Array::<f32>::new(comptime!(rows * wpt));
    #[unroll]
    for m in 0..rows {
        #[unroll]
        for j in 0..wpt {
            let w = tid + j * threads;
            let mut sum = 0.0f32;
            #[unroll]
            for c in 0..8 {
                let mut v = 0.0f32;
                if exact || w < words {
                    v = f32::cast_from(x[m * k_dim + w * 8 + c]);
                }
                xr[(m * wpt + j) * 8 + c] = v;
                sum += v;
            }
            sx[m * wpt + j] = sum;
        }
    }
    sync_cube();
    let mut acc = Array::<f32>::new(comptime!(rpc * rows));
    #[unroll]
    for r in 0..rpc {
        #[unroll]
        for m in 0..rows {
            acc[r * rows + m] = 0.0;
        }
        #[unroll]
        for j in 0..wpt {
            let word = ws[r * wpt + j];
            let mut vals = Array::<f32>::new(8usize);
            #[unroll]
            for c in 0..8u32 {
                vals[c as usize] = table[((word >> (4 * c)) & 15) as usize];
            }
            #[unroll]
            for m in 0..rows {
                let mut dot = 0.0f32;
                #[unroll]
                for c in 0..8 {
                    dot += vals[c] * xr[(m * wpt + j) * 8 + c];
                }
                if has_bias {
                    acc[r * rows + m] += ss[r * wpt + j] * dot + bs[r * wpt + j] * sx[m * wpt + j];
                } else {
                    acc[r * rows + m] += ss[r * wpt + j] * dot;
                }
            }
        }
    }
    let mut red = Shared::<[f32]>::new_slice(comptime!(rpc * rows * planes));
    let plane = UNIT_POS as usize / PLANE_DIM as usize;
    #[unroll]
    for i in 0..rpc * rows {
        let s = plane_sum(acc[i]);
        if UNIT_POS_PLANE == 0 {
            red[i * planes + plane] = s;
        }
    }
    sync_cube();
    if tid < rpc * rows {
        let r = tid / rows;
        let m = tid % rows;
        let n = n0 + r;
        if n < n_dim {
            let mut s = 0.0f32;
            #[unroll]
            for p in 0..planes {
                s += red[tid * planes + p];
            }
            out[m * n_dim + n] = F::cast_from(s);
        }
    }
}

/// Tiled GEMM for prefill and training. `transposed = false`: `y [M, N] = a [M, K]·Wᵀ`;
/// `transposed = true`: `y [M, K] = a [M, N]·W` (the input gradient). Reduction length `R`
/// (`K`, resp. `N`), output width `C` (`N`, resp. `K`). Each cube computes a `TILE_M × TILE_C`
/// output tile; per step of `TILE_R` reduction indices it stages `a`'s tile and the *decoded*
/// weight tile (`Bs[r][c]`, 256 packed words, one per thread) in shared memory. Every bound is
/// checked, so `M`, `N` and `K` (a multiple of 8) need not be multiples of the tile.
#[cube(launch)]
pub fn quant_gemm<F: Float, I: Int>(
    a: &Tensor<F>,
    packed: &Tensor<I>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[comptime] transposed: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let m_dim = a.shape(0);
    let r_dim = a.shape(1);
    let c_dim = out.shape(1);
    let mut k_in = r_dim;
    if transposed {
        k_in = c_dim;
    }
    let words = k_in / 8;
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let tid = ty * GEMM_THREADS + tx;
    let m0 = CUBE_POS_Y as usize * TILE_M;
    let c0 = CUBE_POS_X as usize * TILE_C;
    let a_stride = TILE_R + 1;
    let mut a_tile = Shared::<[f32]>::new_slice(TILE_M * (TILE_R + 1));
    let mut b_tile = Shared::<[f32]>::new_slice(TILE_R * TILE_C);
    let mut table = Shared::<[f32]>::new_slice(16usize);
    if tid < 16 {
        table[tid] = lut[tid];
    }
    let mut acc = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16 {
        acc[i] = 0.0;
    }
    let mut r0 = 0;
    while r0 < r_dim {
        sync_cube();
        // a tile [TILE_M][TILE_R], row-major with a padded stride.
        #[unroll]
        for i in 0..(TILE_M * TILE_R / (GEMM_THREADS * GEMM_THREADS)) {
            let idx = tid + i * GEMM_THREADS * GEMM_THREADS;
            let r = idx / TILE_R;
            let kk = idx % TILE_R;
            let gm = m0 + r;
            let gk = r0 + kk;
            let mut v = 0.0f32;
            if gm < m_dim && gk < r_dim {
                v = f32::cast_from(a[gm * r_dim + gk]);
            }
            a_tile[r * a_stride + kk] = v;
        }
        // Decoded weight tile Bs[r][c] = weight for reduction index r0 + r, output column c0 + c.
        if transposed {
            // W rows n = r0 + r (TILE_R of them), 8 words = 64 input columns each.
            let r = tid / (TILE_C / 8);
            let wq = tid % (TILE_C / 8);
            let n = r0 + r;
            let wc = c0 / 8 + wq;
            let valid = n < r_dim && wc < words;
            let mut word = 0u32;
            let mut s = 0.0f32;
            let mut b = 0.0f32;
            if valid {
                word = u32::cast_from(packed[n * packed.stride(0) + wc]);
                let gi = wc * 8 / gs;
                s = scales[n * scales.stride(0) + gi];
                if has_bias {
                    b = biases[n * biases.stride(0) + gi];
                }
            }
            #[unroll]
            for j in 0..8u32 {
                b_tile[r * TILE_C + wq * 8 + j as usize] = select(valid, decode(&table, word, j, s, b), 0.0);
            }
        } else {
            // W rows n = c0 + c (TILE_C of them), TILE_R / 8 words each.
            let c = tid / (TILE_R / 8);
            let wq = tid % (TILE_R / 8);
            let n = c0 + c;
            let wc = r0 / 8 + wq;
            let valid = n < c_dim && wc < words;
            let mut word = 0u32;
            let mut s = 0.0f32;
            let mut b = 0.0f32;
            if valid {
                word = u32::cast_from(packed[n * packed.stride(0) + wc]);
                let gi = wc * 8 / gs;
                s = scales[n * scales.stride(0) + gi];
                if has_bias {
                    b = biases[n * biases.stride(0) + gi];
                }
            }
            #[unroll]
            for j in 0..8u32 {
                b_tile[(wq * 8 + j as usize) * TILE_C + c] = select(valid, decode(&table, word, j, s, b), 0.0);
            }
        }
        sync_cube();
        #[unroll]
        for kk in 0..TILE_R {
            let mut av = Array::<f32>::new(4usize);
            let mut bv = Array::<f32>::new(4usize);
            #[unroll]
            for i in 0..4 {
                av[i] = a_tile[(ty + i * GEMM_THREADS) * a_stride + kk];
                bv[i] = b_tile[kk * TILE_C + tx + i * GEMM_THREADS];
            }
            #[unroll]
            for i in 0..4 {
                #[unroll]
                for j in 0..4 {
                    acc[i * 4 + j] += av[i] * bv[j];
                }
            }
        }
        r0 += TILE_R;
    }
    #[unroll]
    for i in 0..4 {
        #[unroll]
        for j in 0..4 {
            let gm = m0 + ty + i * GEMM_THREADS;
            let gc = c0 + tx + j * GEMM_THREADS;
            if gm < m_dim && gc < c_dim {
                out[gm * c_dim + gc] = F::cast_from(acc[i * 4 + j]);
            }
        }
    }
}
