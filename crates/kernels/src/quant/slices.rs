//! The "slices" GEMV for decoding (`GemvKernel::Slices`): each plane owns several output rows and
//! its lanes split `K` into long strided slices, so a code costs its decode and one FMA, and the
//! cross-lane sum is paid once per row rather than once per 16 codes.
//!
//! Why a third layout: on the H200, `Stream` issued 8 instructions per code
//! (`experiments/nf4-kernels/results.md` run 12), half of them in a 160-thread sum per 16 codes
//! per thread and in loop control. Here a lane accumulates `8·V·⌈vecs/lpr⌉` codes of each of its
//! rows before a `log2(lpr)`-level shuffle, `x` is staged once per cube in shared memory (read as
//! 128-bit vectors and shared by the lane's `rpl` rows), and the next vector of every row is in
//! flight while the current one is decoded.

use cubecl::{cube, prelude::*};

use super::kernels::{decode_word, load_vectors};

/// Threads per cube of [`quant_gemv_slices`].
pub const SLICE_THREADS: usize = 128;
/// Most input rows `M` [`quant_gemv_slices`] takes (`x` is staged in shared memory, the sums live
/// in registers).
pub const SLICE_MAX_ROWS: usize = 2;
/// Most `rpl · M` sums a lane of [`quant_gemv_slices`] keeps.
pub const SLICE_ACC: usize = 8;
/// Warps per SM the automatic split of [`slice_plan`] aims for at least: with these candidates it
/// picked the fastest split, or one within 2 %, at the five default shapes timed on the H200
/// (`experiments/nf4-kernels/results.md` run 15).
pub const SLICE_WARPS_PER_SM: usize = 7;

/// Words of the pair table of the `half2` path: 256 byte values (two codes) × 32 copies, so that
/// lane `l` of a warp reads copy `l` and a warp's 32 lookups hit 32 different banks whatever the
/// codes (one copy: up to ~4-way conflicts on random codes).
pub const PAIR_TABLE_WORDS: usize = 256 * 32;
// The table fill gives each thread `256 / SLICE_THREADS` whole entries.
const _: () = assert!(256 % SLICE_THREADS == 0);

/// Most words a lane of [`quant_gemv_slices`] holds per step (`rpl · depth · vw`; twice that with
/// the next step in flight).
pub const SLICE_WORDS: usize = 32;

/// How [`quant_gemv_slices`] splits the weight: vectors of `vw` words (one 32-, 64- or 128-bit
/// load), `lpr` lanes per row (each taking vectors `l, l + lpr, …` of the row), `rpl` rows per
/// lane, `depth` vectors of each row per step (a step's loads are all in flight at once), and
/// whether a row's `lpr` sums end in plane shuffles (`plane_ops`) or in shared memory, and
/// whether codes are decoded and multiplied two at a time in `f16x2` (`half2`, CUDA only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlicePlan {
    pub vw: usize,
    pub lpr: usize,
    pub rpl: usize,
    pub depth: usize,
    pub plane_ops: bool,
    pub half2: bool,
}

impl SlicePlan {
    /// Output rows per cube.
    pub fn rows_per_cube(&self) -> usize {
        SLICE_THREADS / self.lpr * self.rpl
    }
}

/// The automatic splits `(lpr, rpl, depth)`, in order: the first that gives every SM
/// [`SLICE_WARPS_PER_SM`] warps is taken (the last otherwise). Each keeps 4 vectors per row slot
/// in flight; fewer rows per lane give more, shorter-lived warps on weights with few rows.
const SLICE_AUTO: [(usize, usize, usize); 4] = [(16, 4, 1), (16, 2, 2), (32, 2, 2), (32, 1, 4)];

/// The split for an `n × k` weight (row stride `row_stride` words, group size `gs`) at `m` input
/// rows on `sms` SMs with planes of `plane` lanes (`None`: no fixed size); `lanes`/`rows`/`depth`
/// fix `lpr`/`rpl`/`depth` (0: chosen). `half2` asks for the `f16x2` path (its shared memory is
/// larger; the `f32` path is taken where only that fits). `None` when the kernel does not apply:
/// `m` above [`SLICE_MAX_ROWS`], or its shared memory (`x`, the table, and the sums without plane
/// shuffles) above `max_shared` bytes.
#[allow(clippy::too_many_arguments)]
pub fn slice_plan(
    n: usize,
    k: usize,
    m: usize,
    gs: usize,
    row_stride: usize,
    sms: usize,
    max_shared: usize,
    plane: Option<usize>,
    fixed: (usize, usize, usize),
    half2: bool,
) -> Option<SlicePlan> {
    let words = k / 8;
    if m == 0 || m > SLICE_MAX_ROWS || words == 0 {
        return None;
    }
    let fits = |vw: usize| words % vw == 0 && row_stride % vw == 0 && gs % (8 * vw) == 0;
    let vw = [4usize, 2, 1].into_iter().find(|&v| fits(v))?;
    let (lanes, rows, depth) = fixed;
    let lanes = if lanes == 0 { 0 } else { lanes.next_power_of_two().clamp(1, 32) };
    let mut pick = None;
    for (l, r, d) in SLICE_AUTO {
        let l = if lanes == 0 { l } else { lanes };
        let r = if rows == 0 { r } else { rows }.clamp(1, (SLICE_ACC / m).max(1));
        let d = if depth == 0 { d } else { depth }.clamp(1, (SLICE_WORDS / (r * vw)).max(1));
        let plane_ops = plane.is_some_and(|p| p % l == 0);
        pick = Some(SlicePlan { vw, lpr: l, rpl: r, depth: d, plane_ops, half2 });
        if n.div_ceil(32 / l * r) >= SLICE_WARPS_PER_SM * sms.max(1) || (lanes != 0 && rows != 0 && depth != 0) {
            break;
        }
    }
    let fits = |p: &SlicePlan| {
        let sums = if p.plane_ops { 0 } else { slice_sum_bytes(m, p.rpl) };
        slice_shared_bytes(m, k, p.half2) + sums <= max_shared
    };
    let pick = pick?;
    if fits(&pick) {
        return Some(pick);
    }
    Some(SlicePlan { half2: false, ..pick }).filter(fits)
}

/// Shared memory of [`quant_gemv_slices`] in bytes: `x` as f32 with one 16-byte pad every 32 values
/// (so 16 lanes reading 128-bit vectors 32 values apart hit different banks), and the table; with
/// `half2`, `x` as `f16x2` (16 bytes a word, one pad every 8 words) and the pair table. See also
/// [`slice_sum_bytes`].
pub fn slice_shared_bytes(m: usize, k: usize, half2: bool) -> usize {
    if half2 {
        let words = k.div_ceil(8);
        16 * m * (words + words.div_ceil(8)) + 4 * PAIR_TABLE_WORDS + 64
    } else {
        16 * m * (k.div_ceil(4) + k.div_ceil(32)) + 64
    }
}

/// The shared-memory sums' buffer of [`quant_gemv_slices`] without plane operations, in bytes.
pub fn slice_sum_bytes(m: usize, rpl: usize) -> usize {
    4 * SLICE_THREADS * rpl * m
}

/// GEMV `y [M, N] = x [M, K]·Wᵀ`, `M = rows ≤ SLICE_MAX_ROWS`, `K = k_dim` comptime, `packed` read
/// as vectors of `vw` words (`N`). Thread `t` of a cube is lane `l = t mod lpr` of row slot
/// `t / lpr`; the slot owns `rpl` consecutive rows `n`, and the lane the vectors
/// `v = l + lpr·i` of each, `i < ⌈vecs/lpr⌉` (a runtime loop, software-pipelined: vector `i + 1`
/// of every row is requested before vector `i` is decoded). Per vector and row:
/// `acc += s·Σ lut[q]·x (+ b·Σ x)`. `x` is staged once per cube in shared memory
/// (`xs[m][q + q/8]`, `q` the 4-value index). The `lpr` partial sums of a row end in a plane
/// shuffle (`plane_ops`; the launcher checks that planes are fixed at a multiple of `lpr`) or
/// in shared memory. Vectors past a row's end (`lpr ∤ vecs`) read vector 0 with a zero scale;
/// rows past `N` re-read row `N - 1` and are not written.
///
/// `half2` (CUDA only: inline PTX; `F` = f16): each byte of a word (two codes) is one read of a
/// pair table (`half2(lut[lo], lut[hi])`, [`PAIR_TABLE_WORDS`]) and one `fma.rn.f16x2` against two
/// values of `x` staged as `f16x2`, so a code costs about half the instructions and half the
/// shared-memory reads of the f32 path. The four products of a word are summed in f16, then
/// added to the f32 sums: f16 rounding inside a word only (|x| must stay below 16,000, where four
/// products of NF4 values could leave f16's range). NF4 only (`!has_bias`): affine codes reach 15,
/// which would cut that range by 15.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn quant_gemv_slices<F: Float, I: Int, N: Size>(
    x: &Tensor<F>,
    packed: &Tensor<Vector<I, N>>,
    scales: &Tensor<f32>,
    biases: &Tensor<f32>,
    lut: &Tensor<f32>,
    out: &mut Tensor<F>,
    #[comptime] rows: usize,
    #[comptime] k_dim: usize,
    #[comptime] vw: usize,
    #[comptime] lpr: usize,
    #[comptime] rpl: usize,
    #[comptime] depth: usize,
    #[comptime] plane_ops: bool,
    #[comptime] half2: bool,
    #[comptime] gs: usize,
    #[comptime] has_bias: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let n_dim = out.shape(1);
    let words = comptime!(k_dim / 8);
    let vecs = comptime!(k_dim / 8 / vw);
    // A step is `depth` vectors of each of the lane's rows: `lane + lpr·(depth·it + d)`.
    let step = comptime!(lpr * depth);
    let iters = comptime!(vecs.div_ceil(step));
    let exact = comptime!(vecs % step == 0);
    let slots = comptime!(rpl * depth);
    // 4-value groups of `x` per row, padded by one every 8.
    let q_row = comptime!(k_dim.div_ceil(4) + k_dim.div_ceil(32));
    // Words of `x` as `f16x2` per row, padded by one every 8 (`half2`).
    let h_row = comptime!(words + words.div_ceil(8));
    let tid = UNIT_POS as usize;
    let warp_lane = tid % 32;
    let lane = tid % lpr;
    let slot = tid / lpr;
    let n0 = (CUBE_POS_X as usize * comptime!(SLICE_THREADS / lpr) + slot) * rpl;

    let mut table = Shared::<[f32]>::new_slice(16usize);
    if tid < 16 {
        table[tid] = lut[tid];
    }
    // Step 0 of every row, requested before the pair table is filled and `x` is staged.
    let mut cw = Array::<u32>::new(comptime!(slots * vw));
    let mut cs = Array::<f32>::new(slots);
    let mut cb = Array::<f32>::new(slots);
    load_vectors(
        packed, scales, biases, n0, lane, true, n_dim, &mut cw, &mut cs, &mut cb, rpl, depth, lpr, vw, vecs, exact,
        true, gs, has_bias,
    );
    let mut pairs = Shared::<[u32]>::new_slice(comptime!(if half2 { PAIR_TABLE_WORDS } else { 1 }));
    // Filled while step 0's loads are in flight.
    if half2 {
        sync_cube();
        // Thread `t` writes the 32 copies of entries `t + 128·j`, starting at copy `warp_lane`, so
        // that a warp's stores hit 32 banks (one write per word of the table, one value per entry).
        #[unroll]
        for j in 0..comptime!(256 / SLICE_THREADS) {
            let e = tid + comptime!(j * SLICE_THREADS);
            let v = pack_f16x2(table[e % 16], table[e / 16]);
            #[unroll]
            for c in 0..32usize {
                pairs[e * 32 + ((warp_lane + c) % 32)] = v;
            }
        }
    }
    let mut xs = Shared::<[Vector<f32, Const<4>>]>::new_slice(comptime!(if half2 { 1 } else { rows * q_row }));
    let mut xh = Shared::<[Vector<u32, Const<4>>]>::new_slice(comptime!(if half2 { rows * h_row } else { 1 }));
    if half2 {
        #[unroll]
        for m in 0..rows {
            let mut u = tid;
            while u < words {
                let base = m * k_dim + u * 8;
                let mut v = Vector::<u32, Const<4>>::empty();
                #[unroll]
                for c in 0..4usize {
                    let lo = f32::cast_from(x[base + comptime!(2 * c)]);
                    let hi = f32::cast_from(x[base + comptime!(2 * c + 1)]);
                    v.insert(c, pack_f16x2(lo, hi));
                }
                xh[m * h_row + u + u / 8] = v;
                u += SLICE_THREADS;
            }
        }
    } else {
        #[unroll]
        for m in 0..rows {
            let mut q = tid;
            while q < comptime!(k_dim / 4) {
                let mut v = Vector::<f32, Const<4>>::empty();
                #[unroll]
                for c in 0..4 {
                    v.insert(c, f32::cast_from(x[m * k_dim + q * 4 + c]));
                }
                xs[m * q_row + q + q / 8] = v;
                q += SLICE_THREADS;
            }
        }
    }
    sync_cube();

    let mut acc = Array::<f32>::new(comptime!(rpl * rows));
    #[unroll]
    for i in 0..rpl * rows {
        acc[i] = 0.0;
    }
    let mut it = 0usize;
    while it < iters {
        // Request step `it + 1` of every row.
        let mut nw = Array::<u32>::new(comptime!(slots * vw));
        let mut ns = Array::<f32>::new(slots);
        let mut nb = Array::<f32>::new(slots);
        if it + 1 < iters {
            load_vectors(
                packed, scales, biases, n0, lane + (it + 1) * step, true, n_dim, &mut nw, &mut ns, &mut nb, rpl, depth,
                lpr, vw, vecs, exact, true, gs, has_bias,
            );
        }
        // Decode step `it` (a vector past the row reads vector 0 against a zero scale).
        #[unroll]
        for d in 0..depth {
            let v = lane + it * step + comptime!(d * lpr);
            let vv = select(exact || v < vecs, v, 0);
            // Where the vector's `2·vw` groups of 4 start in `xs` (they never cross a pad: 2·vw | 8).
            let q0 = vv * comptime!(2 * vw);
            let p0 = q0 + q0 / 8;
            let mut dots = Array::<f32>::new(comptime!(rpl * rows));
            let mut sx = Array::<f32>::new(rows);
            #[unroll]
            for i in 0..rpl * rows {
                dots[i] = 0.0;
            }
            #[unroll]
            for m in 0..rows {
                sx[m] = 0.0;
            }
            if half2 {
                // Where the vector's words start in `xh` (they never cross a pad: vw | 8).
                let u0 = vv * vw;
                let h0 = u0 + u0 / 8;
                #[unroll]
                for wi in 0..vw {
                    // The 4 `f16x2` pairs of `x` under word `wi`, for every input row.
                    let mut xp = Array::<u32>::new(comptime!(rows * 4));
                    #[unroll]
                    for m in 0..rows {
                        let a = xh[(m * h_row + h0) + wi];
                        #[unroll]
                        for c in 0..4 {
                            xp[m * 4 + c] = a.extract(c);
                        }
                    }
                    #[unroll]
                    for r in 0..rpl {
                        let word = cw[(r * depth + d) * vw + wi];
                        let mut hacc = Array::<u32>::new(rows);
                        #[unroll]
                        for m in 0..rows {
                            hacc[m] = 0u32;
                        }
                        #[unroll]
                        for b in 0..4u32 {
                            // Byte `b` (codes 2b, 2b+1) is the pair's index; copy `warp_lane` of it.
                            let t = pairs[(((word >> (8 * b)) & 0xFF) << 5) as usize + warp_lane];
                            #[unroll]
                            for m in 0..rows {
                                hacc[m] = hfma2(t, xp[m * 4 + b as usize], hacc[m]);
                            }
                        }
                        #[unroll]
                        for m in 0..rows {
                            dots[r * rows + m] += half2_sum(hacc[m]);
                        }
                    }
                }
            } else {
                #[unroll]
                for wi in 0..vw {
                    // The 8 values of `x` under word `wi` (two 4-value groups), for every input row.
                    let mut xv = Array::<f32>::new(comptime!(rows * 8));
                    #[unroll]
                    for m in 0..rows {
                        let a = xs[(m * q_row + p0) + comptime!(2 * wi)];
                        let b = xs[(m * q_row + p0) + comptime!(2 * wi + 1)];
                        #[unroll]
                        for c in 0..4 {
                            xv[m * 8 + c] = a.extract(c);
                            xv[m * 8 + 4 + c] = b.extract(c);
                        }
                        if has_bias {
                            #[unroll]
                            for c in 0..8 {
                                sx[m] += xv[m * 8 + c];
                            }
                        }
                    }
                    #[unroll]
                    for r in 0..rpl {
                        let mut vals = Array::<f32>::new(8usize);
                        decode_word(&table, cw[(r * depth + d) * vw + wi], &mut vals);
                        #[unroll]
                        for m in 0..rows {
                            #[unroll]
                            for c in 0..8 {
                                dots[r * rows + m] += vals[c] * xv[m * 8 + c];
                            }
                        }
                    }
                }
            }
            #[unroll]
            for r in 0..rpl {
                #[unroll]
                for m in 0..rows {
                    let mut t = cs[r * depth + d] * dots[r * rows + m];
                    if has_bias {
                        t += cb[r * depth + d] * sx[m];
                    }
                    acc[r * rows + m] += t;
                }
            }
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
        it += 1;
    }

    if plane_ops {
        #[unroll]
        for i in 0..rpl * rows {
            let mut s = acc[i];
            if comptime!(lpr >= 32) {
                s += plane_shuffle_xor(s, 16u32);
            }
            if comptime!(lpr >= 16) {
                s += plane_shuffle_xor(s, 8u32);
            }
            if comptime!(lpr >= 8) {
                s += plane_shuffle_xor(s, 4u32);
            }
            if comptime!(lpr >= 4) {
                s += plane_shuffle_xor(s, 2u32);
            }
            if comptime!(lpr >= 2) {
                s += plane_shuffle_xor(s, 1u32);
            }
            acc[i] = s;
        }
    } else {
        let mut red = Shared::<[f32]>::new_slice(comptime!(SLICE_THREADS * rpl * rows));
        #[unroll]
        for i in 0..rpl * rows {
            red[i * SLICE_THREADS + tid] = acc[i];
        }
        sync_cube();
        if lane == 0 {
            #[unroll]
            for i in 0..rpl * rows {
                let mut s = 0.0f32;
                #[unroll]
                for l in 0..lpr {
                    s += red[i * SLICE_THREADS + tid + l];
                }
                acc[i] = s;
            }
        }
    }
    if lane == 0 {
        #[unroll]
        for r in 0..rpl {
            let n = n0 + r;
            if n < n_dim {
                #[unroll]
                for m in 0..rows {
                    out[m * n_dim + n] = F::cast_from(acc[r * rows + m]);
                }
            }
        }
    }
}

/// `half2(lo, hi)` as a word (`lo` in the low 16 bits), rounded to nearest (PTX, CUDA only).
#[cube]
fn pack_f16x2(lo: f32, hi: f32) -> u32 {
    let out: u32;
    gpu_asm!("cvt.rn.f16x2.f32 {o}, {hi}, {lo};", o = out(_) out, hi = in(_) hi, lo = in(_) lo, options(pure, nomem));
    out
}

/// `a·b + c` on both halves of three `f16x2` words (PTX, CUDA only).
#[cube]
fn hfma2(a: u32, b: u32, c: u32) -> u32 {
    let out: u32;
    gpu_asm!("fma.rn.f16x2 {o}, {a}, {b}, {c};", o = out(_) out, a = in(_) a, b = in(_) b, c = in(_) c, options(pure, nomem));
    out
}

/// The sum of the two halves of an `f16x2` word, in f32 (PTX, CUDA only).
#[cube]
fn half2_sum(v: u32) -> f32 {
    let out: f32;
    gpu_asm!(
        "{{ .reg .f16 h2lo, h2hi; .reg .f32 h2a, h2b; mov.b32 {{h2lo, h2hi}}, {v}; cvt.f32.f16 h2a, h2lo; cvt.f32.f16 h2b, h2hi; add.f32 {o}, h2a, h2b; }}",
        o = out(_) out, v = in(_) v, options(pure, nomem)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: usize = 48 * 1024;

    #[test]
    fn automatic_split_keeps_every_sm_busy() {
        let plan = |n, k| {
            slice_plan(n, k, 1, 64, k / 8, 132, SHARED, Some(32), (0, 0, 0), false).map(|p| (p.lpr, p.rpl, p.depth))
        };
        // Many rows: 4 rows per lane (960-1,920 warps); fewer: 2 rows, 2 vectors deep.
        assert_eq!(plan(15360, 2560), Some((16, 4, 1)));
        assert_eq!(plan(7680, 2560), Some((16, 4, 1)));
        assert_eq!(plan(4096, 2560), Some((16, 2, 2)));
        assert_eq!(plan(2560, 7680), Some((32, 2, 2)));
        assert_eq!(plan(2560, 4096), Some((32, 2, 2)));
        assert_eq!(slice_plan(64, 256, 1, 64, 32, 132, SHARED, Some(32), (0, 0, 0), false).map(|p| p.vw), Some(4));
    }

    #[test]
    fn split_respects_groups_strides_and_limits() {
        let p = |k, gs, stride, m, fixed| slice_plan(4096, k, m, gs, stride, 132, SHARED, Some(32), fixed, false);
        // A vector stays inside one scale group and one padded row.
        assert_eq!(p(1024, 8, 128, 1, (0, 0, 0)).map(|p| p.vw), Some(1));
        assert_eq!(p(1024, 64, 130, 1, (0, 0, 0)).map(|p| p.vw), Some(2));
        // Fixed splits are kept, with depth capped at SLICE_WORDS words per step.
        assert_eq!(
            p(1024, 64, 128, 1, (8, 2, 3)),
            Some(SlicePlan { vw: 4, lpr: 8, rpl: 2, depth: 3, plane_ops: true, half2: false })
        );
        assert_eq!(p(1024, 64, 128, 1, (16, 4, 8)).map(|p| p.depth), Some(2));
        // Three input rows, or `x` too large for shared memory: not this kernel.
        assert_eq!(p(1024, 64, 128, 3, (0, 0, 0)), None);
        assert_eq!(p(16384, 64, 2048, 1, (0, 0, 0)), None);
    }

    #[test]
    fn sums_without_plane_shuffles_count_against_shared_memory() {
        // K = 10,240 at one row: `x` and the table take 46,144 of 49,152 bytes. Without plane
        // shuffles the sums of 4 rows per lane (2 KB) fit, those of 8 (4 KB) do not.
        let p = |plane, fixed| slice_plan(4096, 10240, 1, 64, 1280, 132, SHARED, plane, fixed, false);
        assert_eq!(slice_shared_bytes(1, 10240, false), 46_144);
        assert_eq!(p(Some(32), (16, 4, 1)).map(|p| p.plane_ops), Some(true));
        assert_eq!(p(None, (16, 4, 1)).map(|p| p.plane_ops), Some(false));
        assert_eq!(p(Some(32), (16, 8, 1)).map(|p| (p.rpl, p.plane_ops)), Some((8, true)));
        assert_eq!(p(None, (16, 8, 1)), None);
        // A plane size that `lpr` does not divide sums in shared memory too.
        assert_eq!(p(Some(24), (16, 8, 1)), None);
    }

    #[test]
    fn half2_plans_fall_back_to_f32_where_their_shared_memory_does_not_fit() {
        // K = 7,680 at one row: x as f16x2 (17,280 B) and the pair table (32 KiB): 50,112 bytes,
        // over 48 KiB, under the H200's 227 KiB.
        assert_eq!(slice_shared_bytes(1, 7680, true), 50_112);
        let p = |max, half2| slice_plan(2560, 7680, 1, 64, 960, 132, max, Some(32), (0, 0, 0), half2).map(|p| p.half2);
        assert_eq!(p(227 * 1024, true), Some(true));
        assert_eq!(p(SHARED, true), Some(false));
        assert_eq!(p(227 * 1024, false), Some(false));
    }
}
