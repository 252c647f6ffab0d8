use burn::nn::{Initializer, LinearConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{sigmoid, silu, softmax};

use super::projection::{ExpertStack, Projection};
use crate::checkpoint::{Loader, Saver};
use crate::error;

/// Configuration of [`SharedExpertMoe`].
#[derive(Config, Debug)]
pub struct SharedExpertMoeConfig {
    /// Model width `H`.
    pub d_model: usize,
    /// Hidden width `I` of every expert.
    pub d_ff: usize,
    /// Routed experts `X`.
    pub num_experts: usize,
    /// Experts chosen per token `k`.
    pub top_k: usize,
}

/// A SwiGLU feed-forward: `down(silu(gate(x)) ⊙ up(x))`; `[.., H] → [.., H]`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
}

impl Mlp {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let g = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

/// Routed experts stored stacked, as in the checkpoint: `gate_proj`, `up_proj` `[X, I, H]` and
/// `down_proj` `[X, H, I]` (each matrix `(out, in)`).
#[derive(Module, Debug)]
pub struct SwitchGlu {
    pub gate_proj: ExpertStack,
    pub up_proj: ExpertStack,
    pub down_proj: ExpertStack,
}

impl SwitchGlu {
    /// Runs expert `e` on `rows [n, H]` → `[n, H]`.
    pub fn expert(&self, e: usize, rows: Tensor<2>) -> Tensor<2> {
        let g = silu(self.gate_proj.forward_expert(e, rows.clone()));
        self.down_proj.forward_expert(e, g * self.up_proj.forward_expert(e, rows))
    }
}

/// Mixture of experts with an always-on, sigmoid-gated shared expert (reference semantics):
///
/// ```text
/// p      = softmax(router(x))                  [T, X]
/// S      = top-k(p)  (scores not renormalised)
/// y      = Σ_{e∈S} p_e · SwiGLU_e(x) + sigmoid(shared_gate(x)) · SwiGLU_shared(x)
/// ```
/// Only the selected experts run: tokens are grouped per expert (ids read back once per call).
#[derive(Module, Debug)]
pub struct SharedExpertMoe {
    pub gate: Projection,
    pub switch_mlp: SwitchGlu,
    pub shared_expert: Mlp,
    pub shared_expert_gate: Projection,
    pub top_k: usize,
}

impl SharedExpertMoeConfig {
    pub fn init(&self, device: &Device) -> SharedExpertMoe {
        let (h, i, x) = (self.d_model, self.d_ff, self.num_experts);
        let lin = |a, b| Projection::float(LinearConfig::new(a, b).with_bias(false).init(device));
        let stack = |o: usize, fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Initializer::Uniform { min: -b, max: b }.init([x, o, fan_in], device)
        };
        SharedExpertMoe {
            gate: lin(h, x),
            switch_mlp: SwitchGlu {
                gate_proj: stack(i, h).into(),
                up_proj: stack(i, h).into(),
                down_proj: stack(h, i).into(),
            },
            shared_expert: Mlp { gate_proj: lin(h, i), up_proj: lin(h, i), down_proj: lin(i, h) },
            shared_expert_gate: lin(h, 1),
            top_k: self.top_k,
        }
    }

    /// Loads `gate`, `switch_mlp.*`, `shared_expert.*` and `shared_expert_gate` under `prefix`.
    pub fn load(&self, ld: &Loader, prefix: &str) -> error::Result<SharedExpertMoe> {
        let (h, i, x) = (self.d_model, self.d_ff, self.num_experts);
        let sw = |n: &str, o, inp| ld.experts(&format!("{prefix}.switch_mlp.{n}"), [x, o, inp]);
        let sh = |n: &str, inp, o| ld.projection(&format!("{prefix}.shared_expert.{n}"), inp, o);
        Ok(SharedExpertMoe {
            gate: ld.projection(&format!("{prefix}.gate"), h, x)?,
            switch_mlp: SwitchGlu {
                gate_proj: sw("gate_proj", i, h)?,
                up_proj: sw("up_proj", i, h)?,
                down_proj: sw("down_proj", h, i)?,
            },
            shared_expert: Mlp {
                gate_proj: sh("gate_proj", h, i)?,
                up_proj: sh("up_proj", h, i)?,
                down_proj: sh("down_proj", i, h)?,
            },
            shared_expert_gate: ld.projection(&format!("{prefix}.shared_expert_gate"), h, 1)?,
            top_k: self.top_k,
        })
    }
}

/// Which expert each (token, slot) went to, grouped by expert.
#[derive(Debug, Clone)]
pub struct Routing {
    /// `[T, X]` router probabilities.
    pub probs: Tensor<2>,
    /// `[T, k]` selected experts.
    pub indices: Tensor<2, Int>,
}

impl SharedExpertMoe {
    /// Router probabilities and the top-k experts of each token of `x [T, H]`.
    pub fn route(&self, x: Tensor<2>) -> Routing {
        let probs = softmax(self.gate.forward(x), 1);
        let (_, indices) = probs.clone().detach().topk_with_indices(self.top_k, 1);
        Routing { probs, indices }
    }

    /// `x [B, L, H]` → `[B, L, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [bsz, len, h] = x.dims();
        let t = bsz * len;
        let k = self.top_k;
        let xf = x.reshape([t, h]);
        let device = xf.device();
        let Routing { probs, indices } = self.route(xf.clone());
        let scores = probs.gather(1, indices.clone()).reshape([t * k]);
        let ids: Vec<i64> = indices.into_data().convert::<i64>().try_into_vec().expect("int data");
        let num_experts = self.switch_mlp.gate_proj.dims()[0];
        let mut slots: Vec<Vec<i64>> = vec![Vec::new(); num_experts];
        for (slot, &e) in ids.iter().enumerate() {
            slots[e as usize].push(slot as i64);
        }
        let mut y = sigmoid(self.shared_expert_gate.forward(xf.clone())) * self.shared_expert.forward(xf.clone());
        for (e, slot) in slots.into_iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            let tokens: Vec<i64> = slot.iter().map(|s| s / k as i64).collect();
            let n = slot.len();
            let slot = Tensor::<1, Int>::from_data(TensorData::new(slot, [n]), &device);
            let tokens = Tensor::<1, Int>::from_data(TensorData::new(tokens, [n]), &device);
            let out = self.switch_mlp.expert(e, xf.clone().select(0, tokens.clone()));
            let weighted = out * scores.clone().select(0, slot).unsqueeze_dim::<2>(1);
            y = y.select_assign(0, tokens, weighted, IndexingUpdateOp::Add);
        }
        y.reshape([bsz, len, h])
    }

    pub fn save(&self, sv: &mut Saver, prefix: &str) {
        sv.projection(&format!("{prefix}.gate"), &self.gate);
        for (name, p) in [
            ("gate_proj", &self.switch_mlp.gate_proj),
            ("up_proj", &self.switch_mlp.up_proj),
            ("down_proj", &self.switch_mlp.down_proj),
        ] {
            sv.experts(&format!("{prefix}.switch_mlp.{name}"), p);
        }
        sv.projection(&format!("{prefix}.shared_expert.gate_proj"), &self.shared_expert.gate_proj);
        sv.projection(&format!("{prefix}.shared_expert.up_proj"), &self.shared_expert.up_proj);
        sv.projection(&format!("{prefix}.shared_expert.down_proj"), &self.shared_expert.down_proj);
        sv.projection(&format!("{prefix}.shared_expert_gate"), &self.shared_expert_gate);
    }
}
