//! The full-screen dashboard as burn-train's metrics renderer.
//!
//! burn-train calls the renderer from the training thread; the dashboard draws on its own thread
//! (at most every 100 ms) and polls the keys there, so drawing never slows a step. Progress
//! mapping: train-split items are optimizer steps (`start(.., total_items: Some(total_steps), ..)`
//! sets the total; without it, the split's total times the number of epochs).

use std::io::IsTerminal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bit_axon_thermal::LiveThermal;
use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};
use ratatui::crossterm::event::{self, Event, KeyCode};

use crate::controls::{KeyAction, TrainControls};
use crate::plain::PlainRenderer;
use crate::record::RecordFeed;
use crate::state::{DashboardState, Split};
use crate::terminal::{TerminalGuard, restore_terminal, terminal_active};

const FRAME: Duration = Duration::from_millis(100);

enum Msg {
    Register(MetricDefinition),
    Update(Split, MetricState),
    Progress {
        step: u64,
        total_steps: u64,
        epoch: u64,
        total_epochs: u64,
    },
    Label(String),
    Event(String),
    End,
    /// Close after the user presses `q` (burn-train's `manual_close`).
    CloseAfterKey,
    Close,
}

/// Step bookkeeping shared by both renderers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProgressTracker {
    pub total_epochs: u64,
    pub epoch: u64,
    pub total_steps: u64,
    pub split_total: u64,
    pub split_is_train: bool,
    /// Steps done in earlier train splits.
    pub base: u64,
    pub step: u64,
}

impl ProgressTracker {
    pub fn start(&mut self, total_epochs: usize, starting_epoch: usize, total_items: Option<usize>) {
        self.total_epochs = total_epochs as u64;
        self.epoch = starting_epoch as u64 + 1;
        if let Some(t) = total_items {
            self.total_steps = t as u64;
        }
    }

    pub fn start_split(&mut self, split: &str, total_items: usize) {
        self.split_is_train = split == "train";
        if self.split_is_train {
            self.split_total = total_items as u64;
            if self.total_steps == 0 {
                self.total_steps = self.split_total * self.total_epochs.max(1);
            }
        }
    }

    /// Returns whether the step moved (train split).
    pub fn update_split(&mut self, items: usize) -> bool {
        if self.split_is_train {
            self.step = self.base + items as u64;
        }
        self.split_is_train
    }

    pub fn end_split(&mut self) {
        if self.split_is_train {
            self.base = self.step;
        }
        self.split_is_train = false;
    }

    pub fn update_epoch(&mut self, epoch: usize) {
        let e = epoch as u64 + 1;
        self.epoch = if self.total_epochs > 0 { e.min(self.total_epochs) } else { e };
    }
}

/// The full-screen dashboard renderer.
pub struct DashboardRenderer {
    tx: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
    progress: ProgressTracker,
    summary: Option<LearnerSummary>,
}

impl DashboardRenderer {
    /// Takes over the terminal (alternate screen, raw mode, panic hook) and starts the render
    /// thread. With `thermal` (from `ThermalScheduler::live`) the temperature panel follows the
    /// scheduler directly, also while a pause blocks the training thread; without it, it shows the
    /// thermal metrics the loop reports (`names::TEMPERATURE`, `names::THERMAL_STATE`, ...).
    pub fn new(controls: TrainControls, thermal: Option<LiveThermal>) -> std::io::Result<Self> {
        Self::with_feed(controls, thermal, None)
    }

    /// [`DashboardRenderer::new`] that also applies the records pushed to `feed`.
    pub fn with_feed(
        controls: TrainControls,
        thermal: Option<LiveThermal>,
        feed: Option<RecordFeed>,
    ) -> std::io::Result<Self> {
        let guard = TerminalGuard::enter()?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || render_loop(guard, rx, controls, thermal, feed))?;
        Ok(Self { tx, handle: Some(handle), progress: ProgressTracker::default(), summary: None })
    }

    fn send(&self, msg: Msg) {
        // The render thread only ends on Close or after a panic restored the terminal.
        let _ = self.tx.send(msg);
    }

    fn send_progress(&self) {
        let p = &self.progress;
        self.send(Msg::Progress {
            step: p.step,
            total_steps: p.total_steps,
            epoch: p.epoch,
            total_epochs: p.total_epochs,
        });
    }

    fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn render_loop(
    mut guard: TerminalGuard,
    rx: Receiver<Msg>,
    controls: TrainControls,
    thermal: Option<LiveThermal>,
    feed: Option<RecordFeed>,
) {
    let start = Instant::now();
    let mut state = DashboardState::new("training");
    let mut last_draw = Instant::now() - FRAME;
    let mut close = false;
    let mut wait_for_key = false;
    loop {
        let timeout = FRAME.saturating_sub(last_draw.elapsed());
        let first = match rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                close = true;
                None
            }
        };
        for msg in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            state.time_s = start.elapsed().as_secs_f64();
            match msg {
                Msg::Register(d) => state.register(&d),
                Msg::Update(split, s) => state.update(split, s),
                Msg::Progress { step, total_steps, epoch, total_epochs } => {
                    state.total_epochs = total_epochs;
                    state.observe_progress(step, total_steps, epoch, state.time_s);
                }
                Msg::Label(l) => state.label = l,
                Msg::Event(e) => state.status = Some(e),
                Msg::End => state.finished = Some("finished".to_string()),
                Msg::CloseAfterKey => {
                    close = true;
                    wait_for_key = true;
                }
                Msg::Close => close = true,
            }
        }
        if !terminal_active() {
            return; // a panic restored the terminal: stop drawing
        }
        if last_draw.elapsed() >= FRAME || close {
            state.time_s = start.elapsed().as_secs_f64();
            if let Some(f) = &feed {
                for r in f.drain() {
                    state.apply_record(&r);
                }
                state.time_s = start.elapsed().as_secs_f64();
            }
            if let Some(live) = &thermal {
                state.apply_thermal_snapshot(&live.snapshot());
            }
            if poll_keys(&controls, &mut state) {
                return;
            }
            let _ = guard.draw(&state);
            last_draw = Instant::now();
        }
        if close {
            if wait_for_key {
                state.key_help = "training finished · q close".to_string();
                let _ = guard.draw(&state);
                while terminal_active() {
                    if let Ok(true) = event::poll(FRAME)
                        && let Ok(Event::Key(k)) = event::read()
                        && matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc | KeyCode::Enter)
                    {
                        break;
                    }
                }
            }
            return;
        }
    }
}

/// Reads pending key presses into the controls; `true` on a forced quit (terminal restored,
/// process exits).
fn poll_keys(controls: &TrainControls, state: &mut DashboardState) -> bool {
    while let Ok(true) = event::poll(Duration::ZERO) {
        let Ok(ev) = event::read() else { break };
        if let Event::Key(k) = ev {
            let action = controls.handle_key(k);
            if action == KeyAction::ForceQuit {
                restore_terminal();
                eprintln!("interrupted twice: exiting without a checkpoint");
                std::process::exit(130);
            }
            if let Some(m) = action.message() {
                state.status = Some(m.to_string());
            }
        }
    }
    false
}

impl Drop for DashboardRenderer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The panic hook restored the terminal; the render thread sees it and stops.
            return;
        }
        self.send(Msg::Close);
        self.join();
        if let Some(s) = self.summary.take() {
            println!("{s}");
        }
    }
}

impl MetricsRendererTraining for DashboardRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.send(Msg::Update(Split::Train, state));
    }

    fn update_valid(&mut self, state: MetricState) {
        self.send(Msg::Update(Split::Eval, state));
    }

    fn on_train_end(&mut self, summary: Option<LearnerSummary>) -> Result<(), Box<dyn std::error::Error>> {
        self.summary = summary;
        self.send(Msg::End);
        Ok(())
    }
}

impl MetricsRendererEvaluation for DashboardRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.send(Msg::Update(Split::Eval, state));
    }

    fn on_test_end(&mut self, summary: Option<LearnerSummary>) -> Result<(), Box<dyn std::error::Error>> {
        if summary.is_some() {
            self.summary = summary;
        }
        Ok(())
    }
}

impl TrainingProgressLogger for DashboardRenderer {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, total_items: Option<usize>, label: Option<&str>) {
        self.progress.start(total_epochs, starting_epoch, total_items);
        if let Some(l) = label {
            self.send(Msg::Label(l.to_string()));
        }
        self.send_progress();
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.progress.update_epoch(epoch);
        self.send_progress();
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.progress.start_split(split, total_items);
        self.send_progress();
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.progress.update_split(items_processed) {
            self.send_progress();
        }
    }

    fn end_split(&mut self) {
        self.progress.end_split();
    }

    fn end(&mut self) {
        self.send(Msg::End);
    }

    fn log_event_training(&mut self, event: String) {
        // burn-train sends "Iteration" after every step: a tick, not news for the status line.
        if event != "Iteration" {
            self.send(Msg::Event(event));
        }
    }
}

impl EvaluationProgressLogger for DashboardRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, _total_items: usize) {
        self.send(Msg::Event(format!("evaluating {name}")));
    }

    fn update_test_progress(&mut self, _items_processed: usize) {}

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, event: String) {
        self.send(Msg::Event(event));
    }
}

impl MetricsRenderer for DashboardRenderer {
    fn manual_close(&mut self) {
        self.send(Msg::CloseAfterKey);
        self.join();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.send(Msg::Register(definition));
    }
}

/// The dashboard when stdout is a terminal, else one-line progress records ([`PlainRenderer`]).
pub fn renderer_for_stdout(controls: TrainControls) -> Box<dyn MetricsRenderer> {
    renderer_for_stdout_with_thermal(controls, None)
}

/// [`renderer_for_stdout`] following a thermal scheduler live (`ThermalScheduler::live`). If the
/// terminal cannot be set up, falls back to the plain renderer with a warning on stderr.
pub fn renderer_for_stdout_with_thermal(
    controls: TrainControls,
    thermal: Option<LiveThermal>,
) -> Box<dyn MetricsRenderer> {
    renderer_with_feed(controls, thermal, None)
}

/// The full-screen dashboard when stdout is a terminal (applying `feed`'s records), else the
/// plain renderer (also fed).
pub fn renderer_with_feed(
    controls: TrainControls,
    thermal: Option<LiveThermal>,
    feed: Option<RecordFeed>,
) -> Box<dyn MetricsRenderer> {
    if std::io::stdout().is_terminal() {
        match DashboardRenderer::with_feed(controls, thermal, feed.clone()) {
            Ok(r) => return Box::new(r),
            Err(e) => eprintln!("warning: cannot start the terminal dashboard ({e}); printing progress lines"),
        }
    }
    Box::new(PlainRenderer::new().with_feed(feed))
}
