//! Model weights are initialised on the device they live on, by the device's random kernels. The
//! `medium` preset on CUDA trained with gradient norms ~1e4 times flex's (experiments/train-bench),
//! and small presets agree, so the distributions of large random tensors on a CubeCL device are
//! checked here: the uniform and normal initialisers at a `medium`-sized weight (6.3M values).
#![cfg(feature = "wgpu")]

use burn::prelude::*;
use burn::tensor::Distribution;

fn stats(t: Tensor<2>) -> (f64, f64, f64, f64) {
    let v = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data");
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x as f64), b.max(x as f64)));
    (mean, var.sqrt(), lo, hi)
}

#[test]
fn large_random_tensors_have_the_requested_distribution() {
    let dev = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    dev.seed(7);
    let shape = [3072, 2048];
    let b = 0.0221; // 1/sqrt(2048): a projection's uniform bound
    let (mean, std, lo, hi) = stats(Tensor::<2>::random(shape, Distribution::Uniform(-b, b), &dev));
    assert!(lo >= -b && hi <= b, "uniform(±{b}): values in [{lo}, {hi}]");
    assert!(mean.abs() < 1e-4, "uniform(±{b}): mean {mean}");
    let want = b / 3f64.sqrt();
    assert!((std / want - 1.0).abs() < 1e-2, "uniform(±{b}): std {std}, expected {want}");
    let (mean, std, _, _) = stats(Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.02), &dev));
    assert!(mean.abs() < 1e-4, "normal(0, 0.02): mean {mean}");
    assert!((std / 0.02 - 1.0).abs() < 1e-2, "normal(0, 0.02): std {std}");
    // Two draws differ (the generator advances).
    let a = Tensor::<2>::random([64, 64], Distribution::Default, &dev);
    let c = Tensor::<2>::random([64, 64], Distribution::Default, &dev);
    let d = (a - c).abs().max().into_scalar::<f32>();
    assert!(d > 0.1, "two draws are equal (max diff {d})");
}
