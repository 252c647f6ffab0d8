//! A quantized matrix (or stack of matrices) on the host, in either 4-bit format.

use crate::error::{QuantError, Result, shape_err};
use crate::{affine, nf4, pack};

/// Which 4-bit format a tensor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantFormat {
    /// QLoRA NormalFloat-4, absmax per block, no bias.
    Nf4,
    /// MLX affine int4: scale and bias per group (the reference's checkpoints).
    Affine4,
}

impl QuantFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nf4" => Ok(Self::Nf4),
            "affine4" | "affine" | "mlx" => Ok(Self::Affine4),
            other => Err(QuantError::Format(other.to_string())),
        }
    }

    /// The decode table: `w = lut[q] · scale + bias`.
    pub fn lut(self) -> [f32; 16] {
        match self {
            Self::Nf4 => nf4::CODEBOOK,
            Self::Affine4 => std::array::from_fn(|i| i as f32),
        }
    }
}

/// Packed codes plus per-group parameters of a tensor of logical shape `[.., out, in]`.
///
/// `packed` is `[.., out, in/8]` (see [`crate::pack`]), `scales` and `biases` are
/// `[.., out, in/gs]` (NF4: `scales` is the absmax and there are no biases).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantMatrix {
    pub format: QuantFormat,
    /// Logical (unpacked) shape, last axis = input columns.
    pub shape: Vec<usize>,
    pub group_size: usize,
    pub packed: Vec<u32>,
    pub scales: Vec<f32>,
    pub biases: Option<Vec<f32>>,
}

impl QuantMatrix {
    /// Quantizes `w` (row-major, `shape = [.., out, in]`) in groups of `gs` along `in`.
    /// `name` is used in errors.
    pub fn quantize(name: &str, format: QuantFormat, w: &[f32], shape: &[usize], gs: usize) -> Result<Self> {
        check_shape(name, shape, gs)?;
        if w.len() != shape.iter().product::<usize>() {
            return Err(shape_err(name, format!("{} values for shape {shape:?}", w.len())));
        }
        let (codes, scales, biases) = match format {
            QuantFormat::Affine4 => {
                let g = affine::quantize(w, gs);
                (g.codes, g.scales, Some(g.biases))
            }
            QuantFormat::Nf4 => {
                let (codes, absmax) = nf4::quantize(w, gs);
                (codes, absmax, None)
            }
        };
        Ok(Self { format, shape: shape.to_vec(), group_size: gs, packed: pack::pack4(&codes), scales, biases })
    }

    /// Assembles a matrix from stored parts, checking every length against `shape` and `gs`.
    pub fn from_parts(
        name: &str,
        format: QuantFormat,
        shape: &[usize],
        gs: usize,
        packed: Vec<u32>,
        scales: Vec<f32>,
        biases: Option<Vec<f32>>,
    ) -> Result<Self> {
        check_shape(name, shape, gs)?;
        let n: usize = shape.iter().product();
        if packed.len() * 8 != n {
            return Err(shape_err(name, format!("{} packed words for {n} weights (expected {})", packed.len(), n / 8)));
        }
        if scales.len() != n / gs {
            return Err(shape_err(name, format!("{} scales for {n} weights in groups of {gs}", scales.len())));
        }
        match (&biases, format) {
            (Some(b), QuantFormat::Affine4) if b.len() == scales.len() => {}
            (None, QuantFormat::Nf4) => {}
            (Some(b), QuantFormat::Affine4) => {
                return Err(shape_err(name, format!("{} biases for {} scales", b.len(), scales.len())));
            }
            (None, QuantFormat::Affine4) => return Err(shape_err(name, "affine4 needs biases")),
            (Some(_), QuantFormat::Nf4) => return Err(shape_err(name, "nf4 has no biases")),
        }
        Ok(Self { format, shape: shape.to_vec(), group_size: gs, packed, scales, biases })
    }

    pub fn d_in(&self) -> usize {
        *self.shape.last().expect("rank ≥ 2")
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Shape of `packed`: `[.., out, in/8]`.
    pub fn packed_shape(&self) -> Vec<usize> {
        let mut s = self.shape.clone();
        *s.last_mut().expect("rank ≥ 2") /= 8;
        s
    }

    /// Shape of `scales` / `biases`: `[.., out, in/gs]`.
    pub fn group_shape(&self) -> Vec<usize> {
        let mut s = self.shape.clone();
        *s.last_mut().expect("rank ≥ 2") /= self.group_size;
        s
    }

    /// The codes, one per weight.
    pub fn codes(&self) -> Vec<u8> {
        pack::unpack4(&self.packed)
    }

    /// The full-precision weights (row-major, `shape`).
    pub fn dequantize(&self) -> Vec<f32> {
        let codes = self.codes();
        match (&self.biases, self.format) {
            (Some(b), QuantFormat::Affine4) => affine::dequantize(&codes, &self.scales, b, self.group_size),
            _ => nf4::dequantize(&codes, &self.scales, self.group_size),
        }
    }
}

fn check_shape(name: &str, shape: &[usize], gs: usize) -> Result<()> {
    let Some(&d_in) = shape.last() else { return Err(shape_err(name, "a quantized tensor needs rank ≥ 2")) };
    if shape.len() < 2 {
        return Err(shape_err(name, format!("shape {shape:?} has rank < 2")));
    }
    if gs == 0 || gs % 8 != 0 {
        return Err(shape_err(name, format!("group size {gs} must be a positive multiple of 8")));
    }
    if d_in % gs != 0 {
        return Err(shape_err(name, format!("input width {d_in} is not a multiple of the group size {gs}")));
    }
    Ok(())
}
