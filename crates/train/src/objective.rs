//! What the training loop needs from a training objective (SFT, ORPO): additive sums per
//! micro-batch, from which the step's loss and metrics are computed, and the adapted model.

use std::collections::BTreeMap;

use bit_axon::BitAxonModel;

/// Additive statistics of a micro-batch: `name → (sum, count)`. Summing them over the
/// micro-batches of a step (or the batches of an evaluation) and dividing gives exact means.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums(pub BTreeMap<&'static str, (f64, f64)>);

impl Sums {
    pub fn add(&mut self, name: &'static str, sum: f64, count: f64) {
        let e = self.0.entry(name).or_insert((0.0, 0.0));
        e.0 += sum;
        e.1 += count;
    }

    pub fn merge(&mut self, other: &Sums) {
        for (k, (s, c)) in &other.0 {
            self.add(k, *s, *c);
        }
    }

    /// `sum / count` (NaN when nothing was counted).
    pub fn mean(&self, name: &str) -> f64 {
        self.0.get(name).map_or(f64::NAN, |(s, c)| if *c > 0.0 { s / c } else { f64::NAN })
    }
}

/// A micro-batch's report: its sums (read back from the device) and the tokens it processed.
pub trait Report {
    fn sums(&self) -> Sums;
    /// Non-padding tokens run through the model.
    fn processed(&self) -> usize;
}

/// A trainable objective over an adapted Bit-Axon model.
pub trait Objective {
    fn bit_axon(&self) -> &BitAxonModel;
    /// The step (or evaluation) loss and the named metrics to log, from summed reports.
    fn summarize(&self, sums: &Sums) -> (f64, Vec<(String, f64)>);
}
