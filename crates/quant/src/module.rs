//! Frozen quantized modules and the narrow trait the model calls.
//!
//! The weights live on the device packed (`Tensor<_, Int>` holding each `u32` word's bits as an
//! `i32`) with their per-group scales (and biases); they are plain tensors, not parameters, so
//! they receive no gradient and an optimizer never touches them (a LoRA/DoRA adapter trains beside
//! them). The plain-tensor path ([`QuantizedWeight::forward_plain`]) dequantizes (unpack → table
//! lookup → scale/bias) then multiplies; it runs on every device and is the reference for the fused
//! CubeCL kernels of `bit-axon-kernels` (`quant` module), which [`QuantLinear`] (and each expert of
//! [`QuantExperts`]) uses instead on CubeCL devices when this crate's `wgpu`/`cuda` feature is on.

use burn::prelude::*;
use burn::tensor::module::linear;

use crate::matrix::{QuantFormat, QuantMatrix};

/// What the model needs from a quantized weight `W [out, in]`, whatever its format.
pub trait QuantizedWeight {
    fn d_in(&self) -> usize;
    fn d_out(&self) -> usize;
    /// `W` in f32, `[out, in]` (materialised; used by the plain path and adapter merges).
    fn dequantize(&self) -> Tensor<2>;
    /// `x·Wᵀ`: `x [.., in]` → `[.., out]` (a fused kernel where the implementation has one).
    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward_plain(x)
    }
    /// `g·W`: `g [.., out]` → `[.., in]`, the input gradient of [`QuantizedWeight::forward`].
    fn backward_input<const D: usize>(&self, g: Tensor<D>) -> Tensor<D> {
        self.backward_input_plain(g)
    }
    /// The plain-tensor `x·Wᵀ`: dequantize, then matmul (the reference path).
    fn forward_plain<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.dequantize().transpose(), None)
    }
    /// The plain-tensor `g·W`.
    fn backward_input_plain<const D: usize>(&self, g: Tensor<D>) -> Tensor<D> {
        linear(g, self.dequantize(), None)
    }
}

/// A bias-free linear layer with a frozen 4-bit weight: `y = x·Wᵀ`, `x [.., in]` → `[.., out]`.
#[derive(Module, Debug)]
pub struct QuantLinear {
    /// `[out, in/8]` packed codes.
    pub packed: Tensor<2, Int>,
    /// `[out, in/gs]`.
    pub scales: Tensor<2>,
    /// `[out, in/gs]` (affine only).
    pub biases: Option<Tensor<2>>,
    /// `[16]` decode table.
    pub lut: Tensor<1>,
    pub d_in: usize,
    pub d_out: usize,
    pub group_size: usize,
    /// `true` for NF4, `false` for affine int4.
    pub nf4: bool,
}

/// Stacked routed experts with frozen 4-bit weights `W_e [out, in]`, `e < X`.
#[derive(Module, Debug)]
pub struct QuantExperts {
    /// `[X, out, in/8]`.
    pub packed: Tensor<3, Int>,
    /// `[X, out, in/gs]`.
    pub scales: Tensor<3>,
    pub biases: Option<Tensor<3>>,
    pub lut: Tensor<1>,
    pub d_in: usize,
    pub d_out: usize,
    pub group_size: usize,
    pub nf4: bool,
}

/// One expert of a [`QuantExperts`] stack, borrowed as tensors (cheap clones of device handles).
pub struct ExpertView {
    inner: QuantLinear,
}

fn packed_tensor<const D: usize>(words: &[u32], shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    let bits: Vec<i32> = words.iter().map(|&w| w as i32).collect();
    Tensor::from_data(TensorData::new(bits, shape), device)
}

fn float_tensor<const D: usize>(v: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

fn lut_tensor(format: QuantFormat, device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(format.lut().to_vec(), [16]), device)
}

/// Plain-tensor dequantization of `rows` packed rows: `[R, in/8]` → `[R, in]`.
pub fn dequantize_rows(
    packed: Tensor<2, Int>,
    scales: Tensor<2>,
    biases: Option<Tensor<2>>,
    lut: Tensor<1>,
    gs: usize,
) -> Tensor<2> {
    let [rows, words] = packed.dims();
    let d_in = words * 8;
    let groups = d_in / gs;
    let device = packed.device();
    let shifts =
        Tensor::<1, Int>::from_data(TensorData::new((0..8).map(|j| 4 * j).collect::<Vec<i32>>(), [8]), &device)
            .reshape([1, 1, 8])
            .expand([rows, words, 8]);
    let codes =
        packed.unsqueeze_dim::<3>(2).expand([rows, words, 8]).bitwise_right_shift(shifts).bitwise_and_scalar(15);
    let values = lut.select(0, codes.reshape([rows * d_in])).reshape([rows, groups, gs]);
    let w = values * scales.reshape([rows, groups, 1]);
    let w = match biases {
        Some(b) => w + b.reshape([rows, groups, 1]),
        None => w,
    };
    w.reshape([rows, d_in])
}

impl QuantLinear {
    /// Uploads a host matrix of shape `[out, in]`.
    pub fn from_matrix(m: &QuantMatrix, device: &Device) -> Self {
        assert_eq!(m.shape.len(), 2, "QuantLinear needs a 2-D matrix, got {:?}", m.shape);
        let (d_out, d_in, gs) = (m.shape[0], m.shape[1], m.group_size);
        let g = [d_out, d_in / gs];
        Self {
            packed: packed_tensor(&m.packed, [d_out, d_in / 8], device),
            scales: float_tensor(&m.scales, g, device),
            biases: m.biases.as_ref().map(|b| float_tensor(b, g, device)),
            lut: lut_tensor(m.format, device),
            d_in,
            d_out,
            group_size: gs,
            nf4: m.format == QuantFormat::Nf4,
        }
    }

    pub fn format(&self) -> QuantFormat {
        if self.nf4 { QuantFormat::Nf4 } else { QuantFormat::Affine4 }
    }

    /// The fused kernel's view of this weight, when `device` runs CubeCL kernels.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn kernel_weight(&self, device: &Device) -> Option<bit_axon_kernels::quant::QuantWeight> {
        (bit_axon_kernels::quant::is_cube(device) && !bit_axon_kernels::plain_forced("quant")).then(|| {
            bit_axon_kernels::quant::QuantWeight {
                packed: self.packed.clone(),
                scales: self.scales.clone(),
                biases: self.biases.clone(),
                lut: self.lut.clone(),
                group_size: self.group_size,
            }
        })
    }

    /// Reads the matrix back to the host (for saving).
    pub fn to_matrix(&self) -> QuantMatrix {
        QuantMatrix {
            format: self.format(),
            shape: vec![self.d_out, self.d_in],
            group_size: self.group_size,
            packed: ints_to_words(self.packed.clone().into_data()),
            scales: floats(self.scales.clone().into_data()),
            biases: self.biases.clone().map(|b| floats(b.into_data())),
        }
    }
}

impl QuantizedWeight for QuantLinear {
    fn d_in(&self) -> usize {
        self.d_in
    }
    fn d_out(&self) -> usize {
        self.d_out
    }
    fn dequantize(&self) -> Tensor<2> {
        dequantize_rows(
            self.packed.clone(),
            self.scales.clone(),
            self.biases.clone(),
            self.lut.clone(),
            self.group_size,
        )
    }
    /// The fused CubeCL kernel on CubeCL devices (feature `wgpu`/`cuda`), else the plain path.
    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if let Some(w) = self.kernel_weight(&x.device()) {
            return bit_axon_kernels::quant::quant_linear(x, &w);
        }
        self.forward_plain(x)
    }
    fn backward_input<const D: usize>(&self, g: Tensor<D>) -> Tensor<D> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if let Some(w) = self.kernel_weight(&g.device()) {
            return bit_axon_kernels::quant::quant_linear_t(g, &w);
        }
        self.backward_input_plain(g)
    }
}

impl QuantExperts {
    /// Uploads a host stack of shape `[X, out, in]`.
    pub fn from_matrix(m: &QuantMatrix, device: &Device) -> Self {
        assert_eq!(m.shape.len(), 3, "QuantExperts needs a 3-D stack, got {:?}", m.shape);
        let (x, d_out, d_in, gs) = (m.shape[0], m.shape[1], m.shape[2], m.group_size);
        let g = [x, d_out, d_in / gs];
        Self {
            packed: packed_tensor(&m.packed, [x, d_out, d_in / 8], device),
            scales: float_tensor(&m.scales, g, device),
            biases: m.biases.as_ref().map(|b| float_tensor(b, g, device)),
            lut: lut_tensor(m.format, device),
            d_in,
            d_out,
            group_size: gs,
            nf4: m.format == QuantFormat::Nf4,
        }
    }

    pub fn num_experts(&self) -> usize {
        self.packed.dims()[0]
    }

    pub fn format(&self) -> QuantFormat {
        if self.nf4 { QuantFormat::Nf4 } else { QuantFormat::Affine4 }
    }

    /// Expert `e` as a quantized linear layer sharing this stack's device memory.
    pub fn expert(&self, e: usize) -> ExpertView {
        let (o, w, g) = (self.d_out, self.d_in / 8, self.d_in / self.group_size);
        let pick3 = |t: Tensor<3>| t.narrow(0, e, 1).reshape([o, g]);
        ExpertView {
            inner: QuantLinear {
                packed: self.packed.clone().narrow(0, e, 1).reshape([o, w]),
                scales: pick3(self.scales.clone()),
                biases: self.biases.clone().map(pick3),
                lut: self.lut.clone(),
                d_in: self.d_in,
                d_out: self.d_out,
                group_size: self.group_size,
                nf4: self.nf4,
            },
        }
    }

    /// Reads the stack back to the host (for saving).
    pub fn to_matrix(&self) -> QuantMatrix {
        QuantMatrix {
            format: self.format(),
            shape: vec![self.num_experts(), self.d_out, self.d_in],
            group_size: self.group_size,
            packed: ints_to_words(self.packed.clone().into_data()),
            scales: floats(self.scales.clone().into_data()),
            biases: self.biases.clone().map(|b| floats(b.into_data())),
        }
    }
}

impl QuantizedWeight for ExpertView {
    fn d_in(&self) -> usize {
        self.inner.d_in
    }
    fn d_out(&self) -> usize {
        self.inner.d_out
    }
    fn dequantize(&self) -> Tensor<2> {
        self.inner.dequantize()
    }
    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.inner.forward(x)
    }
    fn backward_input<const D: usize>(&self, g: Tensor<D>) -> Tensor<D> {
        self.inner.backward_input(g)
    }
}

fn ints_to_words(data: TensorData) -> Vec<u32> {
    data.convert::<i64>().try_to_vec::<i64>().expect("int tensor").into_iter().map(|v| v as u32).collect()
}

fn floats(data: TensorData) -> Vec<f32> {
    data.convert::<f32>().try_to_vec::<f32>().expect("float tensor")
}
