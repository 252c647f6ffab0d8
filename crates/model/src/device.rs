//! Choosing a Burn device from a name, for CLIs and tests.

use burn::prelude::*;

use crate::error::{Error, Result};

/// Device names this build understands.
pub fn available_devices() -> Vec<&'static str> {
    let mut v = vec!["flex"];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// `flex` (pure-Rust CPU), `wgpu` (Vulkan/Metal/WebGPU through CubeCL) or `cuda[:N]`.
/// A backend not compiled in gives an error naming the cargo feature that enables it.
pub fn parse_device(name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => {
            let i: usize = i.parse().map_err(|_| Error::Input(format!("bad device index in `{name}`")))?;
            (k, i)
        }
        None => (name, 0),
    };
    match kind {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(not_compiled(kind)),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(not_compiled(kind)),
        other => Err(Error::Input(format!(
            "unknown device `{other}` (index {index}); expected one of {:?}",
            available_devices()
        ))),
    }
}

fn not_compiled(kind: &str) -> Error {
    Error::Input(format!("device `{kind}` is not compiled into this build; rebuild with `--features {kind}`"))
}
