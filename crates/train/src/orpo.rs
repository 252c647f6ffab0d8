//! ORPO (Hong et al., 2024): odds-ratio preference optimisation, one stage, no reference model.
//!
//! For a pair, with `logp_y` the *average* log-probability of response `y`'s tokens given the
//! prompt (targets shifted: position `t` predicts token `t + 1`; response tokens only):
//! ```text
//! odds(y)      = p / (1 − p),  log odds(y) = logp_y − log1mexp(logp_y),  log1mexp(x) = log(1 − eˣ)
//! L_OR         = −log σ(log odds(chosen) − log odds(rejected))
//! L            = NLL(chosen) + λ · mean(L_OR)          (λ = 0.1 by default)
//! rewards      = λ · logp_y;  margin = reward_chosen − reward_rejected;  accuracy = [margin > 0]
//! ```
//! This is TRL's `ORPOTrainer` definition (its `beta` is λ). The reference implementation
//! differs (catalogue §1.11, §4 B7/B8): its NLL is not shifted (position t "predicts" token t),
//! its β multiplies the log-odds *inside* the sigmoid, and its `log1mexp` uses the two stable
//! branches the wrong way round (f32 gives −15.94 instead of −16.12 at x = −1e-7).
//! `NLL(chosen)` is the token-weighted mean cross-entropy of the chosen responses.

use bit_axon::BitAxonModel;
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::train::metric::{Adaptor, LossInput};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};

use crate::data::preference::PairBatch;
use crate::objective::{Objective, Report, Sums};

/// `log(1 − eˣ)` for `x < 0`, accurate across the range: `log(−expm1(x))` near 0 (with a series
/// for `expm1`, which Burn lacks) and `log1p(−eˣ)` below `−ln 2` (Mächler, 2012).
pub fn log1mexp(x: Tensor<1>) -> Tensor<1> {
    let ln2 = std::f64::consts::LN_2;
    let near = x.clone().greater_elem(-ln2);
    // −expm1(x): a 5-term series for |x| < 0.05 (relative error < 1e-9), else 1 − eˣ.
    let series = {
        let x2 = x.clone().powi_scalar(2);
        let poly = x.clone().div_scalar(2.0).add_scalar(1.0)
            + x2.clone().div_scalar(6.0)
            + x2.clone() * x.clone().div_scalar(24.0)
            + x2.clone() * x2.div_scalar(120.0);
        (x.clone() * poly).neg()
    };
    let direct = x.clone().exp().neg().add_scalar(1.0);
    let small = x.clone().abs().lower_elem(0.05);
    let neg_expm1 = direct.mask_where(small, series).clamp_min(1e-38);
    let near_branch = neg_expm1.log();
    let far_branch = x.exp().neg().clamp_min(-1.0 + 1e-7).log1p();
    far_branch.mask_where(near, near_branch)
}

/// Per-row response log-probabilities: `(Σ_t w_t log p_t, Σ_t w_t)`, both `[R]`.
pub fn response_logps(logits: Tensor<3>, targets: Tensor<2, Int>, weights: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let [r, l, _] = logits.dims();
    let picked = log_softmax(logits, 2).gather(2, targets.reshape([r, l, 1])).reshape([r, l]);
    let sum = (picked * weights.clone()).sum_dim(1).reshape([r]);
    (sum, weights.sum_dim(1).reshape([r]))
}

/// `log σ(log odds(c) − log odds(r))` per pair, from average log-probs `[P]`.
pub fn log_odds_ratio(logp_c: Tensor<1>, logp_r: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let lo = (logp_c.clone() - logp_r.clone()) - (log1mexp(logp_c) - log1mexp(logp_r));
    (log_sigmoid(lo.clone()), lo)
}

/// Bit-Axon trained with ORPO on preference pairs (adapters only, like SFT).
#[derive(Module, Debug)]
pub struct OrpoLm {
    pub model: BitAxonModel,
    /// Weight λ of the odds-ratio term (also the reward scale).
    pub lambda: f64,
}

/// A micro-batch's ORPO statistics (device tensors until read).
#[derive(Debug, Clone)]
pub struct OrpoOutput {
    /// `[1]` this micro-batch's ORPO loss (its own means), for burn-train's loss metric.
    pub loss: Tensor<1>,
    /// `[8]`: NLL sum, chosen tokens, Σ log σ, Σ log-odds, Σ logp_c, Σ logp_r, correct, pairs.
    pub stats: Tensor<1>,
    pub processed: usize,
}

impl ItemLazy for OrpoOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        Ok(self)
    }
}

impl Adaptor<LossInput> for OrpoOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl Report for OrpoOutput {
    fn sums(&self) -> Sums {
        let v: Vec<f32> = self.stats.clone().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 stats");
        let (nll, tok, ratio, lo, lc, lr, correct, pairs) =
            (v[0] as f64, v[1] as f64, v[2] as f64, v[3] as f64, v[4] as f64, v[5] as f64, v[6] as f64, v[7] as f64);
        let mut s = Sums::default();
        s.add("NLL", nll, tok);
        s.add("Odds Ratio Loss", -ratio, pairs);
        s.add("Log Odds Chosen", lo, pairs);
        s.add("Logp Chosen", lc, pairs);
        s.add("Logp Rejected", lr, pairs);
        s.add("Reward Accuracy", correct, pairs);
        s
    }
    fn processed(&self) -> usize {
        self.processed
    }
}

impl Objective for OrpoLm {
    fn bit_axon(&self) -> &BitAxonModel {
        &self.model
    }
    fn summarize(&self, s: &Sums) -> (f64, Vec<(String, f64)>) {
        let (nll, or) = (s.mean("NLL"), s.mean("Odds Ratio Loss"));
        let loss = nll + self.lambda * or;
        let (c, r) = (s.mean("Logp Chosen"), s.mean("Logp Rejected"));
        let m = vec![
            ("Loss".into(), loss),
            ("NLL".into(), nll),
            ("Odds Ratio Loss".into(), or),
            ("Log Odds Chosen".into(), s.mean("Log Odds Chosen")),
            ("Logp Chosen".into(), c),
            ("Logp Rejected".into(), r),
            ("Reward Chosen".into(), self.lambda * c),
            ("Reward Rejected".into(), self.lambda * r),
            ("Reward Margin".into(), self.lambda * (c - r)),
            ("Reward Accuracy".into(), s.mean("Reward Accuracy")),
        ];
        (loss, m)
    }
}

impl OrpoLm {
    /// The micro-batch loss normalised by the step's totals (so accumulated gradients are those
    /// of the step's loss), and the statistics.
    fn compute(&self, b: &PairBatch) -> (Tensor<1>, OrpoOutput) {
        let p = b.pairs;
        let logits = self.model.forward_packed(b.ids.clone(), &b.segments);
        let (sum, count) = response_logps(logits, b.targets.clone(), b.weights.clone());
        let avg = sum.clone() / count.clone().clamp_min(1.0);
        let (logp_c, logp_r) = (avg.clone().narrow(0, 0, p), avg.narrow(0, p, p));
        let nll_sum = sum.narrow(0, 0, p).sum().neg();
        let (ratio, lo) = log_odds_ratio(logp_c.clone(), logp_r.clone());
        let ratio_sum = ratio.sum();
        let step_loss = nll_sum.clone().div_scalar(b.step_chosen_tokens.max(1) as f64)
            - ratio_sum.clone().mul_scalar(self.lambda / b.step_pairs.max(1) as f64);
        let own = nll_sum.clone().detach().div_scalar(b.chosen_tokens.max(1) as f64)
            - ratio_sum.clone().detach().mul_scalar(self.lambda / p.max(1) as f64);
        let device = nll_sum.device();
        let correct = logp_c.clone().greater(logp_r.clone()).float().sum();
        let stats = Tensor::cat(
            vec![
                nll_sum.detach(),
                Tensor::from_data(TensorData::new(vec![b.chosen_tokens as f32], [1]), &device),
                ratio_sum.detach(),
                lo.sum().detach(),
                logp_c.sum().detach(),
                logp_r.sum().detach(),
                correct.detach(),
                Tensor::from_data(TensorData::new(vec![p as f32], [1]), &device),
            ],
            0,
        );
        (step_loss, OrpoOutput { loss: own, stats, processed: b.processed })
    }
}

impl TrainStep for OrpoLm {
    type Input = PairBatch;
    type Output = OrpoOutput;
    fn step(&self, b: PairBatch) -> TrainOutput<OrpoOutput> {
        let (loss, out) = self.compute(&b);
        TrainOutput::new(self, loss.backward(), out)
    }
}

impl InferenceStep for OrpoLm {
    type Input = PairBatch;
    type Output = OrpoOutput;
    fn step(&self, b: PairBatch) -> OrpoOutput {
        self.compute(&b).1
    }
}
