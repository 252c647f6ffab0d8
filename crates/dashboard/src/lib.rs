//! Terminal training dashboard for Bit-Axon.
//!
//! - [`names`]: the metric names the training loop registers in burn-train and writes to
//!   `RUN_DIR/metrics.jsonl` (burn-train's own names for its built-in metrics).
//! - [`MetricsRecord`]: one line of `metrics.jsonl`; [`MetricsWriter`] appends them.
//! - [`DashboardState`]: everything the screen shows, as plain data, fed by
//!   [`DashboardState::apply_record`] (from the metrics file) or [`DashboardState::update`]
//!   (from burn-train's renderer calls).
//! - [`draw`]: the ratatui screen (loss curves, learning rate, tokens/s, progress with ETA,
//!   temperature with the thermal limits and state, cooling time, memory, key help).
//! - [`TrainControls`]: the keys `p` (pause / resume), `s` (save a checkpoint now) and `q`
//!   (graceful stop: checkpoint, then exit) as shared flags the training loop polls.
//! - [`DashboardRenderer`] (full screen, for a TTY) and [`PlainRenderer`] (one line per
//!   progress record, for logs) implement burn-train's `MetricsRenderer`;
//!   [`renderer_for_stdout`] picks one.
//! - [`watch`]: the same dashboard for a run going on in another process, from its metrics file.

pub mod controls;
pub mod draw;
pub mod error;
pub mod names;
pub mod plain;
pub mod record;
pub mod renderer;
pub mod state;
pub mod terminal;
pub mod watch;

pub use controls::{KeyAction, TrainControls};
pub use draw::draw;
pub use error::{DashboardError, Result};
pub use plain::{PlainRenderer, plain_line};
pub use record::{MetricsRecord, MetricsWriter, RecordFeed, RecordKind, tail_records};
pub use renderer::{DashboardRenderer, renderer_for_stdout, renderer_for_stdout_with_thermal, renderer_with_feed};
pub use state::{DashboardState, Split};
pub use watch::{MetricsTail, watch};

/// Re-exported so callers use the same version.
pub use bit_axon_thermal::{LiveThermal, ThermalLimits, ThermalState};
