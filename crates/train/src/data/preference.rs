//! Preference pairs for ORPO: `{"prompt", "chosen", "rejected"}` JSONL lines, each field a string
//! or a list of chat messages (a string prompt is one user turn, a string response one assistant
//! turn). Encoded with the chat template: the prompt carries no loss, each response's assistant
//! content and closing `<|im_end|>` do (as in SFT). Problems are reported as `file:line: ...`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use bit_axon::layers::Segments;
use bit_axon_inference::{ChatTemplate, Message, TextTokenizer};
use burn::prelude::*;
use serde_json::Value;

use super::encode::{Encoded, encode};
use super::format::{Example, LineError};
use super::step_loader::{FixedLoader, HostItem, StepLoader, StepSource};
use crate::config::{DataConfig, OnError};
use crate::rng::SplitMix64;

/// One encoded pair: the same prompt followed by each response.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub chosen: Encoded,
    pub rejected: Encoded,
}

fn messages(v: &Value, field: &str, default_role: &str) -> Result<Vec<Message>, String> {
    match v {
        Value::String(s) => {
            if s.trim().is_empty() {
                return Err(format!("`{field}` is empty"));
            }
            Ok(vec![Message::new(default_role, s)])
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let o = m.as_object().ok_or_else(|| format!("{field}[{i}] must be an object"))?;
                let get = |k: &str| match o.get(k) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(format!("{field}[{i}]: `{k}` must be a string")),
                    None => Err(format!("{field}[{i}]: missing `{k}`")),
                };
                let role = get("role")?;
                if !matches!(role.as_str(), "system" | "user" | "assistant") {
                    return Err(format!("{field}[{i}]: unknown role `{role}` (system, user, assistant)"));
                }
                Ok(Message::new(&role, &get("content")?))
            })
            .collect(),
        Value::Null => Err(format!("`{field}` is null")),
        _ => Err(format!("`{field}` must be a string or a list of messages")),
    }
}

/// Parses one line into (prompt, chosen, rejected) conversations.
pub fn parse_pair(line: &str) -> Result<(Vec<Message>, Vec<Message>, Vec<Message>), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON ({e})"))?;
    let o = v.as_object().ok_or("expected a JSON object")?;
    let field = |k: &str| o.get(k).ok_or_else(|| format!("missing `{k}`"));
    let prompt = messages(field("prompt")?, "prompt", "user")?;
    let chosen = messages(field("chosen")?, "chosen", "assistant")?;
    let rejected = messages(field("rejected")?, "rejected", "assistant")?;
    for (name, r) in [("chosen", &chosen), ("rejected", &rejected)] {
        if !r.iter().any(|m| m.role == "assistant" && !m.content.trim().is_empty()) {
            return Err(format!("`{name}` has no non-empty assistant message"));
        }
    }
    Ok((prompt, chosen, rejected))
}

/// Encodes `prompt + response` with loss only on the response's assistant content.
fn encode_pair(tok: &TextTokenizer, tpl: &ChatTemplate, prompt: &[Message], resp: &[Message]) -> Result<Encoded> {
    let p = encode(tok, tpl, &Example::Chat(prompt.to_vec()), true)?;
    let mut r = encode(tok, tpl, &Example::Chat(resp.to_vec()), true)?;
    let mut e = Encoded { ids: p.ids, train: vec![false; p.train.len()] };
    e.ids.append(&mut r.ids);
    e.train.append(&mut r.train);
    Ok(e)
}

/// Pairs read from `files`, with the bad lines (an error under `on_error = "stop"`).
#[derive(Debug, Default)]
pub struct Pairs {
    pub pairs: Vec<Pair>,
    pub bad_lines: Vec<LineError>,
    /// Pairs dropped because truncation left a response without trained tokens.
    pub dropped_truncated: usize,
}

pub fn load_pairs(files: &[PathBuf], cfg: &DataConfig, tok: &TextTokenizer, tpl: &ChatTemplate) -> Result<Pairs> {
    let mut out = Pairs::default();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| LineError { file: f.clone(), line: i + 1, message };
            match parse_pair(line) {
                Err(m) => out.bad_lines.push(bad(m)),
                Ok((mut prompt, chosen, rejected)) => {
                    if let Some(sys) = &cfg.system_prompt
                        && prompt.first().is_none_or(|m| m.role != "system")
                    {
                        prompt.insert(0, Message::system(sys));
                    }
                    let cut = |e: Encoded| super::pack::truncate(e, cfg.max_seq_len);
                    let c = cut(encode_pair(tok, tpl, &prompt, &chosen)?);
                    let r = cut(encode_pair(tok, tpl, &prompt, &rejected)?);
                    if super::pack::doc_targets(&c) == 0 || super::pack::doc_targets(&r) == 0 {
                        out.dropped_truncated += 1;
                        continue;
                    }
                    out.pairs.push(Pair { chosen: c, rejected: r });
                }
            }
        }
    }
    if !out.bad_lines.is_empty() && cfg.on_error == OnError::Stop {
        let list: Vec<String> = out.bad_lines.iter().take(20).map(|e| format!("  {e}")).collect();
        bail!(
            "{} bad line(s) in the preference data (set data.on_error = \"skip\" to train without them):\n{}",
            out.bad_lines.len(),
            list.join("\n")
        );
    }
    if out.pairs.is_empty() {
        bail!("no usable preference pairs in {files:?}");
    }
    Ok(out)
}

/// A micro-batch of `P` pairs as one `[2P, L]` forward: rows `0..P` chosen, `P..2P` rejected.
#[derive(Debug, Clone)]
pub struct PairBatch {
    pub ids: Tensor<2, Int>,
    pub targets: Tensor<2, Int>,
    /// `[2P, L]` 1.0 on response targets.
    pub weights: Tensor<2>,
    pub segments: Segments,
    pub pairs: usize,
    /// Response targets of the chosen rows (the NLL term's count).
    pub chosen_tokens: usize,
    /// Totals over the whole optimizer step, for normalisation across micro-batches.
    pub step_pairs: usize,
    pub step_chosen_tokens: usize,
    pub processed: usize,
}

fn targets_of(e: &Encoded) -> usize {
    e.train.iter().skip(1).filter(|&&t| t).count()
}

/// Host-side pairs of one micro-batch.
#[derive(Debug, Clone)]
pub struct HostPairs {
    pub pairs: Vec<Pair>,
    pub step_pairs: usize,
    pub step_chosen_tokens: usize,
}

impl HostPairs {
    pub fn chosen_tokens(&self) -> usize {
        self.pairs.iter().map(|p| targets_of(&p.chosen)).sum()
    }

    pub fn to_batch(&self, pad_id: u32, device: &Device) -> PairBatch {
        let rows: Vec<&Encoded> =
            self.pairs.iter().map(|p| &p.chosen).chain(self.pairs.iter().map(|p| &p.rejected)).collect();
        let l = rows.iter().map(|r| r.ids.len()).max().unwrap_or(1).max(2);
        let b = rows.len();
        let (mut ids, mut targets, mut weights, mut seg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let n = r.ids.len();
            for t in 0..l {
                ids.push(if t < n { r.ids[t] } else { pad_id } as i64);
                seg.push(if t < n { 0 } else { 1 });
                let next = t + 1 < n;
                targets.push(if next { r.ids[t + 1] as i64 } else { 0 });
                weights.push(if next && r.train[t + 1] { 1.0f32 } else { 0.0 });
            }
        }
        PairBatch {
            ids: Tensor::from_data(TensorData::new(ids, [b, l]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b, l]), device),
            weights: Tensor::from_data(TensorData::new(weights, [b, l]), device),
            segments: Segments::new(seg, b, l),
            pairs: self.pairs.len(),
            chosen_tokens: self.chosen_tokens(),
            step_pairs: self.step_pairs,
            step_chosen_tokens: self.step_chosen_tokens,
            processed: rows.iter().map(|r| r.ids.len()).sum(),
        }
    }
}

/// The endless, deterministic pair order (a fresh permutation per epoch), seekable by step.
pub struct PairStream {
    pairs: Arc<Vec<Pair>>,
    seed: u64,
    batch: usize,
    accum: usize,
    perm: (u64, Vec<usize>),
}

impl PairStream {
    pub fn new(pairs: Arc<Vec<Pair>>, seed: u64, batch: usize, accum: usize) -> Self {
        Self { pairs, seed, batch, accum, perm: (u64::MAX, Vec::new()) }
    }

    fn at(&mut self, g: u64) -> Pair {
        let n = self.pairs.len() as u64;
        let (e, i) = (g / n, (g % n) as usize);
        if self.perm.0 != e {
            let mut order: Vec<usize> = (0..n as usize).collect();
            SplitMix64::new(self.seed ^ 0x5851_f42d_4c95_7f2du64.wrapping_mul(e + 1)).shuffle(&mut order);
            self.perm = (e, order);
        }
        self.pairs[self.perm.1[i]].clone()
    }

    pub fn step_batches(&mut self, step: u64) -> Vec<HostPairs> {
        let per_step = (self.batch * self.accum) as u64;
        let first = step * per_step;
        let all: Vec<Pair> = (0..per_step).map(|k| self.at(first + k)).collect();
        let step_pairs = all.len();
        let step_chosen_tokens: usize = all.iter().map(|p| targets_of(&p.chosen)).sum();
        all.chunks(self.batch).map(|c| HostPairs { pairs: c.to_vec(), step_pairs, step_chosen_tokens }).collect()
    }
}

impl StepSource for PairStream {
    type Item = HostPairs;
    fn step_batches(&mut self, step: u64) -> Vec<HostPairs> {
        PairStream::step_batches(self, step)
    }
    fn grad_accum(&self) -> usize {
        self.accum
    }
}

impl HostItem for HostPairs {
    type Batch = PairBatch;
    fn to_device(&self, pad_id: u32, device: &Device) -> PairBatch {
        self.to_batch(pad_id, device)
    }
}

/// Training pairs of steps `[start_step, max_steps)`.
pub type PairLoader = StepLoader<PairStream>;

/// Held-out pairs in file order, in batches.
pub type PairEvalLoader = FixedLoader<HostPairs>;

/// The evaluation batches of `pairs` (at most `max_batches` when not 0).
pub fn pair_eval_loader(
    pairs: &[Pair],
    batch: usize,
    max_batches: usize,
    pad_id: u32,
    device: Device,
) -> PairEvalLoader {
    let mut batches: Vec<HostPairs> = pairs
        .chunks(batch.max(1))
        .map(|c| HostPairs { pairs: c.to_vec(), step_pairs: 0, step_chosen_tokens: 0 })
        .collect();
    if max_batches > 0 {
        batches.truncate(max_batches);
    }
    for b in &mut batches {
        b.step_pairs = b.pairs.len();
        b.step_chosen_tokens = b.chosen_tokens();
    }
    FixedLoader::new(batches, pad_id, device)
}
