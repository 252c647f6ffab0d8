//! Memory-mapped reading of one or more safetensors files as a single name → tensor map.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the file's mapping (header already skipped).
    range: (usize, usize),
}

/// A read-only view over safetensors files, validated at open time (header, offsets and file
/// length), so a truncated or corrupt file is rejected before any tensor is used.
pub struct TensorFiles {
    root: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    entries: HashMap<String, Entry>,
}

impl TensorFiles {
    /// Opens the given files. The same tensor name in two files is an error.
    pub fn open(root: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut entries: HashMap<String, Entry> = HashMap::new();
        for path in paths {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only and the checkpoint is not expected to change while
            // it is loaded; a concurrent writer would at worst give garbage values, which the
            // shape/dtype checks and the header validation below bound.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let (n, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
                Error::format(path, format!("not a valid safetensors file ({e}); is it truncated or corrupt?"))
            })?;
            let base = 8 + n;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                let entry = Entry {
                    file: files.len(),
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range: (base + s, base + e),
                };
                if let Some(prev) = entries.insert(name.clone(), entry) {
                    return Err(Error::format(
                        path,
                        format!("tensor `{name}` is also in {}", files_path(&files, prev.file).display()),
                    ));
                }
            }
            files.push((path.clone(), map));
        }
        Ok(Self { root: root.to_path_buf(), files, entries })
    }

    /// Opens every `*.safetensors` of a checkpoint directory (the weights may be sharded).
    /// Files named `io.safetensors` (oracle inputs/outputs kept beside fixtures) are skipped.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let read = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut paths: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .filter(|p| p.file_name().is_some_and(|n| n != "io.safetensors"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(Error::format(dir, "no *.safetensors file in the checkpoint directory"));
        }
        Self::open(dir, &paths)
    }

    /// The directory (or file) this view was opened from, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// File holding `name`, for messages.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.entries.get(name).map(|e| files_path(&self.files, e.file))
    }

    fn entry(&self, name: &str, expected: &[usize]) -> Result<&Entry> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            dir: self.root.clone(),
            name: name.to_string(),
            expected: expected.to_vec(),
        })?;
        if entry.shape != expected {
            return Err(Error::Shape {
                file: files_path(&self.files, entry.file).to_path_buf(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: entry.shape.clone(),
            });
        }
        Ok(entry)
    }

    /// Raw bytes of a tensor after checking its shape.
    pub fn bytes(&self, name: &str, expected: &[usize]) -> Result<(&[u8], Dtype)> {
        let entry = self.entry(name, expected)?;
        let map = &self.files[entry.file].1;
        Ok((&map[entry.range.0..entry.range.1], entry.dtype))
    }

    /// A floating-point tensor converted to f32 (from f32, f16, bf16 or f64).
    pub fn read_f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let (bytes, dtype) = self.bytes(name, expected)?;
        let entry = &self.entries[name];
        let file = files_path(&self.files, entry.file);
        decode_float(bytes, dtype).ok_or_else(|| Error::Dtype {
            file: file.to_path_buf(),
            name: name.to_string(),
            expected: "F32, F16, BF16 or F64".into(),
            found: format!("{dtype:?}"),
        })
    }

    /// An integer tensor converted to i64 (from i32, i64, u32 or u8), e.g. token ids.
    pub fn read_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        let shape = self
            .shape(name)
            .ok_or_else(|| Error::MissingTensor { dir: self.root.clone(), name: name.into(), expected: vec![] })?
            .to_vec();
        let (bytes, dtype) = self.bytes(name, &shape)?;
        let values = match dtype {
            Dtype::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::I64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
            Dtype::U8 => bytes.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(Error::Dtype {
                    file: self.file_of(name).unwrap_or(&self.root).to_path_buf(),
                    name: name.into(),
                    expected: "I32, I64, U32 or U8".into(),
                    found: format!("{other:?}"),
                });
            }
        };
        Ok((values, shape))
    }
}

fn files_path(files: &[(PathBuf, Mmap)], i: usize) -> &Path {
    &files[i].0
}

/// Little-endian float bytes to f32; `None` for a non-float dtype.
pub fn decode_float(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
        Dtype::BF16 => {
            bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect()
        }
        Dtype::F64 => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        _ => return None,
    })
}
