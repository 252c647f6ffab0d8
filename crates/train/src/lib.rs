//! Fine-tuning Bit-Axon: SFT with LoRA / DoRA / QLoRA adapters, driven by burn-train.
//!
//! `cargo run --release -p train -- --config configs/sft.toml` runs [`run::run`]: the model
//! (a preset or a checkpoint, optionally frozen in 4 bits), adapters on the configured
//! projections, packed chat data with loss on assistant tokens, a step-counted loop on
//! burn-train's `Learner` ([`strategy`]), atomic checkpoints with exact resume, and the final
//! adapter in the PEFT layout.

pub mod adapters;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod hooks;
pub mod lm;
pub mod metrics;
pub mod objective;
pub mod orpo;
pub mod renderer;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod strategy;
pub mod sys;

pub use config::TrainConfig;
pub use run::{RunOptions, RunReport, run};
