//! Everything the dashboard shows, as plain data (no terminal), so it can be tested and fed
//! either from burn-train's renderer calls or from a metrics file.

use std::collections::{BTreeMap, HashMap};

use bit_axon_thermal::{LiveSnapshot, ThermalLimits};
use burn::train::metric::{MetricAttributes, MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::MetricState;

use crate::names;
use crate::record::{MetricsRecord, RecordKind};

/// Which curve a metric value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// Training steps.
    Train,
    /// Evaluations (burn-train's "valid" split).
    Eval,
}

/// Key help shown on a live training run.
pub const LIVE_KEY_HELP: &str = "p pause/resume · s save checkpoint now · q stop (checkpoint, then exit)";

/// The dashboard's data.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// Run label (shown in the title).
    pub label: String,
    /// Numeric series by (split, metric name): `(step, value)` points.
    pub series: BTreeMap<(Split, String), Vec<(f64, f64)>>,
    /// Latest text metrics by name (other than the thermal state).
    pub text: BTreeMap<String, String>,
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps planned (0: unknown).
    pub total_steps: u64,
    /// Current epoch (1-based; 0: unknown).
    pub epoch: u64,
    /// Planned epochs (0: unknown).
    pub total_epochs: u64,
    /// Seconds since the start of the run.
    pub time_s: f64,
    /// Temperature history: `(time_s, °C)`.
    pub temperature: Vec<(f64, f64)>,
    /// Thermal limits to draw.
    pub limits: Option<ThermalLimits>,
    /// Thermal state text (`running`, `throttled`, `paused`, ...).
    pub thermal_state: Option<String>,
    /// Last thermal decision.
    pub thermal_action: Option<String>,
    /// Seconds lost to cooling (paused + throttled).
    pub cooling_s: f64,
    /// Memory in use (bytes).
    pub memory_bytes: Option<f64>,
    /// The key help line.
    pub key_help: String,
    /// A transient status message (e.g. "save requested").
    pub status: Option<String>,
    /// Set when the run ended, with the reason if known.
    pub finished: Option<String>,
    /// Points kept per series before halving the resolution.
    pub max_points: usize,
    /// Thermal data comes from a live scheduler handle ([`Self::apply_thermal_snapshot`]); the
    /// thermal metric names arriving through [`Self::update`] are then ignored (no duplicates).
    pub thermal_feed: bool,
    thermal_seq: u64,
    rate_anchor: Option<(u64, f64)>,
    definitions: HashMap<MetricId, (String, bool)>,
}

impl Default for DashboardState {
    fn default() -> Self {
        Self::new("training")
    }
}

fn push_capped(points: &mut Vec<(f64, f64)>, p: (f64, f64), max: usize) {
    points.push(p);
    if points.len() > max.max(16) {
        // Keep every other point (and always the newest): history at half resolution.
        let last = *points.last().expect("not empty");
        let mut i = 0;
        points.retain(|_| {
            i += 1;
            i % 2 == 1
        });
        if points.last() != Some(&last) {
            points.push(last);
        }
    }
}

impl DashboardState {
    /// An empty state.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            series: BTreeMap::new(),
            text: BTreeMap::new(),
            step: 0,
            total_steps: 0,
            epoch: 0,
            total_epochs: 0,
            time_s: 0.0,
            temperature: Vec::new(),
            limits: None,
            thermal_state: None,
            thermal_action: None,
            cooling_s: 0.0,
            memory_bytes: None,
            key_help: LIVE_KEY_HELP.to_string(),
            status: None,
            finished: None,
            max_points: 4096,
            thermal_feed: false,
            thermal_seq: 0,
            rate_anchor: None,
            definitions: HashMap::new(),
        }
    }

    /// Records progress: steps done / planned, epoch, seconds since the start.
    pub fn observe_progress(&mut self, step: u64, total_steps: u64, epoch: u64, time_s: f64) {
        self.step = step;
        if total_steps > 0 {
            self.total_steps = total_steps;
        }
        if epoch > 0 {
            self.epoch = epoch;
        }
        if time_s.is_finite() {
            self.time_s = time_s;
        }
        match self.rate_anchor {
            None => self.rate_anchor = Some((step, self.time_s)),
            Some((s0, _)) if step < s0 => self.rate_anchor = Some((step, self.time_s)),
            _ => {}
        }
    }

    /// Optimizer steps per second since the first progress observation.
    pub fn steps_per_s(&self) -> Option<f64> {
        let (s0, t0) = self.rate_anchor?;
        let (ds, dt) = (self.step.checked_sub(s0)? as f64, self.time_s - t0);
        (ds > 0.0 && dt > 0.0).then(|| ds / dt)
    }

    /// Seconds left at the current step rate (cooling time included in the rate).
    pub fn eta_s(&self) -> Option<f64> {
        let rate = self.steps_per_s()?;
        (self.total_steps >= self.step && self.total_steps > 0).then(|| (self.total_steps - self.step) as f64 / rate)
    }

    /// Applies one `metrics.jsonl` record.
    pub fn apply_record(&mut self, r: &MetricsRecord) {
        self.observe_progress(r.step, r.total_steps, r.epoch, r.time_s);
        let split = match r.kind {
            RecordKind::Eval => Split::Eval,
            _ => Split::Train,
        };
        for (name, &v) in &r.metrics {
            self.push_value(split, name, v);
        }
        for (name, v) in &r.text {
            self.push_text(name, v);
        }
        if r.kind == RecordKind::End {
            self.finished = Some(r.text.get("Stop").cloned().unwrap_or_else(|| "finished".to_string()));
        }
    }

    /// Routes one numeric value: thermal and memory names to their panels, limits to the
    /// temperature chart, everything else to the series of `split` at the current step.
    pub fn push_value(&mut self, split: Split, name: &str, v: f64) {
        if !v.is_finite() || (self.thermal_feed && Self::is_thermal_name(name)) {
            return;
        }
        match name {
            names::TEMPERATURE => push_capped(&mut self.temperature, (self.time_s, v), self.max_points),
            names::COOLING_TIME => self.cooling_s = v,
            names::MEMORY => self.memory_bytes = Some(v),
            names::PAUSE_LIMIT => self.limits_mut().pause_c = v,
            names::RESUME_LIMIT => self.limits_mut().resume_c = v,
            names::CRITICAL_LIMIT => self.limits_mut().critical_c = v,
            names::SETPOINT => self.limits_mut().setpoint_c = Some(v),
            names::THROTTLE_START => self.limits_mut().throttle_start_c = Some(v),
            _ => {
                let x = self.step as f64;
                let max = self.max_points;
                let points = self.series.entry((split, name.to_string())).or_default();
                // One point per step: a repeated update of the same step replaces the value.
                match points.last_mut() {
                    Some(last) if last.0 == x => last.1 = v,
                    _ => push_capped(points, (x, v), max),
                }
            }
        }
    }

    /// Routes one text value.
    pub fn push_text(&mut self, name: &str, v: &str) {
        if self.thermal_feed && Self::is_thermal_name(name) {
            return;
        }
        match name {
            names::THERMAL_STATE => self.thermal_state = Some(v.to_string()),
            names::THERMAL_ACTION => self.thermal_action = Some(v.to_string()),
            names::THERMAL_POLICY => self.limits_mut().policy = v.to_string(),
            _ => {
                self.text.insert(name.to_string(), v.to_string());
            }
        }
    }

    fn limits_mut(&mut self) -> &mut ThermalLimits {
        self.limits.get_or_insert_with(|| ThermalLimits {
            policy: String::new(),
            pause_c: f64::NAN,
            resume_c: f64::NAN,
            throttle_start_c: None,
            setpoint_c: None,
            critical_c: f64::NAN,
        })
    }

    /// Applies a live scheduler snapshot (temperature point at the current `time_s`, state, last
    /// decision, cooling time, limits); returns `false` if nothing changed since the last one.
    pub fn apply_thermal_snapshot(&mut self, snap: &LiveSnapshot) -> bool {
        self.thermal_feed = true;
        if snap.seq == self.thermal_seq && self.thermal_state.is_some() {
            return false;
        }
        self.thermal_seq = snap.seq;
        self.limits = snap.status.limits.clone();
        self.thermal_state = Some(snap.status.state.as_str().to_string());
        self.thermal_action = snap.last_event.as_ref().map(|e| e.action.clone());
        self.cooling_s = snap.totals.paused_s + snap.totals.throttled_s;
        if let Some(t) = snap.status.temp_c.filter(|t| t.is_finite()) {
            push_capped(&mut self.temperature, (self.time_s, t), self.max_points);
        }
        true
    }

    fn is_thermal_name(name: &str) -> bool {
        matches!(
            name,
            names::TEMPERATURE
                | names::COOLING_TIME
                | names::THERMAL_STATE
                | names::THERMAL_ACTION
                | names::THERMAL_POLICY
                | names::PAUSE_LIMIT
                | names::RESUME_LIMIT
                | names::CRITICAL_LIMIT
                | names::SETPOINT
                | names::THROTTLE_START
        )
    }

    /// Registers a burn-train metric (its id maps to its name in [`Self::update`]).
    pub fn register(&mut self, definition: &MetricDefinition) {
        let numeric = matches!(definition.attributes, MetricAttributes::Numeric(_));
        self.definitions.insert(definition.metric_id.clone(), (definition.name.to_string(), numeric));
    }

    /// Applies a burn-train metric update. Numeric values are plotted at the current step;
    /// epoch-final aggregates are not (they would duplicate the per-step curve). Text metrics
    /// use the entry's serialized value.
    pub fn update(&mut self, split: Split, state: MetricState) {
        match state {
            MetricState::Generic(entry) => {
                if let Some((name, _)) = self.definitions.get(&entry.metric_id).cloned() {
                    let s = &entry.serialized_entry;
                    let v = if s.serialized.is_empty() || s.is_not_available() { &s.formatted } else { &s.serialized };
                    self.push_text(&name, v);
                }
            }
            MetricState::Numeric(entry, value) => {
                let Some((name, _)) = self.definitions.get(&entry.metric_id).cloned() else {
                    return;
                };
                match value {
                    Some(NumericEntry::Final(_)) | None => {}
                    Some(v) => self.push_value(split, &name, v.current()),
                }
            }
        }
    }

    /// The latest value of a series.
    pub fn latest(&self, split: Split, name: &str) -> Option<f64> {
        self.series.get(&(split, name.to_string())).and_then(|p| p.last()).map(|p| p.1)
    }

    /// The series, if any.
    pub fn points(&self, split: Split, name: &str) -> &[(f64, f64)] {
        self.series.get(&(split, name.to_string())).map_or(&[], Vec::as_slice)
    }

    /// Metric names for the table: every numeric series once, the training loop's own metrics
    /// first (loss, perplexity, learning rate, tokens/s, grad norm), then the others (e.g. ORPO's)
    /// alphabetically.
    pub fn metric_names(&self) -> Vec<String> {
        const FIRST: &[&str] =
            &[names::LOSS, names::PERPLEXITY, names::LEARNING_RATE, names::TOKENS_PER_SECOND, names::GRAD_NORM];
        let mut v: Vec<String> = self.series.keys().map(|(_, n)| n.clone()).collect();
        v.sort_by_key(|n| (FIRST.iter().position(|f| f == n).unwrap_or(FIRST.len()), n.clone()));
        v.dedup();
        v
    }
}
