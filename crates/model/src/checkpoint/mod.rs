//! Reading and writing checkpoints in the reference implementation's directory layout:
//! `config.json` plus one or more `*.safetensors` with its parameter names.

mod reader;
mod writer;

pub use reader::{TensorFiles, decode_float};
pub use writer::{FloatDtype, OwnedTensor, write_safetensors, write_text_atomic};

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use crate::error::Result;

/// Builds Burn parameters from checkpoint tensors, checking every name and shape.
pub struct Loader<'a> {
    pub files: &'a TensorFiles,
    pub device: Device,
}

impl<'a> Loader<'a> {
    pub fn new(files: &'a TensorFiles, device: &Device) -> Self {
        Self { files, device: device.clone() }
    }

    /// A float tensor with exactly `shape`, converted to f32.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.files.read_f32(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), &self.device))
    }

    pub fn param<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Param<Tensor<D>>> {
        Ok(Param::from_tensor(self.tensor(name, shape)?))
    }

    /// A bias-free or biased linear layer stored as the reference does, `weight (out, in)`;
    /// Burn keeps `[in, out]`, so the matrix is transposed once here.
    pub fn linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let w = self.files.read_f32(&format!("{prefix}.weight"), &[d_out, d_in])?;
        // Transposed on the host so the parameter is contiguous, like a freshly initialised one.
        let mut t = vec![0.0f32; w.len()];
        for (o, row) in w.chunks_exact(d_in).enumerate() {
            for (i, v) in row.iter().enumerate() {
                t[i * d_out + o] = *v;
            }
        }
        let w = Tensor::from_data(TensorData::new(t, [d_in, d_out]), &self.device);
        let bias = if bias { Some(self.param(&format!("{prefix}.bias"), [d_out])?) } else { None };
        Ok(Linear { weight: Param::from_tensor(w), bias })
    }
}

/// Collects named tensors from Burn modules in the reference layout, for [`write_safetensors`].
pub struct Saver {
    pub tensors: Vec<(String, OwnedTensor)>,
    /// Precision for ordinary float parameters.
    pub dtype: FloatDtype,
    /// Precision for routed-expert stacks (the reference keeps them in f16).
    pub expert_dtype: FloatDtype,
}

impl Saver {
    pub fn new(dtype: FloatDtype, expert_dtype: FloatDtype) -> Self {
        Self { tensors: Vec::new(), dtype, expert_dtype }
    }

    pub fn tensor<const D: usize>(&mut self, name: String, tensor: Tensor<D>, dtype: FloatDtype) {
        let shape = tensor.dims().to_vec();
        let values: Vec<f32> = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("float tensor converts to f32");
        self.tensors.push((name, OwnedTensor::from_f32(&values, shape, dtype)));
    }

    pub fn param<const D: usize>(&mut self, name: String, param: &Param<Tensor<D>>) {
        let dtype = self.dtype;
        self.tensor(name, param.val(), dtype);
    }

    /// Writes `weight (out, in)` (and `bias`) for a Burn linear layer.
    pub fn linear(&mut self, prefix: &str, linear: &Linear) {
        let dtype = self.dtype;
        self.tensor(format!("{prefix}.weight"), linear.weight.val().transpose(), dtype);
        if let Some(b) = &linear.bias {
            self.param(format!("{prefix}.bias"), b);
        }
    }
}
