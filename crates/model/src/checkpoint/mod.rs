//! Reading and writing checkpoints in the reference implementation's directory layout:
//! `config.json` plus one or more `*.safetensors` with its parameter names.

mod reader;
mod writer;

pub use reader::{TensorFiles, decode_float};
pub use writer::{FloatDtype, OwnedTensor, write_safetensors, write_text_atomic};

use bit_axon_quant::nf4::DoubleQuant;
use bit_axon_quant::{QuantExperts, QuantFormat, QuantLinear, QuantMatrix};
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::layers::{ExpertStack, Projection, ProjectionWeight};

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

    /// A bias-free projection `weight (out, in)`: quantized when the checkpoint holds 4-bit keys
    /// for it (see [`Loader::quant_matrix`]), float otherwise.
    pub fn projection(&self, prefix: &str, d_in: usize, d_out: usize) -> Result<Projection> {
        Ok(match self.quant_matrix(prefix, &[d_out, d_in])? {
            Some(m) => Projection::quant(QuantLinear::from_matrix(&m, &self.device)),
            None => Projection::float(self.linear(prefix, d_in, d_out, false)?),
        })
    }

    /// A stack of expert matrices `weight (X, out, in)`, quantized or float.
    pub fn experts(&self, prefix: &str, shape: [usize; 3]) -> Result<ExpertStack> {
        Ok(match self.quant_matrix(prefix, &shape)? {
            Some(m) => ExpertStack::Quant(QuantExperts::from_matrix(&m, &self.device)),
            None => ExpertStack::Float(self.param(&format!("{prefix}.weight"), shape)?),
        })
    }

    /// Reads a 4-bit tensor of logical shape `[.., out, in]` stored under `prefix`, or `None` when
    /// `prefix.weight` is a float tensor. Layouts (the group size is inferred from the shapes):
    /// - affine int4 (MLX): `weight` u32 `[.., out, in/8]`, `scales` and `biases` (or
    ///   `biases_quant`, the reference's key for expert stacks) `[.., out, in/gs]`, any float dtype;
    /// - NF4: `weight` as above and either `absmax` f32 `[.., out, in/gs]`, or the double-quantized
    ///   `absmax_q` i8 `[.., out, in/gs]`, `absmax_scale` f32 `[ceil(n/256)]`, `absmax_mean` f32 `[1]`.
    pub fn quant_matrix(&self, prefix: &str, shape: &[usize]) -> Result<Option<QuantMatrix>> {
        let f = self.files;
        let (scales_key, format) = if f.contains(&format!("{prefix}.scales")) {
            (format!("{prefix}.scales"), QuantFormat::Affine4)
        } else if f.contains(&format!("{prefix}.absmax")) {
            (format!("{prefix}.absmax"), QuantFormat::Nf4)
        } else if f.contains(&format!("{prefix}.absmax_q")) {
            (format!("{prefix}.absmax_q"), QuantFormat::Nf4)
        } else {
            return Ok(None);
        };
        let file = f.file_of(&scales_key).unwrap_or(f.root()).to_path_buf();
        let (lead, d_in) = (&shape[..shape.len() - 1], shape[shape.len() - 1]);
        let group_shape = f.shape(&scales_key).unwrap_or_default().to_vec();
        let groups = *group_shape.last().unwrap_or(&0);
        if group_shape.len() != shape.len() || &group_shape[..lead.len()] != lead || groups == 0 || d_in % groups != 0 {
            return Err(Error::Shape {
                file,
                name: scales_key,
                expected: [lead, &[d_in / 64]].concat(),
                found: group_shape,
            });
        }
        let gs = d_in / groups;
        let wkey = format!("{prefix}.weight");
        let packed_shape: Vec<usize> = [lead, &[d_in / 8]].concat();
        let (bytes, dtype) = f.bytes(&wkey, &packed_shape)?;
        if dtype != Dtype::U32 {
            return Err(Error::Dtype {
                file,
                name: wkey,
                expected: "U32 (8 packed 4-bit codes)".into(),
                found: format!("{dtype:?}"),
            });
        }
        let packed = bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let (scales, biases) = match format {
            QuantFormat::Affine4 => {
                let bkey = [format!("{prefix}.biases"), format!("{prefix}.biases_quant")]
                    .into_iter()
                    .find(|k| f.contains(k))
                    .unwrap_or_else(|| format!("{prefix}.biases"));
                (f.read_f32(&scales_key, &group_shape)?, Some(f.read_f32(&bkey, &group_shape)?))
            }
            QuantFormat::Nf4 if scales_key.ends_with(".absmax") => (f.read_f32(&scales_key, &group_shape)?, None),
            QuantFormat::Nf4 => {
                let (codes, dt) = f.bytes(&scales_key, &group_shape)?;
                if dt != Dtype::I8 {
                    return Err(Error::Dtype {
                        file,
                        name: scales_key,
                        expected: "I8".into(),
                        found: format!("{dt:?}"),
                    });
                }
                let n = codes.len();
                let dq = DoubleQuant {
                    codes: codes.iter().map(|&b| b as i8).collect(),
                    block_scales: f
                        .read_f32(&format!("{prefix}.absmax_scale"), &[n.div_ceil(bit_axon_quant::nf4::DQ_BLOCK)])?,
                    mean: f.read_f32(&format!("{prefix}.absmax_mean"), &[1])?[0],
                };
                (dq.decode(), None)
            }
        };
        QuantMatrix::from_parts(prefix, format, shape, gs, packed, scales, biases)
            .map(Some)
            .map_err(|e| Error::format(file, e.to_string()))
    }
}

/// Collects named tensors from Burn modules in the reference layout, for [`write_safetensors`].
pub struct Saver {
    pub tensors: Vec<(String, OwnedTensor)>,
    /// Precision for ordinary float parameters.
    pub dtype: FloatDtype,
    /// Precision for routed-expert stacks (the reference keeps them in f16).
    pub expert_dtype: FloatDtype,
    /// Write NF4 absmax values double-quantized (8-bit, blocks of 256).
    pub double_quant: bool,
}

impl Saver {
    pub fn new(dtype: FloatDtype, expert_dtype: FloatDtype) -> Self {
        Self { tensors: Vec::new(), dtype, expert_dtype, double_quant: false }
    }

    pub fn tensor<const D: usize>(&mut self, name: String, tensor: Tensor<D>, dtype: FloatDtype) {
        let shape = tensor.dims().to_vec();
        let values: Vec<f32> =
            tensor.into_data().convert::<f32>().try_into_vec().expect("float tensor converts to f32");
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

    /// Writes a projection's weight: float `weight (out, in)` or its 4-bit keys. An attached
    /// adapter is not written here (adapters are saved on their own, or merged first).
    pub fn projection(&mut self, prefix: &str, p: &Projection) {
        match &p.weight {
            ProjectionWeight::Float(l) => self.linear(prefix, l),
            ProjectionWeight::Quant(q) => self.quant(prefix, &q.to_matrix(), false),
        }
    }

    /// Writes an expert stack: float `weight (X, out, in)` in `expert_dtype`, or its 4-bit keys.
    pub fn experts(&mut self, prefix: &str, e: &ExpertStack) {
        match e {
            ExpertStack::Float(p) => {
                let dt = self.expert_dtype;
                self.tensor(format!("{prefix}.weight"), p.val(), dt);
            }
            ExpertStack::Quant(q) => self.quant(prefix, &q.to_matrix(), true),
        }
    }

    /// Writes a 4-bit tensor in the layouts [`Loader::quant_matrix`] reads. Affine stacks of
    /// experts use the reference's names and dtypes (`scales`/`biases_quant` in `expert_dtype`);
    /// affine matrices store `scales`/`biases` in `dtype`; NF4 stores the f32 absmax, or its
    /// double quantization when [`Saver::double_quant`] is set.
    pub fn quant(&mut self, prefix: &str, m: &QuantMatrix, expert_stack: bool) {
        let words: Vec<u8> = m.packed.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.tensors.push((format!("{prefix}.weight"), OwnedTensor::from_raw(Dtype::U32, m.packed_shape(), words)));
        let g = m.group_shape();
        match (m.format, &m.biases) {
            (QuantFormat::Affine4, Some(b)) => {
                let (dt, bkey) =
                    if expert_stack { (self.expert_dtype, "biases_quant") } else { (self.dtype, "biases") };
                self.tensors.push((format!("{prefix}.scales"), OwnedTensor::from_f32(&m.scales, g.clone(), dt)));
                self.tensors.push((format!("{prefix}.{bkey}"), OwnedTensor::from_f32(b, g, dt)));
            }
            _ if self.double_quant => {
                let dq = DoubleQuant::encode(&m.scales);
                let codes = dq.codes.iter().map(|&c| c as u8).collect();
                self.tensors.push((format!("{prefix}.absmax_q"), OwnedTensor::from_raw(Dtype::I8, g, codes)));
                let nb = dq.block_scales.len();
                self.tensors.push((
                    format!("{prefix}.absmax_scale"),
                    OwnedTensor::from_f32(&dq.block_scales, vec![nb], FloatDtype::F32),
                ));
                self.tensors.push((
                    format!("{prefix}.absmax_mean"),
                    OwnedTensor::from_f32(&[dq.mean], vec![1], FloatDtype::F32),
                ));
            }
            _ => self.tensors.push((format!("{prefix}.absmax"), OwnedTensor::from_f32(&m.scales, g, FloatDtype::F32))),
        }
    }
}
