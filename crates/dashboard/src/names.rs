//! Metric names shared by the training loop (burn-train registration and `metrics.jsonl`) and
//! the dashboard. The first three are burn-train's own names for its `LossMetric`,
//! `PerplexityMetric` and `LearningRateMetric`, so both paths agree.

/// burn-train `LossMetric::name()`.
pub const LOSS: &str = "Loss";
/// burn-train `PerplexityMetric::name()`.
pub const PERPLEXITY: &str = "Perplexity";
/// burn-train `LearningRateMetric::name()`.
pub const LEARNING_RATE: &str = "Learning Rate";
/// Training throughput (tokens per second of wall time, cooling included).
pub const TOKENS_PER_SECOND: &str = "Tokens/s";
/// Global gradient norm before clipping.
pub const GRAD_NORM: &str = "Grad Norm";
/// Temperature read by the thermal scheduler (°C).
pub const TEMPERATURE: &str = "Temperature";
/// Thermal state, a text metric: `running` | `throttled` | `paused` | `critical` | `unmanaged`.
pub const THERMAL_STATE: &str = "Thermal State";
/// Seconds lost to cooling so far (paused + throttled), cumulative.
pub const COOLING_TIME: &str = "Cooling Time";
/// Memory in use (bytes): device memory where known, else the process's resident memory.
pub const MEMORY: &str = "Memory";

/// Thermal limits carried in `"thermal"` records (°C), so `watch` can draw them.
pub const PAUSE_LIMIT: &str = "Pause Limit";
/// See [`PAUSE_LIMIT`].
pub const RESUME_LIMIT: &str = "Resume Limit";
/// See [`PAUSE_LIMIT`].
pub const CRITICAL_LIMIT: &str = "Critical Limit";
/// See [`PAUSE_LIMIT`]; set-point policy only.
pub const SETPOINT: &str = "Set-point";
/// See [`PAUSE_LIMIT`]; throttle policy only.
pub const THROTTLE_START: &str = "Throttle Start";
/// Text in `"thermal"` records: the policy name.
pub const THERMAL_POLICY: &str = "Thermal Policy";
/// Text in `"thermal"` records: the scheduler's decision (`ThermalEvent::action`).
pub const THERMAL_ACTION: &str = "Thermal Action";

/// Names shown in their own panels; every other numeric metric goes to the metrics table.
pub const PANEL_METRICS: &[&str] = &[LOSS, LEARNING_RATE, TOKENS_PER_SECOND, TEMPERATURE];
