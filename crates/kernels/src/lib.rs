//! CubeCL kernels for Bit-Axon, registered as Burn custom ops. Every kernel has a plain-tensor
//! reference in the crate that uses it, and tests that the two agree.

#[cfg(feature = "cube")]
pub mod quant;
#[cfg(feature = "cube")]
pub mod scan;

/// An uninitialised, densely packed (row-major, no padding) tensor on `like`'s device: every kernel
/// here indexes its outputs as dense arrays. Burn's `empty_device_dtype` asks the runtime for its
/// "optimized" layout, which on CUDA pads rows whose width is not aligned (e.g. 13 or 24 floats) and
/// returns the padded strides; a kernel writing densely into it produced wrong values on CUDA
/// only (lavapipe does not pad), which is what broke the medium-preset training on the H200.
#[cfg(feature = "cube")]
pub(crate) fn empty_dense(
    like: &burn_cubecl::tensor::CubeTensor,
    shape: burn::tensor::Shape,
    dtype: burn::tensor::DType,
) -> burn_cubecl::tensor::CubeTensor {
    burn_cubecl::ops::numeric::empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// The plane size when the device has plane operations and a fixed plane size (what the plane
/// reductions of `quant_gemv_stream` and `scan_fused`'s plane sums assume), else `None`.
#[cfg(feature = "cube")]
pub(crate) fn fixed_plane(client: &cubecl::client::Client) -> Option<usize> {
    let props = client.properties();
    let hw = &props.hardware;
    let ops = props.features.plane.contains(cubecl::ir::features::Plane::Ops);
    (ops && hw.plane_size_min == hw.plane_size_max && hw.plane_size_min > 0).then_some(hw.plane_size_min as usize)
}

/// Debugging aid: `BIT_AXON_PLAIN=scan,quant` (a comma-separated list) makes the model take the
/// plain-tensor path for the named kernels on a CubeCL device too, so a wrong result on a GPU can
/// be traced to a kernel or cleared of it. Read once per process.
pub fn plain_forced(kernel: &str) -> bool {
    static PLAIN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PLAIN
        .get_or_init(|| {
            std::env::var("BIT_AXON_PLAIN")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|k| k == kernel)
}
