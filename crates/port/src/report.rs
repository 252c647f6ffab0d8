//! The port report: for every target tensor, whether it was ported (source values unchanged),
//! transformed (from source values) or initialised (no source), with its norm; as JSON and as
//! a readable table.

use serde::Serialize;

use crate::transforms::stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Ported,
    Transformed,
    Initialised,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Ported => "ported",
            Action::Transformed => "transformed",
            Action::Initialised => "initialised",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    pub action: Action,
    /// Source tensor(s), comma-separated; empty when initialised.
    pub source: String,
    /// Transform applied (`vocab_extract`, `pad_rms_norm`, `moe_project`, `copy_perturb`, ...).
    pub transform: String,
    pub norm: f64,
    pub mean: f64,
    pub std: f64,
}

impl TensorEntry {
    pub fn new(
        name: &str,
        shape: &[usize],
        dtype: String,
        action: Action,
        source: &str,
        transform: &str,
        values: &[f32],
    ) -> Self {
        let (norm, mean, std) = stats(values);
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            action,
            source: source.into(),
            transform: transform.into(),
            norm,
            mean,
            std,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SpecialToken {
    pub token: String,
    pub old_id: u32,
    pub new_id: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct VocabSummary {
    pub method: String,
    pub size: usize,
    pub chat_special_tokens: Vec<SpecialToken>,
    /// Kept tokens whose old id has no row in the source embedding (they keep their initialisation).
    pub rows_without_source: usize,
    pub tokenizer: Option<String>,
    pub merges_kept: Option<usize>,
    pub merges_total: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub source: String,
    pub output: String,
    pub seed: u64,
    pub target_config: bit_axon::BitAxonConfig,
    pub vocab: VocabSummary,
    pub tensors: Vec<TensorEntry>,
    /// Peak resident memory of the process (VmHWM) when the port finished, where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
}

impl PortReport {
    pub fn count(&self, action: Action) -> usize {
        self.tensors.iter().filter(|t| t.action == action).count()
    }

    /// A fixed-width table, one row per tensor, and a summary line.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<44} {:<18} {:<5} {:<12} {:<16} {:>12} {:>10}\n",
            "target tensor", "shape", "dtype", "action", "transform", "norm", "std"
        );
        for t in &self.tensors {
            s += &format!(
                "{:<44} {:<18} {:<5} {:<12} {:<16} {:>12.4} {:>10.5}\n",
                t.name,
                format!("{:?}", t.shape),
                t.dtype,
                t.action.name(),
                t.transform,
                t.norm,
                t.std
            );
        }
        s += &format!(
            "{} tensors: {} ported, {} transformed, {} initialised; vocabulary: {} ({} tokens",
            self.tensors.len(),
            self.count(Action::Ported),
            self.count(Action::Transformed),
            self.count(Action::Initialised),
            self.vocab.method,
            self.vocab.size,
        );
        if let (Some(k), Some(t)) = (self.vocab.merges_kept, self.vocab.merges_total) {
            s += &format!(", {k} of {t} merges");
        }
        s += ")\n";
        if let Some(p) = self.peak_rss_bytes {
            s += &format!("peak resident memory (VmHWM): {:.1} MiB\n", p as f64 / (1 << 20) as f64);
        }
        s
    }
}

/// VmHWM of this process from `/proc/self/status` (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
