//! LoRA and DoRA adapters beside a frozen projection weight (float or 4-bit).
//!
//! LoRA (Hu et al., 2021), with `A [in, r]`, `B [r, out]`, `s = alpha / r`:
//! ```text
//! y = x·Wᵀ + s · (dropout(x)·A)·B
//! ```
//! DoRA (Liu et al., 2024) adds a trainable magnitude `m [out]` (initialised to the row norms of
//! `W`) and renormalises each output row of the adapted weight `V = W + s·(A·B)ᵀ`:
//! ```text
//! y_o = m_o / ‖V_o‖ · (x·W_oᵀ + s·(dropout(x)·A)·B_o)
//! ‖V_o‖² = ‖W_o‖² + 2s·(W·A)_o·B_o + s²·B_oᵀ(AᵀA)B_o
//! ```
//! The norm is exact and differentiable in `A`, `B` (the reference drops the factor 2 on the
//! cross term and stops the gradient through `W·A`, so its forward disagrees with its own fused
//! weight; see `upstream-catalogue.md` §4 B9). It is computed without materialising `V`:
//! `(W·A)ᵀ` is the projection applied to the `r` rows of `Aᵀ`, so a 4-bit base works unchanged.
//!
//! `fused_weight` returns the dense `W' [out, in]` a merged model uses; the forward above equals
//! `x·W'ᵀ` (up to rounding) for LoRA and DoRA alike.

use burn::module::{Param, ParamId};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::prelude::*;
use burn::tensor::module::linear;

use super::projection::ProjectionWeight;

/// Which adapter to attach.
#[derive(Config, Debug, PartialEq)]
pub struct AdapterConfig {
    /// Rank `r` of the update.
    #[config(default = 8)]
    pub rank: usize,
    /// `alpha`; the update is scaled by `alpha / rank` (PEFT convention). The reference uses a
    /// fixed scale of 20, i.e. `alpha = 20 · rank`.
    #[config(default = 16.0)]
    pub alpha: f64,
    /// Dropout on the adapter's input (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// DoRA (weight-decomposed) instead of plain LoRA.
    #[config(default = false)]
    pub dora: bool,
}

impl AdapterConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// A fresh adapter for `weight`: `A ~ U(±1/√in)`, `B = 0` (so the model starts unchanged),
    /// `m = ‖W_o‖` for DoRA. `id_seed` makes the parameter ids deterministic (optimizer state
    /// is keyed by them, so a resumed run must rebuild the same ids).
    pub fn init(&self, weight: &ProjectionWeight, id_seed: u64, device: &Device) -> Adapter {
        let [d_in, d_out] = weight.dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Initializer::Uniform { min: -bound, max: bound }.init::<2, _>([d_in, self.rank], device).val();
        let b = Tensor::zeros([self.rank, d_out], device);
        let norms = self.dora.then(|| row_sq_norms(weight));
        let magnitude = norms.as_ref().map(|sq| sq.clone().sqrt());
        Adapter::from_tensors(a, b, magnitude, self.scale(), self.dropout, weight, id_seed)
    }
}

/// Trainable low-rank update of one projection (see the module docs for the formulas).
#[derive(Module, Debug)]
pub struct Adapter {
    /// `A [in, r]`.
    pub lora_a: Param<Tensor<2>>,
    /// `B [r, out]`.
    pub lora_b: Param<Tensor<2>>,
    /// DoRA magnitude `m [out]`; `None` for LoRA.
    pub magnitude: Option<Param<Tensor<1>>>,
    /// `‖W_o‖²` of the frozen weight (DoRA only), computed once.
    pub weight_sq_norm: Option<Tensor<1>>,
    pub dropout: Dropout,
    /// `alpha / r`.
    pub scale: f64,
    pub rank: usize,
}

fn trainable<const D: usize>(id: u64, t: Tensor<D>) -> Param<Tensor<D>> {
    Param::initialized(ParamId::from(id), t).set_require_grad(true)
}

/// `‖W_o‖²` for every output row, in f32.
pub fn row_sq_norms(weight: &ProjectionWeight) -> Tensor<1> {
    let w = weight.dense();
    let out = w.dims()[0];
    w.powi_scalar(2).sum_dim(1).reshape([out])
}

impl Adapter {
    /// Builds an adapter from given factors (loading a saved adapter, or tests).
    /// Parameter ids are derived from `id_seed`: `id_seed`, `+1`, `+2` for A, B and m.
    pub fn from_tensors(
        a: Tensor<2>,
        b: Tensor<2>,
        magnitude: Option<Tensor<1>>,
        scale: f64,
        dropout: f64,
        weight: &ProjectionWeight,
        id_seed: u64,
    ) -> Adapter {
        let rank = a.dims()[1];
        let weight_sq_norm = magnitude.as_ref().map(|_| row_sq_norms(weight));
        Adapter {
            lora_a: trainable(id_seed, a),
            lora_b: trainable(id_seed.wrapping_add(1), b),
            magnitude: magnitude.map(|m| trainable(id_seed.wrapping_add(2), m)),
            weight_sq_norm,
            dropout: DropoutConfig::new(dropout).init(),
            scale,
            rank,
        }
    }

    pub fn is_dora(&self) -> bool {
        self.magnitude.is_some()
    }

    /// `x [.., in]` → `[.., out]` through `weight` plus this adapter.
    pub fn forward<const D: usize>(&self, weight: &ProjectionWeight, x: Tensor<D>) -> Tensor<D> {
        let base = weight.forward(x.clone());
        let delta = linear(linear(self.dropout.forward(x), self.lora_a.val(), None), self.lora_b.val(), None);
        let y = base + delta.mul_scalar(self.scale);
        match &self.magnitude {
            None => y,
            Some(m) => {
                let out = m.dims()[0];
                let factor = m.val() / self.adapted_norm(weight);
                let mut shape = [1usize; D];
                shape[D - 1] = out;
                y * factor.reshape(shape)
            }
        }
    }

    /// `‖W_o + s·(A·B)_{·o}‖` for every output row `o`, `[out]`, differentiable in `A` and `B`.
    pub fn adapted_norm(&self, weight: &ProjectionWeight) -> Tensor<1> {
        let (a, b) = (self.lora_a.val(), self.lora_b.val());
        let out = b.dims()[1];
        let s = self.scale;
        // (W·A)ᵀ = projection of the rows of Aᵀ: [r, out].
        let wa_t = weight.forward(a.clone().transpose());
        let cross = (wa_t * b.clone()).sum_dim(0).reshape([out]);
        let gram = a.clone().transpose().matmul(a);
        let delta_sq = (gram.matmul(b.clone()) * b).sum_dim(0).reshape([out]);
        let w_sq = match &self.weight_sq_norm {
            Some(n) => n.clone(),
            None => row_sq_norms(weight),
        };
        (w_sq + cross.mul_scalar(2.0 * s) + delta_sq.mul_scalar(s * s)).clamp_min(1e-12).sqrt()
    }

    /// The merged weight `W' [out, in]`: `W + s·(A·B)ᵀ`, rescaled row-wise to `m` for DoRA.
    pub fn fused_weight(&self, weight: &ProjectionWeight) -> Tensor<2> {
        let delta = self.lora_a.val().matmul(self.lora_b.val()).transpose().mul_scalar(self.scale);
        let v = weight.dense() + delta.detach();
        match &self.magnitude {
            None => v,
            Some(m) => {
                let out = v.dims()[0];
                let norm = v.clone().powi_scalar(2).sum_dim(1).sqrt();
                v * (m.val().detach().reshape([out, 1]) / norm)
            }
        }
    }
}
