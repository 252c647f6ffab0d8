use burn::prelude::*;

use super::attention::{KvCache, SlidingWindowAttention, SlidingWindowAttentionConfig};
use super::moe::{SharedExpertMoe, SharedExpertMoeConfig};
use super::rms_norm::{RmsNorm, RmsNormConfig};
use super::ssm::{AxonSsm, AxonSsmConfig, SsmState};
use crate::checkpoint::{Loader, Saver};
use crate::config::{BitAxonConfig, LayerKind};
use crate::error;

/// Per-layer decoding state: recurrent for SSM layers, windowed keys/values for attention.
#[derive(Debug, Clone)]
pub enum LayerState {
    Ssm(SsmState),
    Attention(KvCache),
}

/// One block of the sandwich. Pre-norm residual structure:
///
/// ```text
/// ssm:      x + SSM(norm_in(x))
/// swa_moe:  h = x + SWA(norm_in(x));  h + MoE(norm_post(h))
/// ssm_moe:  h = x + SSM(norm_in(x));  h + MoE(norm_post(h))
/// ```
/// Shapes: `[B, L, H]` → `[B, L, H]`.
#[derive(Module, Debug)]
pub struct Block {
    pub input_norm: RmsNorm,
    pub ssm: Option<AxonSsm>,
    pub attention: Option<SlidingWindowAttention>,
    pub post_norm: Option<RmsNorm>,
    pub moe: Option<SharedExpertMoe>,
}

/// Sub-module configurations of block `i`, derived from the model config.
pub struct BlockConfig {
    pub kind: LayerKind,
    norm: RmsNormConfig,
    ssm: AxonSsmConfig,
    attention: SlidingWindowAttentionConfig,
    moe: SharedExpertMoeConfig,
}

impl BlockConfig {
    pub fn new(cfg: &BitAxonConfig, i: usize) -> Self {
        let h = cfg.hidden_dim;
        Self {
            kind: cfg.layer_kind(i),
            norm: RmsNormConfig::new(h).with_eps(cfg.rms_norm_eps),
            ssm: AxonSsmConfig::new(h, cfg.ssm_intermediate_dim(), cfg.ssm_d_state, cfg.ssm_d_conv)
                .with_scan_chunk(cfg.ssm_scan_step),
            attention: SlidingWindowAttentionConfig::new(h, cfg.num_heads, cfg.swa_window_size),
            moe: SharedExpertMoeConfig::new(h, cfg.moe_intermediate_dim, cfg.moe_num_experts, cfg.moe_top_k),
        }
    }

    pub fn init(&self, device: &Device) -> Block {
        let kind = self.kind;
        Block {
            input_norm: self.norm.init(device),
            ssm: kind.has_ssm().then(|| self.ssm.init(device)),
            attention: (!kind.has_ssm()).then(|| self.attention.init(device)),
            post_norm: kind.has_moe().then(|| self.norm.init(device)),
            moe: kind.has_moe().then(|| self.moe.init(device)),
        }
    }

    /// Loads block tensors under `prefix` (`layer_{i}`), with the reference's key names.
    pub fn load(&self, ld: &Loader, prefix: &str) -> error::Result<Block> {
        let kind = self.kind;
        Ok(Block {
            input_norm: self.norm.load(ld, &format!("{prefix}.input_norm"))?,
            ssm: if kind.has_ssm() { Some(self.ssm.load(ld, &format!("{prefix}.ssm"))?) } else { None },
            attention: if kind.has_ssm() {
                None
            } else {
                Some(self.attention.load(ld, &format!("{prefix}.attention"))?)
            },
            post_norm: if kind.has_moe() {
                Some(self.norm.load(ld, &format!("{prefix}.{}", post_norm_name(kind)))?)
            } else {
                None
            },
            moe: if kind.has_moe() { Some(self.moe.load(ld, &format!("{prefix}.moe"))?) } else { None },
        })
    }
}

fn post_norm_name(kind: LayerKind) -> &'static str {
    if kind == LayerKind::SwaMoe { "post_attention_norm" } else { "post_ssm_norm" }
}

impl Block {
    pub fn kind(&self) -> LayerKind {
        match (self.ssm.is_some(), self.moe.is_some()) {
            (true, false) => LayerKind::Ssm,
            (false, _) => LayerKind::SwaMoe,
            (true, true) => LayerKind::SsmMoe,
        }
    }

    /// `x [B, L, H]` with the state left by earlier tokens → output and new state.
    pub fn forward(&self, x: Tensor<3>, state: Option<LayerState>) -> (Tensor<3>, LayerState) {
        let normed = self.input_norm.forward(x.clone());
        let (mixed, state) = match (&self.ssm, &self.attention) {
            (Some(ssm), _) => {
                let prev = match state {
                    Some(LayerState::Ssm(s)) => Some(s),
                    None => None,
                    Some(LayerState::Attention(_)) => panic!("attention cache passed to an SSM layer"),
                };
                let (y, s) = ssm.forward(normed, prev);
                (y, LayerState::Ssm(s))
            }
            (None, Some(attn)) => {
                let prev = match state {
                    Some(LayerState::Attention(c)) => Some(c),
                    None => None,
                    Some(LayerState::Ssm(_)) => panic!("SSM state passed to an attention layer"),
                };
                let (y, c) = attn.forward(normed, prev);
                (y, LayerState::Attention(c))
            }
            (None, None) => unreachable!("every block has a mixer"),
        };
        let h = x + mixed;
        let out = match (&self.post_norm, &self.moe) {
            (Some(norm), Some(moe)) => h.clone() + moe.forward(norm.forward(h)),
            _ => h,
        };
        (out, state)
    }

    pub fn save(&self, sv: &mut Saver, prefix: &str) {
        self.input_norm.save(sv, &format!("{prefix}.input_norm"));
        if let Some(ssm) = &self.ssm {
            ssm.save(sv, &format!("{prefix}.ssm"));
        }
        if let Some(attn) = &self.attention {
            attn.save(sv, &format!("{prefix}.attention"));
        }
        if let Some(norm) = &self.post_norm {
            norm.save(sv, &format!("{prefix}.{}", post_norm_name(self.kind())));
        }
        if let Some(moe) = &self.moe {
            moe.save(sv, &format!("{prefix}.moe"));
        }
    }
}
