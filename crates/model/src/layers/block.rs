use burn::prelude::*;

use super::attention::{KvCache, SlidingWindowAttention, SlidingWindowAttentionConfig};
use super::moe::{SharedExpertMoe, SharedExpertMoeConfig};
use super::projection::Projection;
use super::rms_norm::{RmsNorm, RmsNormConfig};
use super::segments::Segments;
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
        self.forward_docs(x, state, None)
    }

    /// [`Block::forward`] over packed rows whose documents must not see each other.
    pub fn forward_docs(
        &self,
        x: Tensor<3>,
        state: Option<LayerState>,
        docs: Option<&Segments>,
    ) -> (Tensor<3>, LayerState) {
        let normed = self.input_norm.forward(x.clone());
        let (mixed, state) = match (&self.ssm, &self.attention) {
            (Some(ssm), _) => {
                let prev = match state {
                    Some(LayerState::Ssm(s)) => Some(s),
                    None => None,
                    Some(LayerState::Attention(_)) => panic!("attention cache passed to an SSM layer"),
                };
                let (y, s) = ssm.forward_docs(normed, prev, docs);
                (y, LayerState::Ssm(s))
            }
            (None, Some(attn)) => {
                let prev = match state {
                    Some(LayerState::Attention(c)) => Some(c),
                    None => None,
                    Some(LayerState::Ssm(_)) => panic!("SSM state passed to an attention layer"),
                };
                let (y, c) = attn.forward_docs(normed, prev, docs);
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

    /// Appends this block's projections with their checkpoint prefixes.
    pub fn projections<'a>(&'a self, prefix: &str, out: &mut Vec<(String, &'a Projection)>) {
        let mut push = |name: &str, p: &'a Projection| out.push((format!("{prefix}.{name}"), p));
        if let Some(s) = &self.ssm {
            push("ssm.in_proj", &s.in_proj);
            push("ssm.x_proj", &s.x_proj);
            push("ssm.out_proj", &s.out_proj);
        }
        if let Some(a) = &self.attention {
            push("attention.q_proj", &a.q_proj);
            push("attention.k_proj", &a.k_proj);
            push("attention.v_proj", &a.v_proj);
            push("attention.o_proj", &a.o_proj);
        }
        if let Some(m) = &self.moe {
            push("moe.gate", &m.gate);
            push("moe.shared_expert.gate_proj", &m.shared_expert.gate_proj);
            push("moe.shared_expert.up_proj", &m.shared_expert.up_proj);
            push("moe.shared_expert.down_proj", &m.shared_expert.down_proj);
            push("moe.shared_expert_gate", &m.shared_expert_gate);
        }
    }

    /// Mutable form of [`Block::projections`].
    pub fn visit_projections_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Projection)) {
        let mut go = |name: &str, p: &mut Projection| f(&format!("{prefix}.{name}"), p);
        if let Some(s) = &mut self.ssm {
            go("ssm.in_proj", &mut s.in_proj);
            go("ssm.x_proj", &mut s.x_proj);
            go("ssm.out_proj", &mut s.out_proj);
        }
        if let Some(a) = &mut self.attention {
            go("attention.q_proj", &mut a.q_proj);
            go("attention.k_proj", &mut a.k_proj);
            go("attention.v_proj", &mut a.v_proj);
            go("attention.o_proj", &mut a.o_proj);
        }
        if let Some(m) = &mut self.moe {
            go("moe.gate", &mut m.gate);
            go("moe.shared_expert.gate_proj", &mut m.shared_expert.gate_proj);
            go("moe.shared_expert.up_proj", &mut m.shared_expert.up_proj);
            go("moe.shared_expert.down_proj", &mut m.shared_expert.down_proj);
            go("moe.shared_expert_gate", &mut m.shared_expert_gate);
        }
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
