//! CubeCL kernels for Bit-Axon, registered as Burn custom ops. Every kernel has a plain-tensor
//! reference in the crate that uses it, and tests that the two agree.

#[cfg(feature = "cube")]
pub mod quant;
#[cfg(feature = "cube")]
pub mod scan;
