//! `RUN_DIR/metrics.jsonl`: one JSON record per optimizer step, evaluation and run end, read by
//! `train watch` and by people (`jq`, pandas).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
pub use bit_axon_dashboard::{MetricsRecord, RecordKind};

pub struct MetricsFile {
    path: PathBuf,
}

impl MetricsFile {
    /// Opens `dir/metrics.jsonl`; on resume (`keep_until = Some(step)`) drops records of steps
    /// after the checkpoint, which the resumed run will produce again.
    pub fn open(dir: &Path, keep_until: Option<u64>) -> Result<Self> {
        let path = dir.join("metrics.jsonl");
        match keep_until {
            None => {
                std::fs::write(&path, b"").with_context(|| format!("creating {}", path.display()))?;
            }
            Some(step) => {
                let old = std::fs::read_to_string(&path).unwrap_or_default();
                let kept: Vec<&str> = old
                    .lines()
                    .filter(|l| {
                        serde_json::from_str::<MetricsRecord>(l)
                            .is_ok_and(|r| r.step <= step && r.kind != RecordKind::End)
                    })
                    .collect();
                let tmp = path.with_extension("jsonl.tmp");
                let mut text = kept.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &path).with_context(|| format!("renaming onto {}", path.display()))?;
            }
        }
        Ok(Self { path })
    }

    pub fn append(&self, r: &MetricsRecord) -> Result<()> {
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&self.path)?;
        writeln!(f, "{}", serde_json::to_string(r)?)?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Vec<MetricsRecord>> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1)))
            .collect()
    }
}
