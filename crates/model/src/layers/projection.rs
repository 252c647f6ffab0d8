use bit_axon_quant::{QuantExperts, QuantLinear, QuantizedWeight};
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

/// A bias-free projection `x·Wᵀ` (`[.., in]` → `[.., out]`) whose weight is either a trainable
/// float [`Linear`] or a frozen 4-bit [`QuantLinear`] (NF4 or affine int4; the model does not
/// see the format). The float branch is exactly `Linear::forward`.
#[derive(Module, Debug)]
pub enum Projection {
    Float(Linear),
    Quant(QuantLinear),
}

impl Projection {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Projection::Float(l) => l.forward(x),
            Projection::Quant(q) => q.forward(x),
        }
    }

    /// The float layer, if this projection is not quantized.
    pub fn as_float(&self) -> Option<&Linear> {
        match self {
            Projection::Float(l) => Some(l),
            Projection::Quant(_) => None,
        }
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self, Projection::Quant(_))
    }
}

impl From<Linear> for Projection {
    fn from(l: Linear) -> Self {
        Projection::Float(l)
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
