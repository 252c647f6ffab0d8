//! What the kernel tests share: the device under test and the comparison.
#![allow(dead_code)]

use burn::prelude::*;

/// The CubeCL device the kernels run on: wgpu (Mesa lavapipe in CI), or CUDA device 0 with the
/// `cuda` feature and `BIT_AXON_TEST_DEVICE=cuda` (or when `wgpu` is not compiled in). Run them on
/// CUDA too: its allocator pads unaligned rows, which lavapipe never does (`empty_dense`).
pub fn gpu() -> Device {
    #[cfg(feature = "cuda")]
    if cfg!(not(feature = "wgpu")) || std::env::var("BIT_AXON_TEST_DEVICE").is_ok_and(|v| v == "cuda") {
        return Device::cuda(0);
    }
    #[cfg(feature = "wgpu")]
    return Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    #[allow(unreachable_code)]
    {
        unreachable!("no GPU feature")
    }
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
}

/// Asserts `max|got - want| ≤ rel · max(1, max|want|)`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length mismatch");
    let mut err = 0.0f32;
    for (g, w) in got.iter().zip(want) {
        let d = (g - w).abs();
        err = if d.is_nan() || err.is_nan() { f32::NAN } else { err.max(d) };
    }
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let bound = rel * scale.max(1.0);
    println!("{what}: max_abs_err={err:.3e} (max|ref|={scale:.3}, bound {bound:.1e})");
    assert!(err <= bound, "{what}: max_abs_err {err:e} exceeds {bound:e} (max|ref| {scale})");
}
