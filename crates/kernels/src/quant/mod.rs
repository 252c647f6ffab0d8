//! Fused 4-bit dequantize-matmul (NF4 and MLX affine int4) as CubeCL kernels, registered as a
//! Burn custom op with its own backward.
//!
//! ```text
//! W[n, k] = lut[q[n, k]]·scales[n, k/gs] + biases[n, k/gs]      W [N, K] = [out, in], never materialised
//! quant_linear:    y [M, N] = x [M, K]·Wᵀ                      (forward)
//! quant_linear_t:  dx [M, K] = g [M, N]·W                       (input gradient, QLoRA backward)
//! ```
//! `packed [N, K/8]` holds 8 codes per 32-bit word (code `j` in bits `4j..4j+3`, stored as `i32`),
//! `scales`/`biases` `[N, K/gs]`, `lut [16]` the decode table (NF4 codebook, or `0..15` for affine).
//! `M ≤ GEMV_MAX_ROWS` runs a GEMV kernel (decode; [`GemvKernel`] picks which, see
//! [`quant_linear_with`]), larger `M` the tiled GEMM (prefill, training);
//! the transposed product always runs the tiled GEMM. Accumulation is f32.
//!
//! [`quant_linear`] works on any CubeCL device (wgpu, CUDA), with or without autodiff: the weight
//! is frozen (no gradient), the gradient w.r.t. `x` is [`quant_linear_t`] of the output gradient.
//! The plain-tensor reference (dequantize then matmul) is `bit_axon_quant::module::dequantize_rows`.

mod autodiff;
mod cube;
pub mod kernels;
pub mod slices;

pub use cube::{half2_launches, slice_launches, stream_launches};

use burn::backend::{Backend, backend_extension, tensor::FloatTensor, tensor::IntTensor};
use burn::prelude::*;

/// Rows (`batch·seq`) up to which [`quant_linear`] uses the GEMV kernel.
pub const GEMV_MAX_ROWS: usize = 8;

/// The GEMV kernel [`quant_linear_with`] runs for `M ≤ GEMV_MAX_ROWS` rows (the GEMM above).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemvKernel {
    /// `kernels::quant_gemv`: one plane of 32 lanes per output, `x` read from global memory
    /// for every word.
    Lanes,
    /// `kernels::quant_gemv_rows`: several outputs per cube, `x` staged once in shared memory and
    /// reused across them (1.3–1.8× less device time than `Lanes` at the default config's shapes
    /// on an H200, `experiments/nf4-kernels/results.md` run 3); outputs per cube chosen from `N`
    /// and the device's SM count (the most, up to `16 / M`, that still gives every SM
    /// `kernels::GEMV2_CUBES_PER_SM` cubes: fewer left it latency-bound, runs 6-7). Falls back to
    /// `Lanes` when it does not fit in shared memory (`kernels::gemv2_shared_bytes` above the
    /// device's limit or `kernels::GEMV2_MAX_SHARED`; with 48 KiB: `K` up to about 9 000 at one
    /// row). The default for `M > kernels::STREAM_MAX_ROWS`.
    Rows,
    /// `Rows` with this many outputs per cube (capped at `16 / M`).
    RowsPerCube(usize),
    /// `kernels::quant_gemv_stream`: a cube spans a whole row of `W` with `x` in
    /// registers and streams chunks of rows, loading the next chunk's words (64- or 128-bit
    /// loads) while it decodes the current one; a plane sum ends each output. For
    /// `M ≤ kernels::STREAM_MAX_ROWS` on devices with plane operations of a fixed size; `Rows`
    /// otherwise.
    Stream,
    /// The default: `Slices` with its automatic split (on an H200 it took less device
    /// time than the better of `Rows` and `Stream` at each of the default config's shapes (20–37 %),
    /// `experiments/nf4-kernels/results.md` runs 14–17); `Rows` where `Slices` does not apply
    /// (`M > slices::SLICE_MAX_ROWS`, or `x` too long for shared memory).
    #[default]
    Auto,
    /// `Stream` with `rows` outputs per chunk (capped at `16 / M`; 0: its default) and `chunks`
    /// chunks streamed per cube (0: an equal share for `kernels::STREAM_CUBES_PER_SM` cubes per
    /// SM). Runs on any device: without plane operations of a fixed size, its sums go through
    /// shared memory alone (how the tests cover it on lavapipe).
    StreamWith { rows: usize, chunks: usize },
    /// `slices::quant_gemv_slices`: each plane owns several rows, its lanes split `K` into long
    /// strided slices (`lanes` lanes per row, `rows` rows per lane, `depth` vectors of each row per
    /// step; 0: chosen from the shape, `slices::slice_plan`), `x` staged in shared memory, the next vector of every row in flight
    /// while the current one is decoded, one shuffle sum per row. For
    /// `M ≤ slices::SLICE_MAX_ROWS` when `x` fits in shared memory; `Rows` otherwise. Runs on any
    /// device (shared-memory sums where planes are not of a fixed size). With f16 activations and
    /// NF4 on CUDA it decodes and multiplies two codes per instruction (`f16x2`, products summed in
    /// f16 within each word of 8 codes; `slices::quant_gemv_slices`).
    Slices { lanes: usize, rows: usize, depth: usize },
}

/// Where `StreamWith` starts in [`GemvKernel`]'s `usize` encoding (`rows + 256·chunks`
/// above it).
const STREAM_INDEX: usize = 1 << 16;
/// Where `Slices` starts (`lanes + 256·rows + 65536·depth` above it).
const SLICE_INDEX: usize = 1 << 20;

impl GemvKernel {
    /// The kernels the tests compare with the plain path.
    pub const ALL: [GemvKernel; 12] = [
        GemvKernel::Auto,
        GemvKernel::Lanes,
        GemvKernel::Rows,
        GemvKernel::RowsPerCube(3),
        GemvKernel::RowsPerCube(16),
        GemvKernel::Stream,
        GemvKernel::StreamWith { rows: 3, chunks: 3 },
        GemvKernel::StreamWith { rows: 16, chunks: 2 },
        GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 },
        GemvKernel::Slices { lanes: 16, rows: 3, depth: 1 },
        GemvKernel::Slices { lanes: 8, rows: 1, depth: 3 },
        GemvKernel::Slices { lanes: 32, rows: 2, depth: 2 },
    ];

    /// The `usize` passed through the backend op.
    pub(crate) fn index(self) -> usize {
        match self {
            GemvKernel::Lanes => 0,
            GemvKernel::Rows => 1,
            GemvKernel::Stream => 2,
            GemvKernel::RowsPerCube(r) => 2 + r.clamp(1, STREAM_INDEX - 4),
            GemvKernel::Auto => STREAM_INDEX - 1,
            GemvKernel::StreamWith { rows, chunks } => STREAM_INDEX + rows.min(255) + 256 * chunks.min(255),
            GemvKernel::Slices { lanes, rows, depth } => {
                SLICE_INDEX + lanes.min(255) + 256 * rows.min(255) + 65536 * depth.min(15)
            }
        }
    }

    pub(crate) fn from_index(i: usize) -> Self {
        match i {
            0 => GemvKernel::Lanes,
            1 => GemvKernel::Rows,
            2 => GemvKernel::Stream,
            r if r == STREAM_INDEX - 1 => GemvKernel::Auto,
            r if r < STREAM_INDEX => GemvKernel::RowsPerCube(r - 2),
            r if r >= SLICE_INDEX => GemvKernel::Slices {
                lanes: (r - SLICE_INDEX) % 256,
                rows: (r - SLICE_INDEX) / 256 % 256,
                depth: (r - SLICE_INDEX) / 65536,
            },
            r => GemvKernel::StreamWith { rows: (r - STREAM_INDEX) % 256, chunks: (r - STREAM_INDEX) / 256 },
        }
    }

    /// The kernel `Auto` stands for (`Slices` picks its own split per shape); any other kernel
    /// stands for itself.
    pub fn resolve(self) -> Self {
        match self {
            GemvKernel::Auto => GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 },
            other => other,
        }
    }

    /// `(rows per chunk, chunks per cube)` of a streaming kernel (0: its default), `None` otherwise.
    pub(crate) fn stream(self) -> Option<(usize, usize)> {
        match self {
            GemvKernel::Stream => Some((0, 0)),
            GemvKernel::StreamWith { rows, chunks } => Some((rows, chunks)),
            _ => None,
        }
    }
}

/// The fused products as a backend extension: implemented for CubeCL backends (`Cube`), lazily
/// for `Fusion`, and with a backward for `Autodiff` (w.r.t. `x` only; the weight is frozen).
#[backend_extension(Cube, Autodiff, Fusion)]
#[allow(clippy::too_many_arguments)]
pub trait QuantMatmulBackend: Backend {
    /// `x [M, K]·Wᵀ → [M, N]`. `biases` is ignored unless `has_bias`; `gemv` is a
    /// [`GemvKernel`] as `usize` (which kernel runs for `M ≤ GEMV_MAX_ROWS`).
    #[fusion(meta = |x, packed, _s, _b, _l, _gs, _hb, _gv| Spec::new(Shape::new([x.shape[0], packed.shape[0]]), x.dtype))]
    fn quant_matmul(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        lut: FloatTensor<Self>,
        group_size: usize,
        has_bias: bool,
        gemv: usize,
    ) -> FloatTensor<Self>;

    /// `g [M, N]·W → [M, K]`. `biases` is ignored unless `has_bias`.
    #[fusion(meta = |g, packed, _s, _b, _l, _gs, _hb| Spec::new(Shape::new([g.shape[0], packed.shape[1] * 8]), g.dtype))]
    fn quant_matmul_t(
        g: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        lut: FloatTensor<Self>,
        group_size: usize,
        has_bias: bool,
    ) -> FloatTensor<Self>;
}

type Spec = burn::backend::fusion::custom::TensorSpec;

/// Whether `device` (with or without autodiff) runs CubeCL kernels.
pub use crate::scan::is_cube;

/// The 4-bit weight's tensors, borrowed by the kernel calls.
#[derive(Clone, Debug)]
pub struct QuantWeight {
    /// `[N, K/8]` packed codes (each word's bits as `i32`).
    pub packed: Tensor<2, Int>,
    /// `[N, K/gs]`.
    pub scales: Tensor<2>,
    /// `[N, K/gs]`, affine int4 only.
    pub biases: Option<Tensor<2>>,
    /// `[16]` decode table.
    pub lut: Tensor<1>,
    pub group_size: usize,
}

impl QuantWeight {
    /// `(N, K)`, checking every tensor's shape against the packed codes.
    fn dims(&self, who: &str) -> (usize, usize) {
        let [n, words] = self.packed.dims();
        let k = words * 8;
        let gs = self.group_size;
        assert!(
            gs > 0 && gs % 8 == 0 && k % gs == 0,
            "{who}: group size {gs} must be a multiple of 8 dividing K = {k}"
        );
        assert_eq!(self.scales.dims(), [n, k / gs], "{who}: scales shape vs packed [{n}, {words}] (group size {gs})");
        if let Some(b) = &self.biases {
            assert_eq!(b.dims(), [n, k / gs], "{who}: biases shape vs packed [{n}, {words}] (group size {gs})");
        }
        assert_eq!(self.lut.dims(), [16], "{who}: the decode table must have 16 entries");
        (n, k)
    }

    fn parts(
        &self,
    ) -> (
        burn::tensor::DispatchTensor,
        burn::tensor::DispatchTensor,
        burn::tensor::DispatchTensor,
        burn::tensor::DispatchTensor,
        bool,
    ) {
        let has_bias = self.biases.is_some();
        let biases = self.biases.clone().unwrap_or_else(|| self.scales.clone());
        (
            self.packed.clone().into_dispatch(),
            self.scales.clone().into_dispatch(),
            biases.into_dispatch(),
            self.lut.clone().into_dispatch(),
            has_bias,
        )
    }
}

/// `x [.., K]·Wᵀ → [.., N]` through the fused kernels (differentiable in `x`), with the default
/// [`GemvKernel`].
///
/// Panics on a non-CubeCL device or when the shapes disagree.
pub fn quant_linear<const D: usize>(x: Tensor<D>, w: &QuantWeight) -> Tensor<D> {
    quant_linear_with(x, w, GemvKernel::default())
}

/// [`quant_linear`] with the GEMV kernel chosen (used for `M ≤ GEMV_MAX_ROWS` rows only).
pub fn quant_linear_with<const D: usize>(x: Tensor<D>, w: &QuantWeight, gemv: GemvKernel) -> Tensor<D> {
    let (n, k) = w.dims("quant_linear");
    assert!(is_cube(&x.device()), "quant_linear kernel: device {:?} is not a CubeCL device", x.device());
    let mut dims = x.dims();
    assert_eq!(dims[D - 1], k, "quant_linear: x {dims:?} has last axis {} but W is [{n}, {k}]", dims[D - 1]);
    let m: usize = dims[..D - 1].iter().product();
    let x2 = x.reshape([m, k]);
    let (packed, scales, biases, lut, has_bias) = w.parts();
    let y = Tensor::<2>::from_dispatch(<burn::backend::Dispatch as QuantMatmulBackend>::quant_matmul(
        x2.into_dispatch(),
        packed,
        scales,
        biases,
        lut,
        w.group_size,
        has_bias,
        gemv.index(),
    ));
    dims[D - 1] = n;
    y.reshape(dims)
}

/// `g [.., N]·W → [.., K]` through the fused kernel (the input gradient of [`quant_linear`]).
///
/// Panics on a non-CubeCL device or when the shapes disagree.
pub fn quant_linear_t<const D: usize>(g: Tensor<D>, w: &QuantWeight) -> Tensor<D> {
    let (n, k) = w.dims("quant_linear_t");
    assert!(is_cube(&g.device()), "quant_linear_t kernel: device {:?} is not a CubeCL device", g.device());
    let mut dims = g.dims();
    assert_eq!(dims[D - 1], n, "quant_linear_t: g {dims:?} has last axis {} but W is [{n}, {k}]", dims[D - 1]);
    let m: usize = dims[..D - 1].iter().product();
    let g2 = g.reshape([m, n]);
    let (packed, scales, biases, lut, has_bias) = w.parts();
    let y = Tensor::<2>::from_dispatch(<burn::backend::Dispatch as QuantMatmulBackend>::quant_matmul_t(
        g2.into_dispatch(),
        packed,
        scales,
        biases,
        lut,
        w.group_size,
        has_bias,
    ));
    dims[D - 1] = k;
    y.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::GemvKernel;

    #[test]
    fn kernel_choice_survives_the_backend_op_encoding() {
        let mut all = GemvKernel::ALL.to_vec();
        all.extend([GemvKernel::RowsPerCube(1), GemvKernel::StreamWith { rows: 0, chunks: 0 }]);
        for k in all {
            assert_eq!(GemvKernel::from_index(k.index()), k, "{k:?}");
        }
    }

    #[test]
    fn auto_takes_the_slices_kernel() {
        let slices = GemvKernel::Slices { lanes: 0, rows: 0, depth: 0 };
        assert_eq!(GemvKernel::Auto.resolve(), slices);
        assert_eq!(GemvKernel::Lanes.resolve(), GemvKernel::Lanes);
        assert_eq!(GemvKernel::default(), GemvKernel::Auto);
    }
}
