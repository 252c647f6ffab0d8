//! Shared fixtures: a plausible run as metrics records.

use bit_axon_dashboard::{MetricsRecord, RecordKind, names};
use bit_axon_thermal::{ThermalEvent, ThermalLimits, ThermalState, ThermalTotals};

pub fn limits() -> ThermalLimits {
    ThermalLimits {
        policy: "setpoint".into(),
        pause_c: 90.0,
        resume_c: 80.0,
        throttle_start_c: None,
        setpoint_c: Some(85.0),
        critical_c: 100.0,
    }
}

/// 60 steps of 2 s out of 200 (loss 4 -> ~2.8), evals at 30 and 60, thermal records every step
/// (heating to 86.5 °C, throttled from step 40), and an ORPO-style metric the dashboard does not know.
pub fn run_records() -> Vec<MetricsRecord> {
    let mut out = Vec::new();
    let mut cooling = 0.0;
    for step in 1..=60u64 {
        let t = step as f64 * 2.0;
        let loss = 2.5 + 1.5 * (-(step as f64) / 30.0).exp();
        out.push(
            MetricsRecord::new(RecordKind::Train, step, 200, 1, t)
                .metric(names::LOSS, loss)
                .metric(names::LEARNING_RATE, 2e-4 * (step as f64 / 60.0))
                .metric(names::TOKENS_PER_SECOND, 1800.0 + step as f64)
                .metric(names::GRAD_NORM, 0.9)
                .metric(names::MEMORY, 3.5 * 1024.0 * 1024.0 * 1024.0)
                .metric("Reward Margin", 0.125),
        );
        let temp = 40.0 + 46.5 * (1.0 - (-(step as f64) / 20.0).exp());
        let state = if step >= 40 { ThermalState::Throttled } else { ThermalState::Running };
        if state == ThermalState::Throttled {
            cooling += 0.5;
        }
        let event = ThermalEvent {
            time_s: t,
            step,
            temp_c: Some(temp),
            state,
            action: if step >= 40 { "setpoint 85.0 °C: duty 0.800".into() } else { "run".into() },
            sleep_s: 0.5,
        };
        let totals = ThermalTotals { throttled_s: cooling, ..Default::default() };
        out.push(MetricsRecord::thermal(step, 200, 1, t, &event, &totals, Some(&limits())));
        if step % 30 == 0 {
            out.push(
                MetricsRecord::new(RecordKind::Eval, step, 200, 1, t)
                    .metric(names::LOSS, loss + 0.2)
                    .metric(names::PERPLEXITY, (loss + 0.2).exp()),
            );
        }
    }
    out
}
