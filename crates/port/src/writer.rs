//! A safetensors writer that streams: each tensor's bytes are written as soon as the tensor is
//! produced, after room reserved for the header; [`StreamWriter::finish`] writes the header
//! (padded with spaces to the reserved size, which the format allows) at the start, fsyncs and
//! renames the temporary file into place. Memory holds one tensor at a time and the data is
//! written once. If the header outgrows the reservation the data is copied behind a new header.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bit_axon::checkpoint::OwnedTensor;
use safetensors::View;
use serde_json::{Value, json};

use crate::error::{Error, Result};

pub struct StreamWriter {
    path: PathBuf,
    tmp: PathBuf,
    data: BufWriter<File>,
    header: serde_json::Map<String, Value>,
    /// Bytes reserved for the header JSON (a multiple of 8).
    reserved: usize,
    offset: usize,
}

impl StreamWriter {
    /// Creates `path` (through a temporary file), reserving header room for about `expected_tensors`.
    pub fn create(path: &Path, expected_tensors: usize) -> Result<Self> {
        let tmp = path.with_extension("safetensors.tmp");
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let reserved = (4096 + 256 * expected_tensors).next_multiple_of(8);
        let mut data = BufWriter::with_capacity(1 << 20, file);
        data.write_all(&vec![b' '; 8 + reserved]).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self { path: path.to_path_buf(), tmp, data, header: Default::default(), reserved, offset: 0 })
    }

    /// Appends one tensor; names must be unique.
    pub fn push(&mut self, name: &str, t: &OwnedTensor) -> Result<()> {
        if self.header.contains_key(name) {
            return Err(Error::format(&self.path, format!("tensor `{name}` written twice")));
        }
        let data = t.data();
        self.data.write_all(&data).map_err(|e| Error::io(&self.tmp, e))?;
        let end = self.offset + data.len();
        self.header.insert(
            name.to_string(),
            json!({"dtype": format!("{:?}", t.dtype()), "shape": t.shape(), "data_offsets": [self.offset, end]}),
        );
        self.offset = end;
        Ok(())
    }

    /// Writes the header, syncs and moves the file into place.
    pub fn finish(self, metadata: BTreeMap<String, String>) -> Result<()> {
        let Self { path, tmp, data, mut header, reserved, .. } = self;
        let io = |e| Error::io(&tmp, e);
        let mut file = data.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        if !metadata.is_empty() {
            header.insert("__metadata__".into(), json!(metadata));
        }
        let mut text = serde_json::to_string(&Value::Object(header)).expect("header serialises");
        if text.len() <= reserved {
            text.extend(std::iter::repeat_n(' ', reserved - text.len()));
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&(reserved as u64).to_le_bytes()).map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
        } else {
            // Rare: copy the data behind a larger header.
            while !text.len().is_multiple_of(8) {
                text.push(' ');
            }
            let tmp2 = path.with_extension("safetensors.tmp2");
            let mut out = BufWriter::new(File::create(&tmp2).map_err(|e| Error::io(&tmp2, e))?);
            out.write_all(&(text.len() as u64).to_le_bytes()).map_err(|e| Error::io(&tmp2, e))?;
            out.write_all(text.as_bytes()).map_err(|e| Error::io(&tmp2, e))?;
            drop(file);
            let mut src = File::open(&tmp).map_err(io)?;
            src.seek(SeekFrom::Start(8 + reserved as u64)).map_err(io)?;
            std::io::copy(&mut src, &mut out).map_err(|e| Error::io(&tmp2, e))?;
            drop(src);
            std::fs::remove_file(&tmp).map_err(io)?;
            std::fs::rename(&tmp2, &tmp).map_err(io)?;
            file = out.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
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
        let mut w = StreamWriter::create(&path, 2).unwrap();
        w.push("a", &OwnedTensor::from_f32(&[1.0, 2.0, 3.0], vec![3], FloatDtype::F32)).unwrap();
        w.push("b", &OwnedTensor::from_f32(&[0.5, -1.0], vec![1, 2], FloatDtype::BF16)).unwrap();
        assert!(w.push("a", &OwnedTensor::from_f32(&[1.0], vec![1], FloatDtype::F32)).is_err());
        w.finish(BTreeMap::from([("format".to_string(), "mlx".to_string())])).unwrap();
        let f = TensorFiles::open(&path, std::slice::from_ref(&path)).unwrap();
        assert_eq!(f.read_f32("a", &[3]).unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(f.read_f32("b", &[1, 2]).unwrap(), vec![0.5, -1.0]);
        assert!(!dir.join("w.safetensors.tmp").exists());
        // A header larger than the reservation (0 tensors expected, 300 long names) still works.
        let path2 = dir.join("big.safetensors");
        let mut w = StreamWriter::create(&path2, 0).unwrap();
        for i in 0..300 {
            let t = OwnedTensor::from_f32(&[i as f32], vec![1], FloatDtype::F32);
            w.push(&format!("a_rather_long_tensor_name_to_overflow_the_reserved_header_{i:04}"), &t).unwrap();
        }
        w.finish(BTreeMap::new()).unwrap();
        let f = TensorFiles::open(&path2, std::slice::from_ref(&path2)).unwrap();
        assert_eq!(
            f.read_f32("a_rather_long_tensor_name_to_overflow_the_reserved_header_0299", &[1]).unwrap(),
            vec![299.0]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
