//! Porting Hugging Face Qwen2 / Qwen2.5 checkpoints to Bit-Axon.
//!
//! - [`hf`]: reads `config.json` and one or many `*.safetensors` (with
//!   `model.safetensors.index.json`), memory-mapped, one tensor (or a few rows) at a time.
//! - [`vocab`]: chooses the kept vocabulary (first-N or by corpus frequency), always keeping the
//!   byte alphabet, the parts of every kept merge and the chat special tokens.
//! - [`tokenizer`]: writes the truncated, renumbered `tokenizer.json` (a working BPE tokenizer).
//! - [`transforms`]: the reference's weight transforms, one small function each.
//! - [`pipeline`]: builds the target checkpoint block by block and streams it to disk, with a
//!   [`report`] of what was ported, transformed or initialised.

pub mod error;
pub mod hf;
pub mod pipeline;
pub mod report;
pub mod rng;
pub mod tokenizer;
pub mod transforms;
pub mod vocab;
pub mod writer;

pub use error::{Error, Result};
pub use pipeline::{PortOptions, VocabSource, port};
