//! Bit-Axon, a hybrid small language model (selective SSM, sliding-window attention,
//! shared-expert mixture of experts), as Burn 0.22 modules.
//!
//! ```no_run
//! use burn::prelude::*;
//! use bit_axon::{BitAxonConfig, device::parse_device};
//!
//! let device = parse_device("flex").unwrap();
//! let cfg = BitAxonConfig::small();
//! let model = cfg.init(&device);
//! let ids = Tensor::<2, Int>::from_data([[1, 42, 100, 200, 500]], &device);
//! let logits = model.forward(ids); // [1, 5, 1024]
//! ```

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod layers;
pub mod model;
pub mod params;
pub mod quantize;

pub use cache::ModelCache;
pub use config::{BitAxonConfig, LayerKind};
pub use error::{Error, Result};
pub use model::{BitAxonModel, HiddenStates, LoadReport, SaveOptions};
pub use params::{ParamCounts, TensorRole, TensorSpec};
