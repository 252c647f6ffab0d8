//! 4-bit weights for Bit-Axon.
//!
//! Two formats share one packed layout (8 four-bit codes per `u32`, element `j` of a word in bits
//! `4j..4j+3`, LSB first — MLX's layout) and one dequantization rule per group of `gs`
//! consecutive input columns:
//!
//! ```text
//! w = lut[q] · scale + bias
//! affine4 (MLX):  lut[q] = q,              scale/bias per group (scale may be negative)
//! nf4 (QLoRA):    lut[q] = NF4 codebook,   scale = absmax of the block, bias = 0
//! ```
//! - [`affine`]: MLX's affine int4 quantize rule, bit-exact (`mx.quantize(w, gs, bits=4)`).
//! - [`nf4`]: the NormalFloat-4 codebook, block absmax quantization and double quantization.
//! - [`pack`]: nibble packing.
//! - [`QuantMatrix`]: a host-side quantized matrix (or stack of matrices) in either format.
//! - [`QuantLinear`], [`QuantExperts`]: frozen Burn modules; the model calls them through
//!   [`QuantizedWeight`] and never sees the format.

pub mod affine;
pub mod error;
pub mod matrix;
pub mod module;
pub mod nf4;
pub mod pack;

pub use error::{QuantError, Result};
pub use matrix::{QuantFormat, QuantMatrix};
pub use module::{QuantExperts, QuantLinear, QuantizedWeight};
