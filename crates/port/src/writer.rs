//! A safetensors writer that streams: each tensor's bytes go to a side file as soon as the
//! tensor is produced, and [`StreamWriter::finish`] writes the header followed by those bytes
//! into the final file (temporary name, fsync, rename). Memory holds one tensor at a time,
//! never the whole checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bit_axon::checkpoint::OwnedTensor;
use safetensors::View;
use serde_json::{Value, json};

use crate::error::{Error, Result};

pub struct StreamWriter {
    path: PathBuf,
    data_path: PathBuf,
    data: BufWriter<File>,
    header: serde_json::Map<String, Value>,
    offset: usize,
}

impl StreamWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let data_path = path.with_extension("safetensors.data.tmp");
        let file = File::create(&data_path).map_err(|e| Error::io(&data_path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            data_path,
            data: BufWriter::new(file),
            header: Default::default(),
            offset: 0,
        })
    }

    /// Appends one tensor; names must be unique.
    pub fn push(&mut self, name: &str, t: &OwnedTensor) -> Result<()> {
        if self.header.contains_key(name) {
            return Err(Error::format(&self.path, format!("tensor `{name}` written twice")));
        }
        let data = t.data();
        self.data.write_all(&data).map_err(|e| Error::io(&self.data_path, e))?;
        let end = self.offset + data.len();
        self.header.insert(
            name.to_string(),
            json!({"dtype": format!("{:?}", t.dtype()), "shape": t.shape(), "data_offsets": [self.offset, end]}),
        );
        self.offset = end;
        Ok(())
    }

    /// Writes the final file (header + data) and removes the side file.
    pub fn finish(mut self, metadata: BTreeMap<String, String>) -> Result<()> {
        self.data.flush().map_err(|e| Error::io(&self.data_path, e))?;
        drop(self.data);
        let mut header = self.header;
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), json!(metadata));
        }
        let mut text = serde_json::to_string(&Value::Object(header)).expect("header serialises");
        while text.len() % 8 != 0 {
            text.push(' ');
        }
        let tmp = self.path.with_extension("safetensors.tmp");
        let io = |e| Error::io(&tmp, e);
        let mut out = BufWriter::new(File::create(&tmp).map_err(io)?);
        out.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        let mut data = File::open(&self.data_path).map_err(|e| Error::io(&self.data_path, e))?;
        std::io::copy(&mut data, &mut out).map_err(io)?;
        let file = out.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::remove_file(&self.data_path).map_err(|e| Error::io(&self.data_path, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bit_axon::checkpoint::{FloatDtype, TensorFiles};

    #[test]
    fn streamed_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("bit-axon-port-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        let mut w = StreamWriter::create(&path).unwrap();
        w.push("a", &OwnedTensor::from_f32(&[1.0, 2.0, 3.0], vec![3], FloatDtype::F32)).unwrap();
        w.push("b", &OwnedTensor::from_f32(&[0.5, -1.0], vec![1, 2], FloatDtype::BF16)).unwrap();
        assert!(w.push("a", &OwnedTensor::from_f32(&[1.0], vec![1], FloatDtype::F32)).is_err());
        w.finish(BTreeMap::from([("format".to_string(), "mlx".to_string())])).unwrap();
        let f = TensorFiles::open(&path, std::slice::from_ref(&path)).unwrap();
        assert_eq!(f.read_f32("a", &[3]).unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(f.read_f32("b", &[1, 2]).unwrap(), vec![0.5, -1.0]);
        assert!(!dir.join("w.safetensors.data.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
