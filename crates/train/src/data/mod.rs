//! Training data: reading and checking files, the chat template with loss masks, packing, and
//! the deterministic, resumable batch stream.

pub mod encode;
pub mod format;
pub mod loader;
pub mod pack;
pub mod preference;
pub mod step_loader;

use std::path::PathBuf;

use anyhow::{Result, bail};
use bit_axon_inference::{ChatTemplate, TextTokenizer};

use crate::config::{DataConfig, OnError};
pub use encode::Encoded;
pub use format::{Example, LineError};

/// Encoded, truncated documents ready for packing, and what was dropped on the way.
#[derive(Debug, Default)]
pub struct Documents {
    pub docs: Vec<Encoded>,
    /// Lines that failed validation (skipped under `on_error = "skip"`).
    pub bad_lines: Vec<LineError>,
    /// Documents dropped because truncation to `max_seq_len` removed every trained token.
    pub dropped_truncated: usize,
    /// Documents cut to `max_seq_len`.
    pub truncated: usize,
}

/// Reads, validates, encodes and truncates `files`. With `on_error = "stop"` any bad line is an
/// error listing every bad line (`file:line: problem`); with `"skip"` they are returned in
/// `bad_lines` for the caller to report.
pub fn load_documents(
    files: &[PathBuf],
    cfg: &DataConfig,
    tok: &TextTokenizer,
    tpl: &ChatTemplate,
) -> Result<Documents> {
    let mut out = Documents::default();
    for f in files {
        let parsed = format::read_file(f, cfg.format, cfg.system_prompt.as_deref())
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        out.bad_lines.extend(parsed.errors);
        for ex in &parsed.examples {
            let enc = encode::encode(tok, tpl, ex, cfg.mask_prompt)?;
            let full = enc.ids.len();
            let enc = pack::truncate(enc, cfg.max_seq_len);
            if enc.ids.len() < full {
                out.truncated += 1;
            }
            if pack::doc_targets(&enc) == 0 {
                out.dropped_truncated += 1;
                continue;
            }
            out.docs.push(enc);
        }
    }
    if !out.bad_lines.is_empty() && cfg.on_error == OnError::Stop {
        let n = out.bad_lines.len();
        let list: Vec<String> = out.bad_lines.iter().take(20).map(|e| format!("  {e}")).collect();
        let more = if n > 20 { format!("\n  ... and {} more", n - 20) } else { String::new() };
        bail!(
            "{n} bad line(s) in the training data (set data.on_error = \"skip\" to train without them):\n{}{more}",
            list.join("\n")
        );
    }
    if out.docs.is_empty() {
        bail!("no usable training documents in {files:?}");
    }
    Ok(out)
}
