//! Launching the 4-bit matmul kernels on a CubeCL backend.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::{cast, into_contiguous};
use burn_cubecl::{CubeBackend, tensor::CubeTensor};
use cubecl::{CubeCount, CubeDim};

use super::kernels::*;
use super::{GEMV_MAX_ROWS, GemvKernel, QuantMatmulBackend};

struct Weight {
    packed: CubeTensor,
    scales: CubeTensor,
    biases: CubeTensor,
    lut: CubeTensor,
}

/// Contiguous tensors, the per-group parameters and the table as f32 (the kernels' type).
fn prepare(packed: CubeTensor, scales: CubeTensor, biases: CubeTensor, lut: CubeTensor) -> Weight {
    let f32 = |t: CubeTensor| into_contiguous(cast(t, DType::F32));
    Weight { packed: into_contiguous(packed), scales: f32(scales), biases: f32(biases), lut: f32(lut) }
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
        let max_shared = x.client.properties().hardware.max_shared_memory_size.min(GEMV2_MAX_SHARED);
        let rpc = match GemvKernel::from_index(gemv) {
            GemvKernel::Lanes => None,
            GemvKernel::Rows => {
                let sms = x.client.properties().hardware.num_streaming_multiprocessors.unwrap_or(64) as usize;
                let mut r = gemv2_max_rows_per_cube(m);
                // Enough cubes to keep warps resident: at 2 cubes per SM Nsight showed 14.7 % warps
                // active (nf4-kernels run 6); run 7 timed every fixed count.
                while r > 1 && n.div_ceil(r) < GEMV2_CUBES_PER_SM * sms {
                    r /= 2;
                }
                Some(r)
            }
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
