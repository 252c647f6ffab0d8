//! Launching the scan kernels on a CubeCL backend.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::DType;
use burn::tensor::Shape;
use burn_cubecl::{
    CubeBackend,
    kernel::{into_contiguous, untile},
    tensor::CubeTensor,
};
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::SelectiveScanBackend;
use super::kernels::*;

/// Chunk length of the backward pass (its units keep `BWD_CHUNK · N` states in a local array).
pub const BWD_CHUNK: usize = 16;
/// Channels per cube in the backward pass (the `dB`/`dC` partial sums are over this many).
pub const BWD_WIDTH: usize = 32;

/// Forward chunk length: long enough that chunk states stay small (`≥ 64` tokens), short enough
/// that `B·E·⌈L/T⌉` units keep a large GPU busy (about 2^17).
pub fn auto_chunk(bsz: usize, len: usize, e: usize) -> usize {
    (len * bsz * e).div_ceil(1 << 17).max(64).min(len).max(1)
}

static FUSED_LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many times this process launched the single-pass forward [`scan_fused`] (the others are
/// the three-pass chunked kernels): lets tests and benchmarks see which forward ran.
pub fn fused_launches() -> usize {
    FUSED_LAUNCHES.load(std::sync::atomic::Ordering::Relaxed)
}

static LAST_FUSED_PLAN: std::sync::Mutex<Option<FusedPlan>> = std::sync::Mutex::new(None);

/// The plan of this process's latest [`scan_fused`] launch: what ran, after the launcher's
/// adjustments to the device (plane sums only with fixed-size planes, blocks that fit).
pub fn last_fused_plan() -> Option<FusedPlan> {
    *LAST_FUSED_PLAN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether [`scan_fused`] runs for state size `n`: `n` a multiple of 4, at most [`FUSED_MAX_N`].
pub fn fused_supported(n: usize) -> bool {
    n > 0 && n % 4 == 0 && n <= FUSED_MAX_N
}

/// The free parameters of a [`scan_fused`] launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedShape {
    /// States per unit (thread): each token's `x, dt` loads and `y` partial are shared by them.
    pub g: usize,
    /// Threads per cube, at most: a cube runs whole channels, `⌊threads / (N/g)⌋·(N/g)` threads.
    pub threads: usize,
    /// Tokens per staged block (one cube-wide sync per block).
    pub tb: usize,
    /// Tokens per unrolled step within a block (a divisor of `tb`; 0: the whole block). Fewer
    /// leave NVCC less room to hoist a block's loads and decays, and so fewer registers.
    pub tu: usize,
    /// With several units per channel (`g < N`), sum their parts of `y` by plane shuffles (the
    /// channel's units are neighbouring lanes) instead of through shared memory one block later.
    /// Needs plane operations of a fixed size that `N / g` divides; elsewhere the shared-memory sum
    /// runs (see [`FusedShape::plane_sums`]).
    pub plane: bool,
}

impl Default for FusedShape {
    fn default() -> Self {
        Self { g: FUSED_STATES_PER_UNIT, threads: FUSED_THREADS, tb: FUSED_BLOCK, tu: 0, plane: false }
    }
}

/// Units (threads) from which the default plan takes 8 states per unit instead of 4.
pub const FUSED_WIDE_UNITS: usize = 1 << 16;
/// Channels `B·E` from which the default plan runs one unit per channel (`g = N`, for `N ≤ 16`).
pub const FUSED_CHANNEL_UNITS: usize = 1 << 13;

impl FusedShape {
    /// The default for a `[B, ·, E]` scan of `N` states. On an H200 at E = 7680, N = 16, L = 4096
    /// (`experiments/scan-kernels/results.md` run 7):
    /// - one unit per channel (`g = N`: no `y` sum across units, `y` stored directly) where
    ///   `B·E ≥ FUSED_CHANNEL_UNITS` and `N ≤ 16`: 1.54 against 2.02 ms (8 states per unit) at
    ///   B = 8, 0.87 against 1.06 at B = 4, 0.67 against 0.71 (4) at B = 2;
    /// - else 8 states per unit where that leaves `B·E·N/8 ≥ FUSED_WIDE_UNITS` threads (N = 32);
    /// - else 4: at B = 1 (7,680 channels) every wider unit leaves too few threads to hide
    ///   latency (0.62 ms with 4, 0.75 with 16).
    ///
    /// With several units per channel their parts of `y` are summed in planes where the device
    /// allows it (run 14: 0.606 against 0.647 ms at B = 1; at B = 4 and 8, 4 and 8 states per unit
    /// stay 20–45 % slower than one unit per channel with plane sums too).
    pub fn for_shape(bsz: usize, e: usize, n: usize) -> Self {
        let plane = Self { plane: true, ..Self::default() };
        if n <= 16 && bsz * e >= FUSED_CHANNEL_UNITS {
            Self { g: n, ..plane }
        } else if n % 8 == 0 && bsz * e * n / 8 >= FUSED_WIDE_UNITS {
            Self { g: 8, ..plane }
        } else {
            plane
        }
    }

    /// Whether a launch of this shape for `n` states sums `y` in planes of `plane` lanes: asked
    /// for (`plane`), several units per channel, a power of two up to 8 of them, that divides the
    /// plane size.
    pub fn plane_sums(&self, n: usize, plane: Option<usize>) -> bool {
        let ng = n / self.g.max(1);
        self.plane && ng > 1 && ng <= 8 && ng.is_power_of_two() && plane.is_some_and(|p| p % ng == 0)
    }

    /// Whether this shape can run `n` states: `g` divides `n`, and a cube holds at least one whole
    /// channel (`n / g` units) and one thread per token of a block.
    pub fn valid_for(&self, n: usize) -> bool {
        let ok = self.g > 0 && n % self.g == 0 && self.tb > 0 && self.threads <= 1024;
        let ok = ok && (self.tu == 0 || self.tb % self.tu == 0);
        ok && {
            let ng = n / self.g;
            let cpc = self.threads / ng;
            cpc > 0 && cpc * ng >= self.tb
        }
    }
}

impl std::str::FromStr for FusedShape {
    type Err = String;
    /// `g x threads x tb [x tu] [p]`, e.g. `8x64x16`, `16x128x16x4` or `8x128x16p` (`p`: plane sums).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (t, plane) = match t.strip_suffix('p') {
            Some(t) => (t, true),
            None => (t, false),
        };
        let v: Vec<usize> = t
            .split('x')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("fused shape `{s}`: {e}"))?;
        match v[..] {
            [g, threads, tb] => Ok(Self { g, threads, tb, tu: 0, plane }),
            [g, threads, tb, tu] => Ok(Self { g, threads, tb, tu, plane }),
            _ => Err(format!(
                "fused shape `{s}`: expected `g x threads x tokens [x unrolled] [p]`, e.g. `4x128x16` or `8x128x16p`"
            )),
        }
    }
}

/// `g | threads << 8 | tb << 24 | tu << 40 | plane << 56`, 0 for none (see [`set_fused_shape`]).
static FUSED_OVERRIDE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Makes every later [`scan_fused`] launch in this process use `shape` where it is valid for the
/// launch's `N` (`None`: the default plan). For benchmarks and tests that time or check other
/// shapes; any valid shape gives the same result up to rounding.
pub fn set_fused_shape(shape: Option<FusedShape>) {
    let v = shape.map_or(0, |s| {
        (s.g as u64) | (s.threads as u64) << 8 | (s.tb as u64) << 24 | (s.tu as u64) << 40 | (s.plane as u64) << 56
    });
    FUSED_OVERRIDE.store(v, std::sync::atomic::Ordering::Relaxed);
}

fn fused_override() -> Option<FusedShape> {
    let v = FUSED_OVERRIDE.load(std::sync::atomic::Ordering::Relaxed);
    (v != 0).then(|| FusedShape {
        g: (v & 0xff) as usize,
        threads: ((v >> 8) & 0xffff) as usize,
        tb: ((v >> 24) & 0xffff) as usize,
        tu: ((v >> 40) & 0xffff) as usize,
        plane: (v >> 56) & 1 == 1,
    })
}

/// Threads per cube of [`scan_fused`] by default.
const FUSED_THREADS: usize = 128;

/// How [`scan_fused`] is launched: its [`FusedShape`], channels per cube, padded `y` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedPlan {
    pub shape: FusedShape,
    pub cpc: usize,
    pub row: usize,
}

impl FusedPlan {
    /// Threads a cube is launched with: `cpc` channels of `N / g` units.
    pub fn threads(&self, n: usize) -> usize {
        self.cpc * (n / self.shape.g)
    }

    /// Shared memory of one cube, bytes: two stage buffers and two `y` buffers (see the kernel;
    /// none with one unit per channel, whose `y` goes straight out).
    pub fn shared_bytes(&self, n: usize) -> usize {
        let ng = n / self.shape.g;
        let tb = self.shape.tb;
        let ybuf = if ng == 1 || self.shape.plane { 0 } else { 2 * tb * ng * self.row };
        4 * (2 * (2 * tb * self.cpc + 2 * tb * n + tb) + ybuf)
    }

    /// Tokens per unrolled step: [`FusedShape::tu`], or the whole block (`tu = 0`; [`fused_plan`]
    /// sets it so when halving the block left `tu` no divisor of it).
    pub fn unrolled(&self) -> usize {
        if self.shape.tu == 0 { self.shape.tb } else { self.shape.tu }
    }
}

/// The plan for a `[B, ·, E]` scan of `N` states with `max_shared` bytes of shared memory per
/// cube and planes of `plane` lanes (`None`: no plane operations, or no fixed plane size): the
/// shape set by [`set_fused_shape`] when it is valid for `n`, else [`FusedShape::for_shape`];
/// plane sums only where `N / g` divides the plane; blocks are halved until the buffers fit.
pub fn fused_plan(bsz: usize, e: usize, n: usize, max_shared: usize, plane: Option<usize>) -> FusedPlan {
    let mut shape = fused_override().filter(|s| s.valid_for(n)).unwrap_or_else(|| FusedShape::for_shape(bsz, e, n));
    shape.plane = shape.plane_sums(n, plane);
    let ng = n / shape.g;
    let cpc = shape.threads / ng;
    let lanes = 32 / ng;
    let mut row = cpc;
    while row % 32 != lanes % 32 {
        row += 1;
    }
    let mut plan = FusedPlan { shape, cpc, row };
    while plan.shape.tb > 1 && plan.shared_bytes(n) > max_shared {
        plan.shape.tb /= 2;
    }
    if plan.shape.tu != 0 && plan.shape.tb % plan.shape.tu != 0 {
        plan.shape.tu = 0;
    }
    plan
}

/// `t` with a dense last dimension, at whatever batch and token strides it has (rows CUDA pads to
/// a multiple of 512 bytes, or a view Burn's slice kept), else a dense copy. Copying such
/// inputs first made the forward 1.8–2.9× slower at B = 8, L = 4096 with E = 6336, 7600 or 7744
/// (`experiments/scan-kernels/results.md`, run 16).
fn dense_last(t: CubeTensor) -> CubeTensor {
    let t = untile(t);
    let rank = t.meta.shape().len();
    if rank == 0 || t.meta.shape()[rank - 1] <= 1 || t.meta.strides()[rank - 1] == 1 { t } else { into_contiguous(t) }
}

fn empty(like: &CubeTensor, dims: Shape, dtype: DType) -> CubeTensor {
    crate::empty_dense(like, dims, dtype)
}

fn elemwise(t: &CubeTensor, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&t.client, units);
    (calculate_cube_count_elemwise(&t.client, units, dim), dim)
}

/// Forward passes 1 and 2: chunk start states `hs [B, K, N, E]` (and the final state into `out`).
#[allow(clippy::too_many_arguments)]
fn chunk_states(
    x: &CubeTensor,
    dt: &CubeTensor,
    a: &CubeTensor,
    b: &CubeTensor,
    reset: &CubeTensor,
    h0: &CubeTensor,
    out: &CubeTensor,
    chunk: usize,
) -> (CubeTensor, CubeTensor) {
    let (bsz, len, e) = (x.meta.shape()[0], x.meta.shape()[1], x.meta.shape()[2]);
    let n = a.meta.shape()[1];
    let kc = len.div_ceil(chunk);
    let st = Shape::new([bsz, kc, n, e]);
    let hl = empty(x, st.clone(), DType::F32);
    let pp = empty(x, st.clone(), DType::F32);
    let hs = empty(x, st, DType::F32);
    let ty = dtype_to_storage_type(x.dtype);
    let (count, dim) = elemwise(x, bsz * kc * e);
    scan_chunk_local::launch(
        &x.client,
        count,
        dim,
        x.clone().into_tensor_arg(),
        dt.clone().into_tensor_arg(),
        a.clone().into_tensor_arg(),
        b.clone().into_tensor_arg(),
        reset.clone().into_tensor_arg(),
        hl.clone().into_tensor_arg(),
        pp.clone().into_tensor_arg(),
        chunk as u32,
        n,
        ty,
    );
    let (count, dim) = elemwise(x, bsz * n * e);
    scan_chunk_carry::launch(
        &x.client,
        count,
        dim,
        h0.clone().into_tensor_arg(),
        hl.into_tensor_arg(),
        pp.clone().into_tensor_arg(),
        hs.clone().into_tensor_arg(),
        out.clone().into_tensor_arg(),
        len as u32,
        n,
        ty,
    );
    (hs, pp)
}

impl SelectiveScanBackend for CubeBackend {
    fn selective_scan_packed(
        x: CubeTensor,
        dt: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        c: CubeTensor,
        d: CubeTensor,
        h0: CubeTensor,
        reset: CubeTensor,
        chunk: usize,
    ) -> CubeTensor {
        let n = a.meta.shape()[1];
        let fused = chunk == 0 && fused_supported(n);
        // The single-pass kernel reads `x, dt, B, C, reset` through their strides; the chunked
        // kernels index them densely.
        let rows = |t: CubeTensor| if fused { dense_last(t) } else { into_contiguous(t) };
        let [x, dt, b, c, reset] = [x, dt, b, c, reset].map(rows);
        let [a, d, h0] = [a, d, h0].map(into_contiguous);
        let (bsz, len, e) = (x.meta.shape()[0], x.meta.shape()[1], x.meta.shape()[2]);
        let out = empty(&x, Shape::new([bsz, len + n, e]), x.dtype);
        if bsz == 0 {
            return out;
        }
        if fused {
            // 48 KiB: the most a CUDA kernel gets without opting in to more.
            let max_shared = x.client.properties().hardware.max_shared_memory_size.min(48 * 1024);
            let plan = fused_plan(bsz, e, n, max_shared, crate::fixed_plane(&x.client));
            let dim = CubeDim::new_1d(plan.threads(n) as u32);
            let count = CubeCount::Static(e.div_ceil(plan.cpc) as u32, bsz as u32, 1);
            // CUDA's `ex2.approx` (inline PTX) for the decay; other runtimes use `exp`.
            let fast = matches!(x.device, cubecl::Device::Cuda(_));
            let ty = dtype_to_storage_type(x.dtype);
            let client = x.client.clone();
            let strided = [&x, &dt, &b, &c, &reset].iter().any(|t| !t.is_contiguous());
            // SAFETY: every index the kernel forms is clamped into its tensor (see `scan_fused`).
            unsafe {
                scan_fused::launch_unchecked(
                    &client,
                    count,
                    dim,
                    x.into_tensor_arg(),
                    dt.into_tensor_arg(),
                    a.into_tensor_arg(),
                    b.into_tensor_arg(),
                    c.into_tensor_arg(),
                    d.into_tensor_arg(),
                    reset.into_tensor_arg(),
                    h0.into_tensor_arg(),
                    out.clone().into_tensor_arg(),
                    n,
                    plan.shape.g,
                    plan.cpc,
                    plan.row,
                    plan.shape.tb,
                    plan.unrolled(),
                    fast,
                    plan.shape.plane,
                    strided,
                    ty,
                );
            }
            FUSED_LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *LAST_FUSED_PLAN.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
            return out;
        }
        let chunk = if chunk == 0 { auto_chunk(bsz, len, e) } else { chunk.min(len) };
        let (hs, _) = chunk_states(&x, &dt, &a, &b, &reset, &h0, &out, chunk);
        let kc = len.div_ceil(chunk);
        let (count, dim) = elemwise(&x, bsz * kc * e);
        scan_chunk_out::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            dt.into_tensor_arg(),
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            c.into_tensor_arg(),
            d.into_tensor_arg(),
            reset.into_tensor_arg(),
            hs.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            chunk as u32,
            n,
            dtype_to_storage_type(x.dtype),
        );
        out
    }

    fn selective_scan_backward(
        x: CubeTensor,
        dt: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        c: CubeTensor,
        d: CubeTensor,
        h0: CubeTensor,
        reset: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        let [x, dt, a, b, c, d, h0, reset, grad] = [x, dt, a, b, c, d, h0, reset, grad].map(into_contiguous);
        let (bsz, len, e) = (x.meta.shape()[0], x.meta.shape()[1], x.meta.shape()[2]);
        let n = a.meta.shape()[1];
        let kc = len.div_ceil(BWD_CHUNK);
        let eb = e.div_ceil(BWD_WIDTH);
        let ty = dtype_to_storage_type(x.dtype);
        // Recompute the chunk start states (the final state goes to a scratch output).
        let scratch = empty(&x, Shape::new([bsz, len + n, e]), x.dtype);
        let (hs, pp) = chunk_states(&x, &dt, &a, &b, &reset, &h0, &scratch, BWD_CHUNK);
        let st = Shape::new([bsz, kc, n, e]);
        let gl = empty(&x, st.clone(), DType::F32);
        let cs = empty(&x, st.clone(), DType::F32);
        let da = empty(&x, st, DType::F32);
        let dbc = empty(&x, Shape::new([bsz, len, eb, 2 * n]), DType::F32);
        let dx = empty(&x, x.meta.shape().clone(), x.dtype);
        let ddt = empty(&x, x.meta.shape().clone(), x.dtype);
        let dh0 = empty(&x, h0.meta.shape().clone(), x.dtype);
        let (count, dim) = elemwise(&x, bsz * kc * e);
        scan_bwd_local::launch(
            &x.client,
            count,
            dim,
            dt.clone().into_tensor_arg(),
            a.clone().into_tensor_arg(),
            c.clone().into_tensor_arg(),
            reset.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            gl.clone().into_tensor_arg(),
            BWD_CHUNK as u32,
            n,
            ty,
        );
        let (count, dim) = elemwise(&x, bsz * n * e);
        scan_bwd_carry::launch(
            &x.client,
            count,
            dim,
            grad.clone().into_tensor_arg(),
            gl.into_tensor_arg(),
            pp.into_tensor_arg(),
            cs.clone().into_tensor_arg(),
            dh0.clone().into_tensor_arg(),
            n,
            ty,
        );
        scan_bwd_chunk::launch(
            &x.client,
            CubeCount::Static(eb as u32, (bsz * kc) as u32, 1),
            CubeDim::new_1d(BWD_WIDTH as u32),
            x.clone().into_tensor_arg(),
            dt.into_tensor_arg(),
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            c.into_tensor_arg(),
            d.into_tensor_arg(),
            reset.into_tensor_arg(),
            grad.into_tensor_arg(),
            hs.into_tensor_arg(),
            cs.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            ddt.clone().into_tensor_arg(),
            da.clone().into_tensor_arg(),
            dbc.clone().into_tensor_arg(),
            n,
            BWD_CHUNK,
            BWD_WIDTH,
            ty,
        );
        (dx, ddt, da, dbc, dh0)
    }

    fn selective_scan_step(
        x: CubeTensor,
        dt: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        c: CubeTensor,
        d: CubeTensor,
        h: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        let [x, dt, a, b, c, d, h] = [x, dt, a, b, c, d, h].map(into_contiguous);
        let (bsz, e) = (x.meta.shape()[0], x.meta.shape()[1]);
        let n = a.meta.shape()[1];
        let y = empty(&x, x.meta.shape().clone(), x.dtype);
        let h_out = empty(&x, h.meta.shape().clone(), x.dtype);
        let (count, dim) = elemwise(&x, bsz * e);
        scan_decode_step::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            dt.into_tensor_arg(),
            a.into_tensor_arg(),
            b.into_tensor_arg(),
            c.into_tensor_arg(),
            d.into_tensor_arg(),
            h.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            h_out.clone().into_tensor_arg(),
            n,
            dtype_to_storage_type(x.dtype),
        );
        (y, h_out)
    }

    fn conv_step(window: CubeTensor, x: CubeTensor, weight: CubeTensor, bias: CubeTensor) -> (CubeTensor, CubeTensor) {
        let [window, x, weight, bias] = [window, x, weight, bias].map(into_contiguous);
        let (bsz, e) = (x.meta.shape()[0], x.meta.shape()[1]);
        let k = weight.meta.shape()[1];
        let out = empty(&x, x.meta.shape().clone(), x.dtype);
        let new_window = empty(&x, window.meta.shape().clone(), x.dtype);
        let (count, dim) = elemwise(&x, bsz * e);
        conv_step::launch(
            &x.client,
            count,
            dim,
            window.into_tensor_arg(),
            x.clone().into_tensor_arg(),
            weight.into_tensor_arg(),
            bias.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            new_window.clone().into_tensor_arg(),
            k,
            dtype_to_storage_type(x.dtype),
        );
        (out, new_window)
    }
}
