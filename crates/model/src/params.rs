//! Every tensor of a Bit-Axon checkpoint, named and shaped from the config alone.
//!
//! This is the single source for parameter counts, memory estimates and checkpoint shape
//! checks, so none of them needs the model to be allocated (the default preset is 23 GB in f32).

use crate::config::{BitAxonConfig, LayerKind};

/// What a tensor is, which decides how it may be stored (quantized or not) and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// Token embedding `(V, Ds)`.
    Embedding,
    /// Untied LM head `(V, Ds)`.
    LmHead,
    /// A dense projection matrix `(out, in)`.
    Linear,
    /// A stack of routed-expert matrices `(experts, out, in)`.
    RoutedExperts,
    /// MoE router `(experts, H)`; kept in full precision because routing is sensitive to it.
    Router,
    /// Small vectors and SSM dynamics: norms, conv, `dt_proj`, `A_log`, `D`, the shared-expert gate.
    Small,
}

/// One named tensor in the reference checkpoint layout.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: TensorRole,
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

fn spec(name: String, shape: &[usize], role: TensorRole) -> TensorSpec {
    TensorSpec { name, shape: shape.to_vec(), role }
}

/// The tensors of one block, with the reference's key names under `layer_{i}.`.
pub fn layer_tensors(cfg: &BitAxonConfig, i: usize) -> Vec<TensorSpec> {
    use TensorRole::*;
    let (h, e, n, k) = (cfg.hidden_dim, cfg.ssm_intermediate_dim(), cfg.ssm_d_state, cfg.ssm_d_conv);
    let (x, inter) = (cfg.moe_num_experts, cfg.moe_intermediate_dim);
    let p = format!("layer_{i}.");
    let kind = cfg.layer_kind(i);
    let mut out = vec![spec(format!("{p}input_norm.weight"), &[h], Small)];
    if kind.has_ssm() {
        let s = format!("{p}ssm.");
        out.extend([
            spec(format!("{s}in_proj.weight"), &[2 * e, h], Linear),
            spec(format!("{s}conv1d.weight"), &[e, k, 1], Small),
            spec(format!("{s}conv1d.bias"), &[e], Small),
            spec(format!("{s}x_proj.weight"), &[2 * n + 1, e], Linear),
            spec(format!("{s}dt_proj.weight"), &[e, 1], Small),
            spec(format!("{s}dt_proj.bias"), &[e], Small),
            spec(format!("{s}A_log"), &[e, n], Small),
            spec(format!("{s}D"), &[e], Small),
            spec(format!("{s}out_proj.weight"), &[h, e], Linear),
        ]);
    } else {
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            out.push(spec(format!("{p}attention.{proj}.weight"), &[h, h], Linear));
        }
    }
    match kind {
        LayerKind::Ssm => {}
        LayerKind::SwaMoe => out.push(spec(format!("{p}post_attention_norm.weight"), &[h], Small)),
        LayerKind::SsmMoe => out.push(spec(format!("{p}post_ssm_norm.weight"), &[h], Small)),
    }
    if kind.has_moe() {
        let m = format!("{p}moe.");
        out.extend([
            spec(format!("{m}gate.weight"), &[x, h], Router),
            spec(format!("{m}switch_mlp.gate_proj.weight"), &[x, inter, h], RoutedExperts),
            spec(format!("{m}switch_mlp.up_proj.weight"), &[x, inter, h], RoutedExperts),
            spec(format!("{m}switch_mlp.down_proj.weight"), &[x, h, inter], RoutedExperts),
            spec(format!("{m}shared_expert.gate_proj.weight"), &[inter, h], Linear),
            spec(format!("{m}shared_expert.up_proj.weight"), &[inter, h], Linear),
            spec(format!("{m}shared_expert.down_proj.weight"), &[h, inter], Linear),
            spec(format!("{m}shared_expert_gate.weight"), &[1, h], Small),
        ]);
    }
    out
}

/// Every unique tensor of the model. A tied LM head is not listed (it is the embedding);
/// the reference nevertheless writes a copy under `lm_head.weight`.
pub fn model_tensors(cfg: &BitAxonConfig) -> Vec<TensorSpec> {
    use TensorRole::*;
    let (v, ds, h) = (cfg.vocab_size, cfg.d_source_model, cfg.hidden_dim);
    let mut out = vec![
        spec("embed_tokens.weight".into(), &[v, ds], Embedding),
        spec("input_proj.weight".into(), &[h, ds], Linear),
    ];
    for i in 0..cfg.num_layers {
        out.extend(layer_tensors(cfg, i));
    }
    out.push(spec("output_proj.weight".into(), &[ds, h], Linear));
    if !cfg.weight_tying {
        out.push(spec("lm_head.weight".into(), &[v, ds], LmHead));
    }
    out
}

/// Parameter totals computed from the shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// Unique parameters (a tied head counted once).
    pub total: usize,
    /// Parameters touched by one token: everything except the routed experts it is not sent to.
    pub active_per_token: usize,
    /// Parameters in routed experts, all layers.
    pub routed_experts: usize,
}

impl BitAxonConfig {
    /// Total and per-token-active parameter counts, from the shapes alone.
    pub fn param_counts(&self) -> ParamCounts {
        let tensors = model_tensors(self);
        let total: usize = tensors.iter().map(TensorSpec::numel).sum();
        let routed: usize = tensors.iter().filter(|t| t.role == TensorRole::RoutedExperts).map(TensorSpec::numel).sum();
        let idle = routed / self.moe_num_experts * (self.moe_num_experts - self.moe_top_k);
        ParamCounts { total, active_per_token: total - idle, routed_experts: routed }
    }
}

/// Weight memory of a model in full and half precision, from the shapes (the 4-bit sizes come
/// from the quantization plan, which knows which tensors stay in 16-bit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightMemory {
    pub f32_bytes: f64,
    pub f16_bytes: f64,
}

impl BitAxonConfig {
    pub fn weight_memory(&self) -> WeightMemory {
        let total = self.param_counts().total as f64;
        WeightMemory { f32_bytes: total * 4.0, f16_bytes: total * 2.0 }
    }
}
