use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{silu, softplus};

use super::projection::Projection;
use super::scan::{ScanInput, selective_scan};
use super::segments::Segments;
use crate::checkpoint::{Loader, Saver};
use crate::error;

/// Configuration of [`AxonSsm`].
#[derive(Config, Debug)]
pub struct AxonSsmConfig {
    /// Residual width `H`.
    pub d_model: usize,
    /// Channels `E` (the reference uses `H · ssm_expand`).
    pub d_inner: usize,
    /// State size per channel `N`.
    pub d_state: usize,
    /// Causal convolution kernel `K`.
    pub d_conv: usize,
    /// Longest chunk of the parallel scan.
    #[config(default = 64)]
    pub scan_chunk: usize,
}

/// Recurrent state of one SSM layer between calls.
#[derive(Debug, Clone)]
pub struct SsmState {
    /// The last `K - 1` pre-convolution inputs `[B, K-1, E]` (`None` when `K = 1`).
    pub conv: Option<Tensor<3>>,
    /// The scan state `h [B, E, N]`.
    pub ssm: Tensor<3>,
}

/// Mamba-style selective state-space mixer (single B/C group, dt rank 1).
///
/// ```text
/// [x | z]  = in_proj(u)                      u [B, L, H] → x, z [B, L, E]
/// x        = silu(causal_depthwise_conv(x))  kernel K, cached K-1 inputs
/// [B|C|r]  = x_proj(x)                       B, C [B, L, N], r [B, L, 1]
/// dt       = clip(softplus(dt_proj(r)), 1e-4, 100)
/// h_t      = exp(dt_t·A)·h_{t-1} + dt_t·B_t·x_t,   A = -exp(A_log) [E, N]
/// y_t      = C_t·h_t + D·x_t
/// out      = out_proj(y ⊙ silu(z))               [B, L, H]
/// ```
#[derive(Module, Debug)]
pub struct AxonSsm {
    pub in_proj: Projection,
    /// Depthwise kernel `[E, K]` (`conv[e, k]` multiplies input `t - (K-1) + k`).
    pub conv_weight: Param<Tensor<2>>,
    pub conv_bias: Param<Tensor<1>>,
    pub x_proj: Projection,
    pub dt_proj: Linear,
    pub a_log: Param<Tensor<2>>,
    pub d: Param<Tensor<1>>,
    pub out_proj: Projection,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub scan_chunk: usize,
}

const DT_MIN: f64 = 1e-4;
const DT_MAX: f64 = 100.0;

impl AxonSsmConfig {
    /// Random initialisation: projections `U(±1/√fan_in)` and `A_log = log(1..N)`, `D = 1` as in
    /// the reference; the `dt_proj` bias follows Mamba (inverse softplus of `dt ~ logU(1e-3, 0.1)`)
    /// rather than the reference's `U(-1, 1)`, so training from scratch starts with sane steps.
    pub fn init(&self, device: &Device) -> AxonSsm {
        let (h, e, n, k) = (self.d_model, self.d_inner, self.d_state, self.d_conv);
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        let bound = 1.0 / (k as f64).sqrt();
        let conv_weight = Initializer::Uniform { min: -bound, max: bound }.init([e, k], device);
        let dt = Tensor::<1>::random([e], Distribution::Uniform((1e-3f64).ln(), (0.1f64).ln()), device).exp();
        // softplus⁻¹(dt) = dt + log(1 - exp(-dt))
        let dt_bias = dt.clone() + dt.neg().exp().neg().add_scalar(1.0).log();
        let mut dt_proj = LinearConfig::new(1, e).init(device);
        dt_proj.bias = Some(Param::from_tensor(dt_bias));
        let a_log = Tensor::<1, Int>::arange(1..n as i64 + 1, device).float().log().unsqueeze::<2>().repeat_dim(0, e);
        AxonSsm {
            in_proj: lin(h, 2 * e).into(),
            conv_weight,
            conv_bias: Param::from_tensor(Tensor::zeros([e], device)),
            x_proj: lin(e, 2 * n + 1).into(),
            dt_proj,
            a_log: Param::from_tensor(a_log),
            d: Param::from_tensor(Tensor::ones([e], device)),
            out_proj: lin(e, h).into(),
            d_inner: e,
            d_state: n,
            d_conv: k,
            scan_chunk: self.scan_chunk,
        }
    }

    /// Loads the reference's `ssm.*` tensors under `prefix`.
    pub fn load(&self, ld: &Loader, prefix: &str) -> error::Result<AxonSsm> {
        let (h, e, n, k) = (self.d_model, self.d_inner, self.d_state, self.d_conv);
        let conv = ld.tensor(&format!("{prefix}.conv1d.weight"), [e, k, 1])?.reshape([e, k]);
        Ok(AxonSsm {
            in_proj: ld.projection(&format!("{prefix}.in_proj"), h, 2 * e)?,
            conv_weight: Param::from_tensor(conv),
            conv_bias: ld.param(&format!("{prefix}.conv1d.bias"), [e])?,
            x_proj: ld.projection(&format!("{prefix}.x_proj"), e, 2 * n + 1)?,
            dt_proj: ld.linear(&format!("{prefix}.dt_proj"), 1, e, true)?,
            a_log: ld.param(&format!("{prefix}.A_log"), [e, n])?,
            d: ld.param(&format!("{prefix}.D"), [e])?,
            out_proj: ld.projection(&format!("{prefix}.out_proj"), e, h)?,
            d_inner: e,
            d_state: n,
            d_conv: k,
            scan_chunk: self.scan_chunk,
        })
    }
}

impl AxonSsm {
    /// An all-zero state (the start of a sequence) for `batch` sequences.
    pub fn empty_state(&self, batch: usize, device: &Device) -> SsmState {
        let conv = (self.d_conv > 1).then(|| Tensor::zeros([batch, self.d_conv - 1, self.d_inner], device));
        SsmState { conv, ssm: Tensor::zeros([batch, self.d_inner, self.d_state], device) }
    }

    /// `u [B, L, H]`, optional state from earlier tokens → `out [B, L, H]` and the new state.
    pub fn forward(&self, u: Tensor<3>, state: Option<SsmState>) -> (Tensor<3>, SsmState) {
        self.forward_docs(u, state, None)
    }

    /// [`AxonSsm::forward`] over packed rows: neither the convolution nor the scan state crosses
    /// a document boundary of `docs`.
    pub fn forward_docs(
        &self,
        u: Tensor<3>,
        state: Option<SsmState>,
        docs: Option<&Segments>,
    ) -> (Tensor<3>, SsmState) {
        let [bsz, len, _] = u.dims();
        let (e, n) = (self.d_inner, self.d_state);
        let u_device = u.device();
        let state = state.unwrap_or_else(|| self.empty_state(bsz, &u_device));
        let xz = self.in_proj.forward(u);
        let x = xz.clone().narrow(2, 0, e);
        let z = xz.narrow(2, e, e);
        let (x, conv) = match docs {
            None => self.conv_silu(x, state.conv),
            Some(d) => {
                let (x, conv) = self.causal_conv_docs(x, state.conv, d);
                (silu(x), conv)
            }
        };
        let proj = self.x_proj.forward(x.clone());
        let b = proj.clone().narrow(2, 0, n);
        let c = proj.clone().narrow(2, n, n);
        let dt = softplus(self.dt_proj.forward(proj.narrow(2, 2 * n, 1)), 1.0).clamp(DT_MIN, DT_MAX);
        let a = self.a_log.val().exp().neg();
        let reset = docs.map(|d| d.reset(&u_device));
        let input = ScanInput { x, dt, a, b, c, d: self.d.val(), reset };
        let (y, ssm) = selective_scan(input, state.ssm, self.scan_chunk);
        let out = self.out_proj.forward(y * silu(z));
        debug_assert_eq!(out.dims()[1], len);
        (out, SsmState { conv, ssm })
    }

    /// `silu(causal_conv(x))` and the new cache. One token outside autodiff on a CubeCL device
    /// runs the fused conv-step kernel (window shift, convolution and SiLU in one launch).
    fn conv_silu(&self, x: Tensor<3>, cache: Option<Tensor<3>>) -> (Tensor<3>, Option<Tensor<3>>) {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if let Some(window) = &cache {
            let [bsz, len, e] = x.dims();
            if len == 1
                && !x.is_autodiff()
                && bit_axon_kernels::scan::is_cube(&x.device())
                && !bit_axon_kernels::plain_forced("scan")
            {
                let w = (self.conv_weight.val(), self.conv_bias.val());
                let (out, window) = bit_axon_kernels::scan::conv_step(window.clone(), x.reshape([bsz, e]), w.0, w.1);
                return (out.reshape([bsz, 1, e]), Some(window));
            }
        }
        let (x, conv) = self.causal_conv(x, cache);
        (silu(x), conv)
    }

    /// Depthwise causal convolution over `[cache; x]`; returns the output and the last `K-1`
    /// inputs as the new cache.
    fn causal_conv(&self, x: Tensor<3>, cache: Option<Tensor<3>>) -> (Tensor<3>, Option<Tensor<3>>) {
        let [bsz, len, e] = x.dims();
        let k = self.d_conv;
        let xp = match cache {
            Some(c) => Tensor::cat(vec![c, x], 1),
            None if k > 1 => Tensor::cat(vec![Tensor::zeros([bsz, k - 1, e], &x.device()), x], 1),
            None => x,
        };
        let w = self.conv_weight.val();
        let mut out = self.conv_bias.val().reshape([1, 1, e]).expand([bsz, len, e]);
        for j in 0..k {
            out = out + xp.clone().narrow(1, j, len) * w.clone().narrow(1, j, 1).reshape([1, 1, e]);
        }
        let new_cache = (k > 1).then(|| xp.narrow(1, len, k - 1));
        (out, new_cache)
    }

    /// [`AxonSsm::causal_conv`] with the taps that reach into an earlier document zeroed.
    fn causal_conv_docs(
        &self,
        x: Tensor<3>,
        cache: Option<Tensor<3>>,
        docs: &Segments,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let [bsz, len, e] = x.dims();
        let k = self.d_conv;
        let device = x.device();
        let xp = match cache {
            Some(c) => Tensor::cat(vec![c, x], 1),
            None if k > 1 => Tensor::cat(vec![Tensor::zeros([bsz, k - 1, e], &device), x], 1),
            None => x,
        };
        let w = self.conv_weight.val();
        let mut out = self.conv_bias.val().reshape([1, 1, e]).expand([bsz, len, e]);
        for j in 0..k {
            let tap = xp.clone().narrow(1, j, len) * w.clone().narrow(1, j, 1).reshape([1, 1, e]);
            let shift = k - 1 - j;
            out = out + if shift == 0 { tap } else { tap * docs.tap_mask(shift, &device) };
        }
        let new_cache = (k > 1).then(|| xp.narrow(1, len, k - 1));
        (out, new_cache)
    }

    pub fn save(&self, sv: &mut Saver, prefix: &str) {
        let (e, k) = (self.d_inner, self.d_conv);
        sv.projection(&format!("{prefix}.in_proj"), &self.in_proj);
        let dtype = sv.dtype;
        sv.tensor(format!("{prefix}.conv1d.weight"), self.conv_weight.val().reshape([e, k, 1]), dtype);
        sv.param(format!("{prefix}.conv1d.bias"), &self.conv_bias);
        sv.projection(&format!("{prefix}.x_proj"), &self.x_proj);
        sv.linear(&format!("{prefix}.dt_proj"), &self.dt_proj);
        sv.param(format!("{prefix}.A_log"), &self.a_log);
        sv.param(format!("{prefix}.D"), &self.d);
        sv.projection(&format!("{prefix}.out_proj"), &self.out_proj);
    }
}
