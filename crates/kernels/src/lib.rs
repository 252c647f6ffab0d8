//! CubeCL kernels for Bit-Axon, registered as Burn custom ops. Every kernel has a plain-tensor
//! reference in the crate that uses it, and tests that the two agree.

#[cfg(feature = "cube")]
pub mod quant;
#[cfg(feature = "cube")]
pub mod scan;

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
