//! Linear warmup then cosine decay, counted in optimizer steps (the reference counts its lengths
//! in micro-steps while stepping per update, catalogue §4 B12).
//!
//! ```text
//! lr(s) = peak · s / warmup                                   1 ≤ s ≤ warmup
//! lr(s) = min + ½(peak − min)(1 + cos(π · (s − warmup) / (total − warmup)))   warmup < s ≤ total
//! ```

use burn::optim::LearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};

#[derive(Debug, Clone)]
pub struct WarmupCosine {
    pub peak: f64,
    pub min: f64,
    pub warmup: u64,
    pub total: u64,
    /// Optimizer steps taken so far.
    pub step: u64,
}

impl WarmupCosine {
    pub fn new(peak: f64, min: f64, warmup: u64, total: u64) -> Self {
        Self { peak, min, warmup, total, step: 0 }
    }

    /// The rate of optimizer step `s` (1-based).
    pub fn at(&self, s: u64) -> f64 {
        if s <= self.warmup && self.warmup > 0 {
            return self.peak * s as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((s - self.warmup.min(s)) as f64 / span).min(1.0);
        self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

impl LrScheduler for WarmupCosine {
    fn step(&mut self) -> LearningRate {
        self.step += 1;
        self.at(self.step)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(s) = record.scalar::<u64>("step") {
            self.step = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = WarmupCosine::new(1e-3, 1e-5, 10, 110);
        assert!((s.at(1) - 1e-4).abs() < 1e-12);
        assert!((s.at(10) - 1e-3).abs() < 1e-12);
        assert!((s.at(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12);
        assert!((s.at(110) - 1e-5).abs() < 1e-12);
        let mut r = s.clone();
        r.step();
        r.step();
        let mut back = WarmupCosine::new(1e-3, 1e-5, 10, 110);
        back.load_record(r.to_record());
        assert_eq!(back.step, 2);
    }
}
