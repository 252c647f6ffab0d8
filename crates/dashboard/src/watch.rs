//! `train watch RUN_DIR`: the dashboard for a run going on in another process, from its
//! `metrics.jsonl`.

use std::path::Path;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};

use crate::error::{DashboardError, Result};
use crate::record::{MetricsWriter, tail_records};
use crate::state::DashboardState;
use crate::terminal::TerminalGuard;

/// Polling period of the metrics file.
const POLL: Duration = Duration::from_millis(250);

/// A dashboard fed by tailing a metrics file (no terminal): [`watch`] draws it.
#[derive(Debug)]
pub struct MetricsTail {
    path: std::path::PathBuf,
    offset: u64,
    line: usize,
    /// The dashboard's state.
    pub state: DashboardState,
}

impl MetricsTail {
    /// Tails `run_dir/metrics.jsonl` (which may not exist yet).
    pub fn new(run_dir: &Path) -> Self {
        let path = run_dir.join(MetricsWriter::FILE_NAME);
        let mut state = DashboardState::new(run_dir.display().to_string());
        state.key_help = format!("q quit · watching {} (keys p/s act in the training terminal)", path.display());
        Self { path, offset: 0, line: 0, state }
    }

    /// Applies the records appended since the last call; returns how many were applied.
    /// Unparsable lines are reported in the status line and skipped.
    pub fn poll(&mut self) -> Result<usize> {
        if !self.path.exists() {
            self.state.status = Some(format!("waiting for {}", self.path.display()));
            return Ok(0);
        }
        let (records, errors) = tail_records(&self.path, &mut self.offset, &mut self.line)?;
        for r in &records {
            self.state.apply_record(r);
        }
        self.state.status = errors.last().map(|e| e.to_string());
        if self.state.status.is_none() && self.state.finished.is_some() {
            self.state.status = Some("run ended".to_string());
        }
        Ok(records.len())
    }
}

/// Shows the dashboard for `run_dir/metrics.jsonl`, following it until `q` (or Esc / Ctrl-C).
pub fn watch(run_dir: &Path) -> Result<()> {
    if !run_dir.is_dir() {
        return Err(DashboardError::Io {
            path: run_dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a run directory"),
        });
    }
    let mut tail = MetricsTail::new(run_dir);
    let mut guard = TerminalGuard::enter().map_err(DashboardError::Terminal)?;
    loop {
        tail.poll()?;
        guard.draw(&tail.state).map_err(DashboardError::Terminal)?;
        if event::poll(POLL).map_err(DashboardError::Terminal)?
            && let Event::Key(k) = event::read().map_err(DashboardError::Terminal)?
        {
            let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
            if ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                break;
            }
        }
    }
    drop(guard);
    Ok(())
}
