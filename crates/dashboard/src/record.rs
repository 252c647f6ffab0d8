//! `RUN_DIR/metrics.jsonl`: one JSON record per line, written by the training loop after each
//! optimizer step (`"train"`), each evaluation (`"eval"`), each thermal decision worth showing
//! (`"thermal"`) and at the end (`"end"`).
//!
//! ```json
//! {"kind":"train","step":120,"total_steps":5000,"epoch":1,"time_s":61.2,
//!  "metrics":{"Loss":3.21,"Learning Rate":0.0002,"Tokens/s":1830.0},"text":{}}
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bit_axon_thermal::{ThermalEvent, ThermalLimits, ThermalTotals};
use serde::{Deserialize, Serialize};

use crate::error::{DashboardError, Result};
use crate::names;

/// Records the training loop hands straight to a renderer: the metrics it computes itself
/// (learning rate, tokens/s, memory, gradient norm, ORPO's metrics, evaluations). A renderer
/// applies them on its next update, so a live run shows what `watch` shows from the file.
#[derive(Debug, Clone, Default)]
pub struct RecordFeed(std::sync::Arc<std::sync::Mutex<Vec<MetricsRecord>>>);

impl RecordFeed {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, r: MetricsRecord) {
        if let Ok(mut q) = self.0.lock() {
            q.push(r);
        }
    }

    /// Takes the records pushed since the last call.
    pub fn drain(&self) -> Vec<MetricsRecord> {
        self.0.lock().map(|mut q| std::mem::take(&mut *q)).unwrap_or_default()
    }
}

/// What a record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// After an optimizer step: training metrics.
    Train,
    /// After an evaluation: evaluation metrics.
    Eval,
    /// A thermal decision: temperature, state, cooling time, limits.
    Thermal,
    /// The run ended (text may hold the reason, e.g. `"Stop": "critical 101.0 °C"`).
    End,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Record kind.
    pub kind: RecordKind,
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps planned.
    pub total_steps: u64,
    /// Epoch (1-based while running).
    pub epoch: u64,
    /// Wall seconds since the start of the run.
    pub time_s: f64,
    /// Numeric metrics by name (see [`crate::names`]; other names are shown in the metrics table).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Text metrics by name.
    #[serde(default)]
    pub text: BTreeMap<String, String>,
}

impl MetricsRecord {
    /// An empty record.
    pub fn new(kind: RecordKind, step: u64, total_steps: u64, epoch: u64, time_s: f64) -> Self {
        Self { kind, step, total_steps, epoch, time_s, metrics: BTreeMap::new(), text: BTreeMap::new() }
    }

    /// Adds a numeric metric (non-finite values are skipped: JSON has no NaN).
    pub fn metric(mut self, name: &str, value: f64) -> Self {
        if value.is_finite() {
            self.metrics.insert(name.to_string(), value);
        }
        self
    }

    /// Adds a text metric.
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.text.insert(name.to_string(), value.into());
        self
    }

    /// A `"thermal"` record for a scheduler event: temperature, state, action, cumulative
    /// cooling time (paused + throttled) and, when managed, the limits.
    pub fn thermal(
        step: u64,
        total_steps: u64,
        epoch: u64,
        time_s: f64,
        event: &ThermalEvent,
        totals: &ThermalTotals,
        limits: Option<&ThermalLimits>,
    ) -> Self {
        let mut r = Self::new(RecordKind::Thermal, step, total_steps, epoch, time_s)
            .metric(names::COOLING_TIME, totals.paused_s + totals.throttled_s)
            .text(names::THERMAL_STATE, event.state.as_str())
            .text(names::THERMAL_ACTION, event.action.clone());
        if let Some(t) = event.temp_c {
            r = r.metric(names::TEMPERATURE, t);
        }
        if let Some(l) = limits {
            r = r
                .metric(names::PAUSE_LIMIT, l.pause_c)
                .metric(names::RESUME_LIMIT, l.resume_c)
                .metric(names::CRITICAL_LIMIT, l.critical_c)
                .text(names::THERMAL_POLICY, l.policy.clone());
            if let Some(s) = l.setpoint_c {
                r = r.metric(names::SETPOINT, s);
            }
            if let Some(s) = l.throttle_start_c {
                r = r.metric(names::THROTTLE_START, s);
            }
        }
        r
    }

    /// The JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a metrics record always serializes")
    }

    /// Parses one line.
    pub fn from_json(line: &str) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Appends records to `RUN_DIR/metrics.jsonl`, one flushed line each (so `watch` sees them).
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// The file name inside a run directory.
    pub const FILE_NAME: &'static str = "metrics.jsonl";

    /// Opens `run_dir/metrics.jsonl` for appending (creates it).
    pub fn create(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(Self::FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| DashboardError::Io { path: path.clone(), source })?;
        Ok(Self { path, out: BufWriter::new(file) })
    }

    /// Appends one record and flushes it.
    pub fn write(&mut self, record: &MetricsRecord) -> Result<()> {
        let io = |source| DashboardError::Io { path: self.path.clone(), source };
        writeln!(self.out, "{}", record.to_json()).map_err(io)?;
        self.out.flush().map_err(|source| DashboardError::Io { path: self.path.clone(), source })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the complete lines appended to a metrics file since `*offset` and advances it; a
/// trailing line without its newline (being written) is left for the next call. A missing
/// file gives no records. Lines that do not parse are returned as errors naming the file and
/// line, after the records that did.
pub fn tail_records(
    path: &Path,
    offset: &mut u64,
    line_no: &mut usize,
) -> Result<(Vec<MetricsRecord>, Vec<DashboardError>)> {
    let io = |source| DashboardError::Io { path: path.to_path_buf(), source };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    if len < *offset {
        // Truncated or replaced: start over.
        *offset = 0;
        *line_no = 0;
    }
    file.seek(SeekFrom::Start(*offset)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let Some(last_nl) = bytes.iter().rposition(|&b| b == b'\n') else {
        return Ok((Vec::new(), Vec::new()));
    };
    let complete = &bytes[..=last_nl];
    *offset += complete.len() as u64;
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for line in String::from_utf8_lossy(complete).lines() {
        *line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        match MetricsRecord::from_json(line) {
            Ok(r) => records.push(r),
            Err(e) => {
                errors.push(DashboardError::Parse { path: path.to_path_buf(), line: *line_no, message: e.to_string() })
            }
        }
    }
    Ok((records, errors))
}
