//! The causal-LM wrapper burn-train drives: its batch, its loss and its train/inference steps.

use bit_axon::BitAxonModel;
use bit_axon::layers::Segments;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::train::metric::{Adaptor, LossInput};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};

use crate::objective::{Objective, Report, Sums};

/// One micro-batch of packed rows.
#[derive(Debug, Clone)]
pub struct LmBatch {
    /// `[B, L]` token ids.
    pub ids: Tensor<2, Int>,
    /// `[B, L]` the next token at each position (0 where there is none).
    pub targets: Tensor<2, Int>,
    /// `[B, L]` 1.0 where predicting `targets` carries loss.
    pub weights: Tensor<2>,
    pub segments: Segments,
    /// Trained targets in this micro-batch.
    pub tokens: usize,
    /// Non-padding tokens.
    pub processed: usize,
    /// Trained targets in the whole optimizer step (all its micro-batches): the loss is the sum
    /// of per-token cross-entropies divided by this, so accumulated gradients are the gradient
    /// of the mean over the step.
    pub step_tokens: usize,
}

/// What a step reports: the mean cross-entropy over this micro-batch's targets.
#[derive(Debug, Clone)]
pub struct LmOutput {
    /// `[1]` mean loss of this micro-batch (for display and metrics).
    pub loss: Tensor<1>,
    /// `[1]` sum of the per-token losses.
    pub loss_sum: Tensor<1>,
    pub tokens: usize,
    pub processed: usize,
}

impl Report for LmOutput {
    fn sums(&self) -> Sums {
        let mut s = Sums::default();
        s.add("Loss", self.loss_sum.clone().into_scalar::<f32>() as f64, self.tokens as f64);
        s
    }
    fn processed(&self) -> usize {
        self.processed
    }
}

impl Objective for CausalLm {
    fn bit_axon(&self) -> &BitAxonModel {
        &self.model
    }
    fn summarize(&self, sums: &Sums) -> (f64, Vec<(String, f64)>) {
        let loss = sums.mean("Loss");
        (loss, vec![("Loss".into(), loss), ("Perplexity".into(), loss.exp())])
    }
}

impl ItemLazy for LmOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        Ok(self)
    }
}

impl Adaptor<LossInput> for LmOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

/// Bit-Axon as a causal LM: next-token cross-entropy over packed rows.
#[derive(Module, Debug)]
pub struct CausalLm {
    pub model: BitAxonModel,
}

/// `Σ_t w_t · -log softmax(logits_t)[target_t]` as a `[1]` tensor.
pub fn cross_entropy_sum(logits: Tensor<3>, targets: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<1> {
    let [b, l, _] = logits.dims();
    let logp = log_softmax(logits, 2);
    let picked = logp.gather(2, targets.reshape([b, l, 1])).reshape([b, l]);
    (picked * weights).sum().neg()
}

impl CausalLm {
    /// Loss sum over the batch's trained targets.
    pub fn loss_sum(&self, batch: &LmBatch) -> Tensor<1> {
        let logits = self.model.forward_packed(batch.ids.clone(), &batch.segments);
        cross_entropy_sum(logits, batch.targets.clone(), batch.weights.clone())
    }

    fn output(&self, batch: &LmBatch) -> (Tensor<1>, LmOutput) {
        let sum = self.loss_sum(batch);
        let mean = sum.clone().detach().div_scalar(batch.tokens.max(1) as f64);
        (sum.clone(), LmOutput { loss: mean, loss_sum: sum.detach(), tokens: batch.tokens, processed: batch.processed })
    }
}

impl TrainStep for CausalLm {
    type Input = LmBatch;
    type Output = LmOutput;

    fn step(&self, batch: LmBatch) -> TrainOutput<LmOutput> {
        let (sum, out) = self.output(&batch);
        let loss = sum.div_scalar(batch.step_tokens.max(1) as f64);
        TrainOutput::new(self, loss.backward(), out)
    }
}

impl InferenceStep for CausalLm {
    type Input = LmBatch;
    type Output = LmOutput;

    fn step(&self, batch: LmBatch) -> LmOutput {
        self.output(&batch).1
    }
}
