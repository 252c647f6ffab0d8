use bit_axon_quant::{QuantExperts, QuantLinear, QuantizedWeight};
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::adapter::Adapter;

/// The frozen-or-trainable weight of a [`Projection`]: a float [`Linear`] or a 4-bit
/// [`QuantLinear`] (NF4 or affine int4; the model does not see the format).
#[derive(Module, Debug)]
pub enum ProjectionWeight {
    Float(Linear),
    Quant(QuantLinear),
}

impl ProjectionWeight {
    /// `x·Wᵀ`, `[.., in]` → `[.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            ProjectionWeight::Float(l) => l.forward(x),
            ProjectionWeight::Quant(q) => q.forward(x),
        }
    }

    /// `[in, out]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            ProjectionWeight::Float(l) => l.weight.dims(),
            ProjectionWeight::Quant(q) => [q.d_in, q.d_out],
        }
    }

    /// `W [out, in]` in f32 (dequantized when 4-bit), detached from any graph.
    pub fn dense(&self) -> Tensor<2> {
        match self {
            ProjectionWeight::Float(l) => l.weight.val().detach().transpose(),
            ProjectionWeight::Quant(q) => q.dequantize(),
        }
    }
}

/// A bias-free projection `x·Wᵀ` (`[.., in]` → `[.., out]`), optionally with a trainable
/// LoRA/DoRA [`Adapter`] beside its weight. Without an adapter the float branch is exactly
/// `Linear::forward`.
#[derive(Module, Debug)]
pub struct Projection {
    pub weight: ProjectionWeight,
    pub adapter: Option<Adapter>,
}

impl Projection {
    pub fn float(l: Linear) -> Self {
        Self { weight: ProjectionWeight::Float(l), adapter: None }
    }

    pub fn quant(q: QuantLinear) -> Self {
        Self { weight: ProjectionWeight::Quant(q), adapter: None }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.adapter {
            None => self.weight.forward(x),
            Some(a) => a.forward(&self.weight, x),
        }
    }

    /// The float layer, if this projection is not quantized.
    pub fn as_float(&self) -> Option<&Linear> {
        match &self.weight {
            ProjectionWeight::Float(l) => Some(l),
            ProjectionWeight::Quant(_) => None,
        }
    }

    /// The 4-bit layer, if this projection is quantized.
    pub fn as_quant(&self) -> Option<&QuantLinear> {
        match &self.weight {
            ProjectionWeight::Quant(q) => Some(q),
            ProjectionWeight::Float(_) => None,
        }
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self.weight, ProjectionWeight::Quant(_))
    }

    /// `[in, out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.dims()
    }
}

impl From<Linear> for Projection {
    fn from(l: Linear) -> Self {
        Projection::float(l)
    }
}

impl From<QuantLinear> for Projection {
    fn from(q: QuantLinear) -> Self {
        Projection::quant(q)
    }
}

/// A stack of routed-expert matrices `[X, out, in]`, float (trainable) or frozen 4-bit.
#[derive(Module, Debug)]
pub enum ExpertStack {
    Float(Param<Tensor<3>>),
    Quant(QuantExperts),
}

impl ExpertStack {
    /// `[X, out, in]`.
    pub fn dims(&self) -> [usize; 3] {
        match self {
            ExpertStack::Float(p) => p.dims(),
            ExpertStack::Quant(q) => [q.num_experts(), q.d_out, q.d_in],
        }
    }

    /// `rows [n, in]` · `W_eᵀ` → `[n, out]`.
    pub fn forward_expert(&self, e: usize, rows: Tensor<2>) -> Tensor<2> {
        match self {
            ExpertStack::Float(p) => {
                let [_, o, i] = p.dims();
                rows.matmul(p.val().narrow(0, e, 1).reshape([o, i]).transpose())
            }
            ExpertStack::Quant(q) => q.expert(e).forward(rows),
        }
    }
}

impl From<Param<Tensor<3>>> for ExpertStack {
    fn from(p: Param<Tensor<3>>) -> Self {
        ExpertStack::Float(p)
    }
}
