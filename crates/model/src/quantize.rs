//! Freezing a float model's large matrices in 4 bits: the one rule `bit-axon quantize`, the
//! benchmark and QLoRA's frozen base all use.
//!
//! Stored in 4 bits: every dense projection ([`TensorRole::Linear`]: SSM in/x/out, attention
//! q/k/v/o, shared expert, input/output bridges), the routed-expert stacks, and the LM head (a
//! tied head becomes its own quantized `lm_head`, as the reference does, while the embedding
//! stays float), when the input width is a multiple of the group size. Kept float: the embedding,
//! the MoE router and the shared-expert gate (routing is sensitive to them), norms, the SSM conv,
//! `dt_proj`, `A_log` and `D`.

use std::collections::HashSet;

use bit_axon_quant::{QuantExperts, QuantFormat, QuantLinear, QuantMatrix};
use burn::prelude::*;

use crate::layers::{ExpertStack, Projection};
use crate::params::{TensorRole, TensorSpec, model_tensors};
use crate::{BitAxonConfig, BitAxonModel, Error, Result};

/// Whether [`BitAxonModel::quantize_weights`] stores `t` in 4 bits with groups of `group_size`.
pub fn is_quantized(t: &TensorSpec, group_size: usize) -> bool {
    matches!(t.role, TensorRole::Linear | TensorRole::RoutedExperts | TensorRole::LmHead)
        && t.shape.last().is_some_and(|&d| d % group_size == 0)
}

/// Every tensor of a 4-bit model of `cfg` (a tied head listed as its own `lm_head`), each with
/// whether it is stored in 4 bits.
pub fn quantized_layout(cfg: &BitAxonConfig, group_size: usize) -> Vec<(TensorSpec, bool)> {
    let mut all = model_tensors(cfg);
    if cfg.weight_tying {
        let e = &all[0];
        all.push(TensorSpec { name: "lm_head.weight".into(), shape: e.shape.clone(), role: TensorRole::LmHead });
    }
    all.into_iter()
        .map(|t| {
            let q = is_quantized(&t, group_size);
            (t, q)
        })
        .collect()
}

impl BitAxonModel {
    /// Replaces the float matrices [`is_quantized`] selects by frozen 4-bit ones (adapters on
    /// them are kept, so this also builds a QLoRA base). Matrices already in 4 bits are left as
    /// they are. The weights are read back to the host and quantized there.
    pub fn quantize_weights(mut self, cfg: &BitAxonConfig, format: QuantFormat, group_size: usize) -> Result<Self> {
        if group_size == 0 || group_size % 8 != 0 {
            return Err(Error::Input(format!("group size {group_size}: must be a positive multiple of 8")));
        }
        let names: HashSet<String> =
            quantized_layout(cfg, group_size).into_iter().filter(|(_, q)| *q).map(|(t, _)| t.name).collect();
        let device = self.embed_tokens.weight.val().device();
        let mut err = None;
        self.visit_projections_mut(&mut |path, p| {
            let Some(l) = p.as_float() else { return };
            if err.is_some() || !names.contains(&format!("{path}.weight")) {
                return;
            }
            // Burn keeps `[in, out]`; the checkpoint and the quantizer use `(out, in)`.
            match quantize(path, l.weight.val().transpose(), format, group_size) {
                Ok(m) => p.weight = Projection::quant(QuantLinear::from_matrix(&m, &device)).weight,
                Err(e) => err = Some(e),
            }
        });
        self.visit_expert_stacks_mut(&mut |path, s| {
            let ExpertStack::Float(w) = s else { return };
            if err.is_some() || !names.contains(&format!("{path}.weight")) {
                return;
            }
            match quantize(path, w.val(), format, group_size) {
                Ok(m) => *s = ExpertStack::Quant(QuantExperts::from_matrix(&m, &device)),
                Err(e) => err = Some(e),
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if self.lm_head.is_none() && names.contains("lm_head.weight") {
            let m = quantize("lm_head", self.embed_tokens.weight.val(), format, group_size)?;
            self.lm_head = Some(Projection::quant(QuantLinear::from_matrix(&m, &device)));
        }
        Ok(self)
    }
}

fn quantize<const D: usize>(name: &str, w: Tensor<D>, format: QuantFormat, group_size: usize) -> Result<QuantMatrix> {
    let shape = w.dims().to_vec();
    let values: Vec<f32> = w
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Input(format!("{name}: reading weights back: {e:?}")))?;
    QuantMatrix::quantize(name, format, &values, &shape, group_size).map_err(|e| Error::Input(format!("{name}: {e}")))
}
