//! Launching the 4-bit matmul kernels on a CubeCL backend.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::{cast, into_contiguous};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::{CubeCount, CubeDim};

use super::kernels::*;
use super::slices::{quant_gemv_slices, slice_plan};
use super::{GEMV_MAX_ROWS, GemvKernel, QuantMatmulBackend};

static STREAM_LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SLICE_LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HALF2_LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many of [`slice_launches`] took the `f16x2` path (f16 activations, NF4, CUDA).
pub fn half2_launches() -> usize {
    HALF2_LAUNCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many times this process launched [`quant_gemv_slices`] (`GemvKernel::Slices` falls back to
/// `Rows` where `x` does not fit in shared memory or `M` is above `SLICE_MAX_ROWS`).
pub fn slice_launches() -> usize {
    SLICE_LAUNCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// How many times this process launched [`quant_gemv_stream`] (`GemvKernel::Stream` falls back to
/// `Rows` on devices without a fixed plane size): lets tests and benchmarks see which GEMV ran.
pub fn stream_launches() -> usize {
    STREAM_LAUNCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Outputs per GEMV cube: the most, halving from `max`, that still gives each of `sms` SMs
/// `GEMV2_CUBES_PER_SM` cubes for `n` outputs (at 2 cubes per SM Nsight showed 14.7 % warps
/// active, nf4-kernels run 6; run 7 timed every fixed count).
fn rows_per_cube(max: usize, n: usize, sms: usize) -> usize {
    let mut r = max.max(1);
    while r > 1 && n.div_ceil(r) < GEMV2_CUBES_PER_SM * sms {
        r /= 2;
    }
    r
}

/// Rows per chunk and cubes of [`quant_gemv_stream`] for `n` outputs and `m` input rows:
/// `rpc` (0: the most that keeps [`STREAM_WORDS`] words per thread per chunk; at most
/// [`STREAM_ACC`] sums and `max_rpc`, what shared memory holds), and the number of cubes, each streaming `per` chunks (0: an equal
/// share for [`STREAM_CUBES_PER_SM`] cubes per SM).
fn stream_grid(
    n: usize,
    m: usize,
    split: StreamSplit,
    rpc: usize,
    per: usize,
    sms: usize,
    max_rpc: usize,
) -> (usize, usize) {
    let cap = (STREAM_ACC / m.max(1)).clamp(1, max_rpc.max(1));
    let rpc = if rpc == 0 { STREAM_WORDS / (split.vpt * split.vw) } else { rpc }.clamp(1, cap);
    let chunks = n.div_ceil(rpc);
    let per = if per == 0 { chunks.div_ceil(STREAM_CUBES_PER_SM * sms.max(1)) } else { per }.max(1);
    (rpc, chunks.div_ceil(per))
}

struct Weight {
    packed: CubeTensor,
    scales: CubeTensor,
    biases: CubeTensor,
    lut: CubeTensor,
}

/// A 2-D tensor whose rows are contiguous, kept as it is when it already is one (possibly with a
/// row stride above its width: CUDA pads the rows of unaligned widths, and `into_contiguous` would
/// copy such a weight on every call, which was most of the GEMV's time on the H200,
/// `experiments/nf4-kernels/results.md` run 9); any other layout is made contiguous.
fn dense_rows(t: CubeTensor) -> CubeTensor {
    let (shape, strides) = (t.meta.shape(), t.meta.strides());
    let rows_ok = shape.len() == 2 && (strides[1] == 1 || shape[1] <= 1) && strides[0] >= shape[1];
    if rows_ok && !t.meta.is_tiled() { t } else { into_contiguous(t) }
}

/// The weight's tensors with contiguous rows, the per-group parameters and the table as f32 (the
/// kernels' type).
fn prepare(packed: CubeTensor, scales: CubeTensor, biases: CubeTensor, lut: CubeTensor) -> Weight {
    let f32 = |t: CubeTensor| dense_rows(cast(t, DType::F32));
    Weight {
        packed: dense_rows(packed),
        scales: f32(scales),
        biases: f32(biases),
        lut: into_contiguous(cast(lut, DType::F32)),
    }
}

fn gemm(a: CubeTensor, w: Weight, c_dim: usize, gs: usize, has_bias: bool, transposed: bool) -> CubeTensor {
    let m = a.meta.shape()[0];
    let out = crate::empty_dense(&a, Shape::new([m, c_dim]), a.dtype);
    if m == 0 || c_dim == 0 {
        return out;
    }
    let dtypes = [dtype_to_storage_type(a.dtype), dtype_to_storage_type(w.packed.dtype)];
    quant_gemm::launch(
        &a.client,
        CubeCount::Static(c_dim.div_ceil(TILE_C) as u32, m.div_ceil(TILE_M) as u32, 1),
        CubeDim::new_2d(GEMM_THREADS as u32, GEMM_THREADS as u32),
        a.clone().into_tensor_arg(),
        w.packed.into_tensor_arg(),
        w.scales.into_tensor_arg(),
        w.biases.into_tensor_arg(),
        w.lut.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        gs,
        has_bias,
        transposed,
        dtypes,
    );
    out
}

impl QuantMatmulBackend for CubeBackend {
    #[allow(clippy::too_many_arguments)]
    fn quant_matmul(
        x: CubeTensor,
        packed: CubeTensor,
        scales: CubeTensor,
        biases: CubeTensor,
        lut: CubeTensor,
        group_size: usize,
        has_bias: bool,
        gemv: usize,
    ) -> CubeTensor {
        let x = into_contiguous(x);
        let w = prepare(packed, scales, biases, lut);
        let m = x.meta.shape()[0];
        let n = w.packed.meta.shape()[0];
        if m == 0 || m > GEMV_MAX_ROWS || n == 0 {
            return gemm(x, w, n, group_size, has_bias, false);
        }
        let out = crate::empty_dense(&x, Shape::new([m, n]), x.dtype);
        let dtypes = [dtype_to_storage_type(x.dtype), dtype_to_storage_type(w.packed.dtype)];
        let k = w.packed.meta.shape()[1] * 8;
        let max_shared_all = x.client.properties().hardware.max_shared_memory_size;
        let max_shared = max_shared_all.min(GEMV2_MAX_SHARED);
        let sms = x.client.properties().hardware.num_streaming_multiprocessors.unwrap_or(64) as usize;
        let kernel = GemvKernel::from_index(gemv).resolve();
        // `Stream` needs plane operations of a fixed size (else `Rows` runs); `StreamWith` runs on
        // any device, summing through shared memory alone where planes do not fit.
        let plane = crate::fixed_plane(&x.client);
        // f16 activations on CUDA decode two NF4 codes per instruction (`f16x2`, inline PTX).
        let half2 = x.dtype == DType::F16 && !has_bias && matches!(x.device, cubecl::Device::Cuda(_));
        if let GemvKernel::Slices { lanes, rows, depth } = kernel
            && let Some(plan) = slice_plan(
                n,
                k,
                m,
                group_size,
                w.packed.meta.strides()[0],
                sms,
                max_shared_all,
                plane,
                (lanes, rows, depth),
                half2,
            )
        {
            quant_gemv_slices::launch(
                &x.client,
                CubeCount::Static(n.div_ceil(plan.rows_per_cube()) as u32, 1, 1),
                CubeDim::new_1d(super::slices::SLICE_THREADS as u32),
                plan.vw,
                x.clone().into_tensor_arg(),
                w.packed.clone().into_tensor_arg(),
                w.scales.clone().into_tensor_arg(),
                w.biases.clone().into_tensor_arg(),
                w.lut.clone().into_tensor_arg(),
                out.clone().into_tensor_arg(),
                m,
                k,
                plan.vw,
                plan.lpr,
                plan.rpl,
                plan.depth,
                plan.plane_ops,
                plan.half2,
                group_size,
                has_bias,
                dtypes,
            );
            SLICE_LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if plan.half2 {
                HALF2_LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return out;
        }
        if let Some((rpc, per)) = kernel.stream()
            && m <= STREAM_MAX_ROWS
            && (plane.is_some() || kernel != GemvKernel::Stream)
        {
            let split = stream_split(k / 8, m, group_size, plane.unwrap_or(1), w.packed.meta.strides()[0]);
            let planes = plane.map_or(split.threads, |p| split.threads / p);
            // Two buffers of `rpc · m · planes` partial sums.
            let max_rpc = (max_shared.saturating_sub(64) / (8 * m * planes)).max(1);
            let fits = plane.is_none_or(|p| split.threads % p == 0) && 8 * m * planes + 64 <= max_shared;
            if fits {
                let (rpc, cubes) = stream_grid(n, m, split, rpc, per, sms, max_rpc);
                quant_gemv_stream::launch(
                    &x.client,
                    CubeCount::Static(cubes as u32, 1, 1),
                    CubeDim::new_1d(split.threads as u32),
                    split.vw,
                    x.clone().into_tensor_arg(),
                    w.packed.clone().into_tensor_arg(),
                    w.scales.clone().into_tensor_arg(),
                    w.biases.clone().into_tensor_arg(),
                    w.lut.clone().into_tensor_arg(),
                    out.clone().into_tensor_arg(),
                    m,
                    k,
                    rpc,
                    split.vw,
                    split.vpt,
                    split.threads,
                    planes,
                    plane.is_some(),
                    group_size,
                    has_bias,
                    dtypes,
                );
                STREAM_LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return out;
            }
        }
        let rpc = match kernel {
            GemvKernel::Lanes => None,
            // `Rows`, and `Stream`'s fallback (plane size not fixed, or `M` above
            // `STREAM_MAX_ROWS`).
            GemvKernel::Rows
            | GemvKernel::Stream
            | GemvKernel::StreamWith { .. }
            | GemvKernel::Slices { .. }
            | GemvKernel::Auto => Some(rows_per_cube(gemv2_max_rows_per_cube(m), n, sms)),
            GemvKernel::RowsPerCube(r) => Some(r.clamp(1, gemv2_max_rows_per_cube(m))),
        };
        if let Some(rpc) = rpc.filter(|&r| gemv2_shared_bytes(m, k, r) <= max_shared) {
            quant_gemv_rows::launch(
                &x.client,
                CubeCount::Static(n.div_ceil(rpc) as u32, 1, 1),
                CubeDim::new_1d(GEMV2_THREADS as u32),
                x.clone().into_tensor_arg(),
                w.packed.into_tensor_arg(),
                w.scales.into_tensor_arg(),
                w.biases.into_tensor_arg(),
                w.lut.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                m,
                k,
                rpc,
                group_size,
                has_bias,
                dtypes,
            );
            return out;
        }
        quant_gemv::launch(
            &x.client,
            CubeCount::Static(n.div_ceil(GEMV_ROWS_PER_CUBE) as u32, 1, 1),
            CubeDim::new_2d(GEMV_LANES as u32, GEMV_ROWS_PER_CUBE as u32),
            x.clone().into_tensor_arg(),
            w.packed.into_tensor_arg(),
            w.scales.into_tensor_arg(),
            w.biases.into_tensor_arg(),
            w.lut.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            m,
            group_size,
            has_bias,
            dtypes,
        );
        out
    }

    fn quant_matmul_t(
        g: CubeTensor,
        packed: CubeTensor,
        scales: CubeTensor,
        biases: CubeTensor,
        lut: CubeTensor,
        group_size: usize,
        has_bias: bool,
    ) -> CubeTensor {
        let g = into_contiguous(g);
        let w = prepare(packed, scales, biases, lut);
        let k = w.packed.meta.shape()[1] * 8;
        gemm(g, w, k, group_size, has_bias, true)
    }
}
