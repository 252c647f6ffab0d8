use burn::module::Param;
use burn::prelude::*;

use crate::checkpoint::{Loader, Saver};
use crate::error;

/// Configuration of [`RmsNorm`].
#[derive(Config, Debug)]
pub struct RmsNormConfig {
    /// Width of the normalised (last) axis.
    pub dim: usize,
    /// Added to the mean square before the square root.
    #[config(default = 1e-6)]
    pub eps: f64,
}

/// Root-mean-square normalisation without centring or bias:
/// `y = x / sqrt(mean(x², -1) + eps) · weight`.
///
/// Shapes: `x [..., dim]` → `y [..., dim]`; `weight [dim]`, initialised to ones.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNormConfig {
    pub fn init(&self, device: &Device) -> RmsNorm {
        RmsNorm { weight: Param::from_tensor(Tensor::ones([self.dim], device)), eps: self.eps }
    }

    pub fn load(&self, ld: &Loader, prefix: &str) -> error::Result<RmsNorm> {
        Ok(RmsNorm { weight: ld.param(&format!("{prefix}.weight"), [self.dim])?, eps: self.eps })
    }
}

impl RmsNorm {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ms = x.clone().square().mean_dim(D - 1);
        let y = x * ms.add_scalar(self.eps).sqrt().recip();
        y * self.weight.val().unsqueeze::<D>()
    }

    pub fn save(&self, sv: &mut Saver, prefix: &str) {
        sv.param(format!("{prefix}.weight"), &self.weight);
    }
}
