//! One-line progress records for a non-TTY stdout (logs, CI, `nohup`).

use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};

use crate::draw::{fmt_duration, fmt_num};
use crate::names;
use crate::renderer::ProgressTracker;
use crate::state::{DashboardState, Split};

/// One progress line: `[train] step 120/5000 (2.4 %) · epoch 1/3 · loss 3.214 · ...`.
pub fn plain_line(state: &DashboardState) -> String {
    let mut parts = Vec::new();
    if state.total_steps > 0 {
        parts.push(format!(
            "[{}] step {}/{} ({:.1} %)",
            state.label,
            state.step,
            state.total_steps,
            100.0 * state.step as f64 / state.total_steps as f64
        ));
    } else {
        parts.push(format!("[{}] step {}", state.label, state.step));
    }
    if state.epoch > 0 {
        parts.push(if state.total_epochs > 0 {
            format!("epoch {}/{}", state.epoch, state.total_epochs)
        } else {
            format!("epoch {}", state.epoch)
        });
    }
    for (split, name, label) in [
        (Split::Train, names::LOSS, "loss"),
        (Split::Eval, names::LOSS, "eval loss"),
        (Split::Train, names::LEARNING_RATE, "lr"),
        (Split::Train, names::TOKENS_PER_SECOND, "tok/s"),
    ] {
        if let Some(v) = state.latest(split, name) {
            parts.push(format!("{label} {}", fmt_num(v)));
        }
    }
    if let Some((_, t)) = state.temperature.last() {
        let s = state.thermal_state.as_deref().unwrap_or("");
        parts.push(format!("{t:.1} °C {s}").trim_end().to_string());
    } else if let Some(s) = &state.thermal_state {
        parts.push(format!("thermal {s}"));
    }
    if state.cooling_s > 0.0 {
        parts.push(format!("cooling {}", fmt_duration(state.cooling_s)));
    }
    parts.push(format!("elapsed {}", fmt_duration(state.time_s)));
    if let Some(eta) = state.eta_s() {
        parts.push(format!("ETA {}", fmt_duration(eta)));
    }
    parts.join(" · ")
}

/// Prints [`plain_line`] on stdout at most once per `interval` (default 1 s) while training,
/// and once at the end of each split.
pub struct PlainRenderer {
    state: DashboardState,
    progress: ProgressTracker,
    start: Instant,
    last_print: Option<Instant>,
    interval: Duration,
    feed: Option<crate::record::RecordFeed>,
}

impl Default for PlainRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl PlainRenderer {
    /// A renderer printing at most one line per second.
    pub fn new() -> Self {
        Self::with_interval(Duration::from_secs(1))
    }

    /// A renderer printing at most one line per `interval` (zero: every step).
    pub fn with_interval(interval: Duration) -> Self {
        Self {
            state: DashboardState::new("train"),
            progress: ProgressTracker::default(),
            start: Instant::now(),
            last_print: None,
            interval,
            feed: None,
        }
    }

    /// Also applies the records pushed to `feed` before each line.
    pub fn with_feed(mut self, feed: Option<crate::record::RecordFeed>) -> Self {
        self.feed = feed;
        self
    }

    /// The state accumulated so far.
    pub fn state(&self) -> &DashboardState {
        &self.state
    }

    fn sync_progress(&mut self) {
        let p = &self.progress;
        self.state.total_epochs = p.total_epochs;
        let t = self.start.elapsed().as_secs_f64();
        self.state.observe_progress(p.step, p.total_steps, p.epoch, t);
    }

    fn print(&mut self, force: bool) {
        if let Some(f) = &self.feed {
            for r in f.drain() {
                self.state.apply_record(&r);
            }
        }
        if force || self.last_print.is_none_or(|t| t.elapsed() >= self.interval) {
            self.last_print = Some(Instant::now());
            println!("{}", plain_line(&self.state));
        }
    }
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.state.time_s = self.start.elapsed().as_secs_f64();
        self.state.update(Split::Train, state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.state.time_s = self.start.elapsed().as_secs_f64();
        self.state.update(Split::Eval, state);
    }

    fn on_train_end(&mut self, summary: Option<LearnerSummary>) -> Result<(), Box<dyn std::error::Error>> {
        self.sync_progress();
        self.print(true);
        if let Some(s) = summary {
            println!("{s}");
        }
        Ok(())
    }
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.state.update(Split::Eval, state);
    }
}

impl TrainingProgressLogger for PlainRenderer {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, total_items: Option<usize>, label: Option<&str>) {
        self.progress.start(total_epochs, starting_epoch, total_items);
        if let Some(l) = label {
            self.state.label = l.to_string();
        }
        self.sync_progress();
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.progress.update_epoch(epoch);
        self.sync_progress();
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.progress.start_split(split, total_items);
        self.sync_progress();
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.progress.update_split(items_processed) {
            self.sync_progress();
            self.print(false);
        }
    }

    fn end_split(&mut self) {
        let was_train = self.progress.split_is_train;
        self.progress.end_split();
        self.sync_progress();
        if was_train {
            self.print(true);
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, event: String) {
        println!("[{}] {event}", self.state.label);
    }
}

impl EvaluationProgressLogger for PlainRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        println!("[{}] evaluating {name} ({total_items} items)", self.state.label);
    }

    fn update_test_progress(&mut self, _items_processed: usize) {}

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, event: String) {
        println!("[{}] {event}", self.state.label);
    }
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.state.register(&definition);
    }
}
