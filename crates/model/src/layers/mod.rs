//! The model's building blocks, each a Burn `Config` + `Module`.

pub mod adapter;
pub mod attention;
pub mod block;
pub mod moe;
pub mod projection;
pub mod rms_norm;
pub mod scan;
pub mod segments;
pub mod ssm;

pub use adapter::{Adapter, AdapterConfig, row_sq_norms};
pub use attention::{KV_MIN_CAPACITY, KvCache, SlidingWindowAttention, SlidingWindowAttentionConfig};
pub use block::{Block, BlockConfig, LayerState};
pub use moe::{Mlp, SharedExpertMoe, SharedExpertMoeConfig, SwitchGlu};
pub use projection::{ExpertStack, Projection, ProjectionWeight};
pub use rms_norm::{RmsNorm, RmsNormConfig};
pub use segments::Segments;
pub use ssm::{AxonSsm, AxonSsmConfig, SsmState};
