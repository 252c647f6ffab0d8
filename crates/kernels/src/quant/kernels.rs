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
                    rows,
                    gs,
                    has_bias,
                );
            }
            w += GEMV_UNROLL * GEMV_LANES;
        }
        while w < words {
            let word = u32::cast_from(packed[n * packed.stride(0) + w]);
            gemv_word::<F>(x, scales, biases, &table, &mut acc, word, n, w, k_dim, rows, gs, has_bias);
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

/// The table values of the 8 codes of `word`, into `vals`. The codes of even and of odd positions are first
/// masked into the bytes of two words, four times the code in each byte (two instructions for
/// eight codes), so that each table address is one byte of them: a shift and a mask per code
/// (the compiler folds the index's `·4` into the mask), where `(word >> 4j) & 15` then `·4`
/// took three.
#[cube]
pub(crate) fn decode_word(table: &Shared<[f32]>, word: u32, vals: &mut Array<f32>) {
    let even = (word << 2) & 0x3C3C_3C3Cu32;
    let odd = (word >> 2) & 0x3C3C_3C3Cu32;
    #[unroll]
    for b in 0..4u32 {
        vals[(2 * b) as usize] = table[(((even >> (8 * b)) & 0xFF) >> 2) as usize];
        vals[(2 * b + 1) as usize] = table[(((odd >> (8 * b)) & 0xFF) >> 2) as usize];
    }
}

/// Most input rows `M` the streaming GEMV [`quant_gemv_stream`] takes (its `x` lives in registers:
/// `8·V·vpt·M` values per thread).
pub const STREAM_MAX_ROWS: usize = 2;
/// Most products `rpc · M` each thread of [`quant_gemv_stream`] accumulates.
pub const STREAM_ACC: usize = 16;
/// Most `x` values a thread of [`quant_gemv_stream`] keeps in registers.
pub const STREAM_X_REGS: usize = 96;
/// Most weight words per row chunk each thread of [`quant_gemv_stream`] holds (twice that with the
/// next chunk in flight).
pub const STREAM_WORDS: usize = 16;
/// Cubes per SM [`quant_gemv_stream`] is launched with by default (all resident at once: about
/// 100 registers per thread at 160 threads; each cube then streams an equal share of the chunks,
/// the first chunk's latency exposed once per cube, the others hidden behind the previous chunk's
/// arithmetic).
pub const STREAM_CUBES_PER_SM: usize = 4;

/// How [`quant_gemv_stream`] splits a row of `words` 32-bit words: each of `threads` threads owns
/// `vpt` vectors of `vw` consecutive words (one load each) of every row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSplit {
    pub vw: usize,
    pub threads: usize,
    pub vpt: usize,
}

/// The split of [`quant_gemv_stream`] for rows of `words` words, `m` input rows, group size `gs`,
/// planes of `plane` lanes, when the weight's row stride is `row_stride` words. The widest vector
/// `vw ∈ {4, 2, 1}` that divides the row and its stride and keeps one scale group per vector
/// (`8·vw | gs`), with the fewest vectors per thread whose `x` fits [`STREAM_X_REGS`] and whose
/// threads (at most 256) fill whole planes; else 128 threads (or more, for `x` to fit) with the last
/// vectors bounds-checked.
pub fn stream_split(words: usize, m: usize, gs: usize, plane: usize, row_stride: usize) -> StreamSplit {
    let plane = plane.max(1);
    let m = m.max(1);
    let widths = [4usize, 2, 1];
    let fits = |vw: usize| words % vw == 0 && row_stride % vw == 0 && gs % (8 * vw) == 0;
    for vw in widths.into_iter().filter(|&v| fits(v)) {
        let vecs = words / vw;
        let mut vpt = 1;
        while 8 * vw * vpt * m <= STREAM_X_REGS && vpt <= vecs {
            let threads = vecs / vpt;
            if vecs % vpt == 0 && threads % plane == 0 && threads <= 256 {
                return StreamSplit { vw, threads, vpt };
            }
            vpt += 1;
        }
    }
    let vw = widths.into_iter().find(|&v| fits(v)).unwrap_or(1);
    let vecs = words / vw;
    let mut threads = 128usize.max(plane).div_ceil(plane) * plane;
    while threads < 1024 && 8 * vw * vecs.div_ceil(threads) * m > STREAM_X_REGS {
        threads += plane;
    }
    StreamSplit { vw, threads, vpt: vecs.div_ceil(threads).max(1) }
}

/// Requests `per_row` vectors of `rows` weight rows into `w`, `s`, `b` (slot `r·per_row + j`):
/// vectors `v0 + j·v_step` of rows `n0 + r`, nothing when `!live`. Shared by the streaming and
/// slices GEMVs. Rows past `N` re-read row `N - 1` (their sums are never written); a vector past
/// the row (`!exact`) re-reads vector 0, with a zero scale and bias when `zero_past` (else the
/// caller's `x` is zero there).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_vectors<I: Int, N: Size>(
    packed: &Tensor<Vector<I, N>>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    n0: usize,
    v0: usize,
    live: bool,
    n_dim: usize,
    w: &mut Array<u32>,
    s: &mut Array<f32>,
    b: &mut Array<f32>,
    #[comptime] rows: usize,
    #[comptime] per_row: usize,
    #[comptime] v_step: usize,
    #[comptime] vw: usize,
    #[comptime] vecs: usize,
    #[comptime] exact: bool,
    #[comptime] zero_past: bool,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
) {
    let pstride = packed.stride(0) / vw;
    let sstride = scales.stride(0);
    let bstride = biases.stride(0);
    #[unroll]
    for r in 0..rows {
        let n = select(live && n0 + r < n_dim, n0 + r, n_dim - 1);
        #[unroll]
        for j in 0..per_row {
            let v = v0 + comptime!(j * v_step);
            let inside = exact || v < vecs;
            let vv = select(inside, v, 0);
            if live {
                let word = packed[n * pstride + vv];
                #[unroll]
                for i in 0..vw {
                    w[(r * per_row + j) * vw + i] = u32::cast_from(word.extract(i));
                }
                let mut sc = scales[n * sstride + vv * vw * 8 / gs];
                if zero_past {
                    sc = select(inside, sc, 0.0);
                }
                s[r * per_row + j] = sc;
                if has_bias {
                    let mut bi = biases[n * bstride + vv * vw * 8 / gs];
                    if zero_past {
                        bi = select(inside, bi, 0.0);
                    }
                    b[r * per_row + j] = bi;
                }
            }
        }
    }
}

/// Streaming GEMV for decoding: `y [M, N] = x [M, K]·Wᵀ`, `M = rows ≤ STREAM_MAX_ROWS`, `K = k_dim`
/// comptime, `packed` read as vectors of `vw` words (`N`, one 64- or 128-bit load each).
/// A cube of `threads` spans a whole row of `W`: thread `t` owns vectors `v = t + threads·j`
/// (`j < vpt`) of every row and keeps the `8·vw·vpt·M` values of `x` they multiply in registers
/// (loaded once). The cube then streams `chunks` chunks of `rpc` consecutive rows (chunks
/// `CUBE_POS, CUBE_POS + CUBE_COUNT, …`), software-pipelined: the words and scales of the next
/// chunk are requested before the current chunk is decoded, so the loads of one chunk overlap the
/// arithmetic of the previous one. Each code is one shared-memory table read and one FMA. A chunk
/// ends with a plane sum per output and one cube-wide sync across the `planes` planes (the
/// launcher checks the plane size is fixed and divides `threads`); the plane partials alternate
/// between two buffers, so that one sync per chunk suffices. Without `plane_ops` (devices whose
/// plane size is not fixed, e.g. lavapipe) every thread is its own "plane" (`planes = threads`)
/// and the sums go through shared memory alone.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn quant_gemv_stream<F: Float, I: Int, N: Size>(
    x: &Tensor<F>,
    packed: &Tensor<Vector<I, N>>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] rows: usize,
    #[comptime] k_dim: usize,
    #[comptime] rpc: usize,
    #[comptime] vw: usize,
    #[comptime] vpt: usize,
    #[comptime] threads: usize,
    #[comptime] planes: usize,
    #[comptime] plane_ops: bool,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let n_dim = out.shape(1);
    let vecs = comptime!(k_dim / 8 / vw);
    let exact = comptime!(vecs == threads * vpt);
    let slots = comptime!(rpc * vpt);
    let tid = UNIT_POS as usize;
    let nchunks = (n_dim + rpc - 1) / rpc;
    let mut table = Shared::<[f32]>::new_slice(16usize);
    // A cube may have fewer than 16 threads (shared-memory sums on small rows).
    let mut t = tid;
    while t < 16 {
        table[t] = lut[t];
        t += threads;
    }
    // The first chunk's words and scales, requested before `x` (they depend on nothing).
    let mut chunk = CUBE_POS_X as usize;
    let mut cw = Array::<u32>::new(comptime!(slots * vw));
    let mut cs = Array::<f32>::new(slots);
    let mut cb = Array::<f32>::new(slots);
    // (A cube's first chunk always exists: the launcher starts at most one cube per chunk.)
    load_vectors(
        packed, scales, biases, chunk * rpc, tid, true, n_dim, &mut cw, &mut cs, &mut cb, rpc, vpt, threads, vw, vecs,
        exact, false, gs, has_bias,
    );
    // This thread's `x` values (and their sums, for the affine bias), once for every row.
    let mut xr = Array::<f32>::new(comptime!(rows * vpt * vw * 8));
    let mut sx = Array::<f32>::new(comptime!(rows * vpt));
    #[unroll]
    for m in 0..rows {
        #[unroll]
        for j in 0..vpt {
            let v = tid + j * threads;
            let mut sum = 0.0f32;
            #[unroll]
            for c in 0..vw * 8 {
                let mut xv = 0.0f32;
                if exact || v < vecs {
                    xv = f32::cast_from(x[m * k_dim + v * vw * 8 + c]);
                }
                xr[(m * vpt + j) * vw * 8 + c] = xv;
                sum += xv;
            }
            sx[m * vpt + j] = sum;
        }
    }
    let mut part = Shared::<[f32]>::new_slice(comptime!(2 * rpc * rows * planes));
    let plane = tid / PLANE_DIM as usize;
    let mut buf = 0usize;
    sync_cube();
    while chunk < nchunks {
        // Request the next chunk's words before decoding this one.
        let next = chunk + CUBE_COUNT_X as usize;
        let live = next < nchunks;
        let mut nw = Array::<u32>::new(comptime!(slots * vw));
        let mut ns = Array::<f32>::new(slots);
        let mut nb = Array::<f32>::new(slots);
        load_vectors(
            packed, scales, biases, next * rpc, tid, live, n_dim, &mut nw, &mut ns, &mut nb, rpc, vpt, threads, vw,
            vecs, exact, false, gs, has_bias,
        );
        let mut acc = Array::<f32>::new(comptime!(rpc * rows));
        #[unroll]
        for r in 0..rpc {
            #[unroll]
            for m in 0..rows {
                acc[r * rows + m] = 0.0;
            }
            #[unroll]
            for j in 0..vpt {
                // Vectors past the row (inexact split) read vector 0 against zeros of `x`.
                let mut dots = Array::<f32>::new(rows);
                #[unroll]
                for m in 0..rows {
                    dots[m] = 0.0;
                }
                #[unroll]
                for i in 0..vw {
                    let word = cw[(r * vpt + j) * vw + i];
                    let mut vals = Array::<f32>::new(8usize);
                    decode_word(&table, word, &mut vals);
                    #[unroll]
                    for m in 0..rows {
                        #[unroll]
                        for c in 0..8 {
                            dots[m] += vals[c] * xr[((m * vpt + j) * vw + i) * 8 + c];
                        }
                    }
                }
                #[unroll]
                for m in 0..rows {
                    let mut d = cs[r * vpt + j] * dots[m];
                    if has_bias {
                        d += cb[r * vpt + j] * sx[m * vpt + j];
                    }
                    acc[r * rows + m] += d;
                }
            }
        }
        // Plane sums into this chunk's buffer; one sync; the first threads add the planes up.
        #[unroll]
        for i in 0..rpc * rows {
            if plane_ops {
                let s = plane_sum(acc[i]);
                if UNIT_POS_PLANE == 0 {
                    part[(buf * rpc * rows + i) * planes + plane] = s;
                }
            } else {
                part[(buf * rpc * rows + i) * planes + tid] = acc[i];
            }
        }
        sync_cube();
        // `rpc · rows` may exceed the cube's threads when it is small.
        let mut o = tid;
        while o < rpc * rows {
            let r = o / rows;
            let m = o % rows;
            let n = chunk * rpc + r;
            if n < n_dim {
                let mut s = 0.0f32;
                #[unroll]
                for p in 0..planes {
                    s += part[(buf * rpc * rows + o) * planes + p];
                }
                out[m * n_dim + n] = F::cast_from(s);
            }
            o += threads;
        }
        #[unroll]
        for i in 0..slots * vw {
            cw[i] = nw[i];
        }
        #[unroll]
        for i in 0..slots {
            cs[i] = ns[i];
            if has_bias {
                cb[i] = nb[i];
            }
        }
        buf = 1 - buf;
        chunk = next;
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
