//! Reading a Hugging Face Qwen2 checkpoint: `config.json` plus `model.safetensors`, or shards
//! listed in `model.safetensors.index.json`. The files are memory-mapped and validated when
//! opened; tensors are decoded (bf16/f16/f32 → f32) one at a time, or only the rows needed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bit_axon::checkpoint::{TensorFiles, decode_float};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Architectures whose tensor layout this reader knows.
pub const SUPPORTED_ARCHITECTURES: [&str; 1] = ["Qwen2ForCausalLM"];

/// The fields of a Qwen2 `config.json` that porting uses.
#[derive(Debug, Clone, Deserialize)]
pub struct QwenConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub vocab_size: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
}

fn default_eps() -> f64 {
    1e-6
}

/// An opened source checkpoint.
pub struct HfCheckpoint {
    pub dir: PathBuf,
    pub config: QwenConfig,
    /// Names, shapes, dtypes and checks (its own mappings are only used for the headers).
    pub files: TensorFiles,
    /// The mappings tensor data is read from: after a tensor is decoded its pages are released
    /// (`MADV_DONTNEED`), so resident memory does not grow with the source size.
    maps: HashMap<PathBuf, DataMap>,
}

struct DataMap {
    map: Mmap,
    ranges: HashMap<String, (usize, usize)>,
}

impl DataMap {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only mapping of a checkpoint that is not modified while porting; the
        // header was validated by `TensorFiles::open` and ranges are checked below.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (n, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| Error::format(path, format!("bad safetensors header: {e}")))?;
        let ranges = meta
            .tensors()
            .into_iter()
            .map(|(k, t)| (k, (8 + n + t.data_offsets.0, 8 + n + t.data_offsets.1)))
            .collect();
        Ok(Self { map, ranges })
    }

    /// Drops the resident pages of a byte range (they are re-read from the file if needed).
    fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        // SAFETY: the mapping is read-only and file-backed, so discarding its pages loses nothing.
        let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
        #[cfg(not(unix))]
        let _ = (start, len);
    }
}

impl HfCheckpoint {
    /// Opens `dir`: reads and checks `config.json`, then maps the weights (all shards named by
    /// the index, or `model.safetensors`).
    pub fn open(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config: QwenConfig = serde_json::from_str(&text)
            .map_err(|e| Error::format(&cfg_path, format!("not a Qwen2 config.json: {e}")))?;
        if !config.architectures.iter().any(|a| SUPPORTED_ARCHITECTURES.contains(&a.as_str())) {
            return Err(Error::format(
                &cfg_path,
                format!(
                    "unsupported architecture {:?} (model_type `{}`); supported: {SUPPORTED_ARCHITECTURES:?}",
                    config.architectures, config.model_type
                ),
            ));
        }
        let paths = weight_files(dir)?;
        let files = TensorFiles::open(dir, &paths)?;
        if let Some(index) = read_index(dir)? {
            for (name, file) in &index {
                match files.file_of(name) {
                    Some(p) if p.file_name().is_some_and(|n| n == file.as_str()) => {}
                    Some(p) => {
                        return Err(Error::format(
                            &dir.join(INDEX),
                            format!("tensor `{name}` is listed in `{file}` but found in {}", p.display()),
                        ));
                    }
                    None => {
                        return Err(Error::format(
                            &dir.join(file),
                            format!("tensor `{name}` is listed for this shard in {INDEX} but is not in it"),
                        ));
                    }
                }
            }
        }
        let maps = paths.iter().map(|p| Ok((p.clone(), DataMap::open(p)?))).collect::<Result<_>>()?;
        Ok(Self { dir: dir.to_path_buf(), config, files, maps })
    }

    /// Key of the token embedding.
    pub fn embed_key(&self) -> &'static str {
        "model.embed_tokens.weight"
    }

    /// Key of the LM head (the embedding when the source ties them).
    pub fn lm_head_key(&self) -> &'static str {
        if self.config.tie_word_embeddings && !self.files.contains("lm_head.weight") {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        }
    }

    /// The checked data range of `name` (shape `shape`) in its data mapping.
    fn data(&self, name: &str, shape: &[usize]) -> Result<(&DataMap, usize, usize, Dtype)> {
        let (_, dtype) = self.files.bytes(name, shape)?; // existence and shape checks, no data read
        let path = self.files.file_of(name).unwrap_or(&self.dir);
        let dm = self.maps.get(path).ok_or_else(|| Error::format(path, "shard not mapped"))?;
        let &(s, e) =
            dm.ranges.get(name).ok_or_else(|| Error::format(path, format!("tensor `{name}` not in header")))?;
        if e > dm.map.len() || s > e {
            return Err(Error::format(path, format!("tensor `{name}` lies outside the file")));
        }
        Ok((dm, s, e, dtype))
    }

    /// A whole tensor with exactly `shape`, as f32.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (dm, s, e, dtype) = self.data(name, shape)?;
        let out = decode_float(&dm.map[s..e], dtype).ok_or_else(|| {
            Error::format(
                self.files.file_of(name).unwrap_or(&self.dir),
                format!("tensor `{name}` is {dtype:?}, not a float"),
            )
        });
        dm.release(s, e - s);
        out
    }

    /// Rows `ids` of a matrix `[rows, cols]`, as f32 `[ids.len(), cols]`; an id ≥ `rows` gives
    /// `None` in `present` and zeros in the output. Only those rows are decoded.
    pub fn rows(&self, name: &str, shape: [usize; 2], ids: &[u32]) -> Result<(Vec<f32>, Vec<bool>)> {
        let (dm, s, e, dtype) = self.data(name, &shape)?;
        let bytes = &dm.map[s..e];
        let [rows, cols] = shape;
        let esize = bytes.len() / (rows * cols).max(1);
        let mut out = vec![0.0f32; ids.len() * cols];
        let mut present = vec![false; ids.len()];
        for (k, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= rows {
                continue;
            }
            let row = &bytes[id * cols * esize..(id + 1) * cols * esize];
            let v = decode_float(row, dtype).ok_or_else(|| {
                Error::format(
                    self.files.file_of(name).unwrap_or(&self.dir),
                    format!("tensor `{name}` is {dtype:?}, not a float"),
                )
            })?;
            out[k * cols..(k + 1) * cols].copy_from_slice(&v);
            present[k] = true;
        }
        dm.release(s, e - s);
        Ok((out, present))
    }
}

const INDEX: &str = "model.safetensors.index.json";

#[derive(Deserialize)]
struct IndexFile {
    weight_map: HashMap<String, String>,
}

fn read_index(dir: &Path) -> Result<Option<HashMap<String, String>>> {
    let path = dir.join(INDEX);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let index: IndexFile =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("bad safetensors index: {e}")))?;
    Ok(Some(index.weight_map))
}

/// The weight files of a checkpoint directory: the shards named by the index (each must
/// exist), else `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if let Some(map) = read_index(dir)? {
        let shards: BTreeSet<&String> = map.values().collect();
        let mut out = Vec::new();
        for shard in shards {
            let p = dir.join(shard);
            if !p.is_file() {
                return Err(Error::format(
                    &dir.join(INDEX),
                    format!("shard `{shard}` is listed in the index but {} does not exist", p.display()),
                ));
            }
            out.push(p);
        }
        if out.is_empty() {
            return Err(Error::format(&dir.join(INDEX), "the index lists no shard"));
        }
        return Ok(out);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::format(dir, format!("no model.safetensors and no {INDEX} in the checkpoint directory")))
}
