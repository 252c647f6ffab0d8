//! Shared helpers for the oracle tests: fixture paths, reading tensors, comparing with a tolerance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bit_axon::checkpoint::TensorFiles;
use burn::prelude::*;

/// `tests/fixtures` at the workspace root (small oracles committed to the repo).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// `$BIT_AXON_SHARED/fixtures` when the large shared fixtures are available (opt-in).
pub fn shared_fixtures() -> Option<PathBuf> {
    let root = std::env::var_os("BIT_AXON_SHARED")?;
    let p = PathBuf::from(root).join("fixtures");
    assert!(p.is_dir(), "BIT_AXON_SHARED is set but {} does not exist", p.display());
    Some(p)
}

pub fn device() -> Device {
    Device::flex()
}

/// An oracle file: its tensors and the JSON in its `info` metadata.
pub struct Oracle {
    pub files: TensorFiles,
    pub info: serde_json::Value,
}

impl Oracle {
    pub fn open(path: &Path) -> Self {
        let files = TensorFiles::open(path, &[path.to_path_buf()]).expect("open oracle");
        let raw = std::fs::read(path).unwrap();
        let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
        let info = header["__metadata__"]["info"]
            .as_str()
            .map(|s| serde_json::from_str(s).unwrap())
            .unwrap_or(serde_json::Value::Null);
        Self { files, info }
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.files.shape(name).unwrap_or_else(|| panic!("oracle has no `{name}`")).to_vec()
    }

    pub fn vec(&self, name: &str) -> Vec<f32> {
        self.files.read_f32(name, &self.shape(name)).unwrap()
    }

    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let shape: [usize; D] = self.shape(name).try_into().expect("rank");
        Tensor::from_data(TensorData::new(self.vec(name), shape), device)
    }

    pub fn ids(&self, name: &str, device: &Device) -> Tensor<2, Int> {
        let (v, shape) = self.files.read_i64(name).unwrap();
        Tensor::from_data(TensorData::new(v, [shape[0], shape[1]]), device)
    }
}

/// Max absolute error and the reference's max magnitude.
pub fn max_err(got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, |m, e| if e.is_nan() { f32::NAN } else { m.max(e) });
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (err, scale)
}

/// Asserts `max|got - want| ≤ rel · max(1, max|want|)` and prints the figures.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    let (err, scale) = max_err(got, want);
    let bound = rel * scale.max(1.0);
    println!("{what}: max_abs_err={err:.3e} (max|ref|={scale:.3}, bound {bound:.1e})");
    assert!(err <= bound, "{what}: max_abs_err {err:e} exceeds {bound:e} (max|ref| {scale})");
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

pub fn assert_tensor_close<const D: usize>(what: &str, got: Tensor<D>, want: &[f32], rel: f32) {
    assert_close(what, &to_vec(got), want, rel);
}
