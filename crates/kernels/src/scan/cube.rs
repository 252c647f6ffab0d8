//! Launching the scan kernels on a CubeCL backend.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::DType;
use burn::tensor::Shape;
use burn_cubecl::{CubeBackend, kernel::into_contiguous, tensor::CubeTensor};
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

/// Whether [`scan_fused`] runs for state size `n`: `n` a multiple of 4, at most [`FUSED_MAX_N`].
pub fn fused_supported(n: usize) -> bool {
    n > 0 && n % 4 == 0 && n <= FUSED_MAX_N
}

/// Threads per cube of [`scan_fused`].
const FUSED_THREADS: usize = 128;

/// How [`scan_fused`] is launched (with [`FUSED_STATES_PER_UNIT`] states per unit): channels per
/// cube, padded `y` row, tokens per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedPlan {
    pub cpc: usize,
    pub row: usize,
    pub tb: usize,
}

impl FusedPlan {
    /// Shared memory of one cube, bytes: two stage buffers and two `y` buffers (see the kernel).
    pub fn shared_bytes(&self, n: usize) -> usize {
        let ng = n / FUSED_STATES_PER_UNIT;
        4 * (2 * (2 * self.tb * self.cpc + 2 * self.tb * n + self.tb) + 2 * self.tb * ng * self.row)
    }
}

/// The plan for `N` states with `max_shared` bytes of shared memory per cube.
pub fn fused_plan(n: usize, max_shared: usize) -> FusedPlan {
    let ng = n / FUSED_STATES_PER_UNIT;
    let cpc = FUSED_THREADS / ng;
    let lanes = 32 / ng;
    let mut row = cpc;
    while row % 32 != lanes % 32 {
        row += 1;
    }
    let mut plan = FusedPlan { cpc, row, tb: FUSED_BLOCK };
    while plan.tb > 1 && plan.shared_bytes(n) > max_shared {
        plan.tb /= 2;
    }
    plan
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
        let [x, dt, a, b, c, d, h0, reset] = [x, dt, a, b, c, d, h0, reset].map(into_contiguous);
        let (bsz, len, e) = (x.meta.shape()[0], x.meta.shape()[1], x.meta.shape()[2]);
        let n = a.meta.shape()[1];
        let out = empty(&x, Shape::new([bsz, len + n, e]), x.dtype);
        if bsz == 0 {
            return out;
        }
        if chunk == 0 && fused_supported(n) {
            // 48 KiB: the most a CUDA kernel gets without opting in to more.
            let max_shared = x.client.properties().hardware.max_shared_memory_size.min(48 * 1024);
            let plan = fused_plan(n, max_shared);
            let dim = CubeDim::new_1d((plan.cpc * n / FUSED_STATES_PER_UNIT) as u32);
            let count = CubeCount::Static(e.div_ceil(plan.cpc) as u32, bsz as u32, 1);
            // CUDA's `ex2.approx` (inline PTX) for the decay; other runtimes use `exp`.
            let fast = matches!(x.device, cubecl::Device::Cuda(_));
            let ty = dtype_to_storage_type(x.dtype);
            let client = x.client.clone();
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
                    FUSED_STATES_PER_UNIT,
                    plan.cpc,
                    plan.row,
                    plan.tb,
                    fast,
                    ty,
                );
            }
            FUSED_LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
