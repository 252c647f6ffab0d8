//! Writing named tensors to a safetensors file atomically (temporary file, then rename).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, View};

use crate::error::{Error, Result};

/// Storage precision of a float tensor on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatDtype {
    F32,
    F16,
    BF16,
}

impl FloatDtype {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            other => Err(Error::Input(format!("unknown dtype `{other}`; expected f32, f16 or bf16"))),
        }
    }
}

/// One tensor ready to be written.
pub struct OwnedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl OwnedTensor {
    pub fn from_f32(values: &[f32], shape: Vec<usize>, dtype: FloatDtype) -> Self {
        assert_eq!(values.len(), shape.iter().product::<usize>(), "tensor size/shape mismatch");
        let (dtype, data) = match dtype {
            FloatDtype::F32 => (Dtype::F32, bytemuck::cast_slice(values).to_vec()),
            FloatDtype::F16 => {
                (Dtype::F16, values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect())
            }
            FloatDtype::BF16 => {
                (Dtype::BF16, values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect())
            }
        };
        Self { dtype, shape, data }
    }

    pub fn from_i32(values: &[i32], shape: Vec<usize>) -> Self {
        Self { dtype: Dtype::I32, shape, data: bytemuck::cast_slice(values).to_vec() }
    }

    pub fn from_raw(dtype: Dtype, shape: Vec<usize>, data: Vec<u8>) -> Self {
        Self { dtype, shape, data }
    }
}

impl View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` to `path` through `path.tmp` + fsync + rename, so a crash leaves either
/// the old file or the new one, never a torn file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, OwnedTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let views = tensors.iter().map(|(n, t)| (n.as_str(), t));
    safetensors::serialize_to_file(views, metadata, &tmp)
        .map_err(|e| Error::format(&tmp, format!("cannot write safetensors: {e}")))?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Writes a text file atomically (temporary file, fsync, rename).
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))
}
