//! The batch streams burn-train iterates: a training stream that is a pure function of
//! `(seed, position)` — so a resumed run continues with exactly the batches it would have seen —
//! and a fixed evaluation set.
//!
//! Training: epoch `e` visits the documents in a permutation drawn from `seed` and `e` (a new
//! order every epoch), packs them into rows, and the rows of all epochs form one endless
//! sequence; micro-batch `k` is rows `[k·B, (k+1)·B)`. Optimizer step `s` takes micro-batches
//! `[s·A, (s+1)·A)` and normalises their loss by the step's total target count.

use std::sync::Arc;

use bit_axon::layers::Segments;
use burn::prelude::*;

use super::Encoded;
use super::pack::{Row, pack};
use super::step_loader::{FixedLoader, HostItem, StepLoader, StepSource};
use crate::lm::LmBatch;
use crate::rng::SplitMix64;

/// Host-side rows of one micro-batch.
#[derive(Debug, Clone)]
pub struct HostBatch {
    pub rows: Vec<Row>,
    pub step_tokens: usize,
}

impl HostBatch {
    pub fn tokens(&self) -> usize {
        self.rows.iter().map(Row::targets).sum()
    }

    /// Tensors on `device`.
    pub fn to_batch(&self, device: &Device) -> LmBatch {
        let (b, l) = (self.rows.len(), self.rows[0].ids.len());
        let mut ids = Vec::with_capacity(b * l);
        let mut targets = Vec::with_capacity(b * l);
        let mut weights = Vec::with_capacity(b * l);
        let mut seg = Vec::with_capacity(b * l);
        for r in &self.rows {
            ids.extend(r.ids.iter().map(|&i| i as i64));
            seg.extend_from_slice(&r.seg);
            for t in 0..l {
                let next = t + 1 < l && r.train[t + 1] && r.seg[t + 1] == r.seg[t];
                targets.push(if t + 1 < l { r.ids[t + 1] as i64 } else { 0 });
                weights.push(if next { 1.0f32 } else { 0.0 });
            }
        }
        LmBatch {
            ids: Tensor::from_data(TensorData::new(ids, [b, l]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b, l]), device),
            weights: Tensor::from_data(TensorData::new(weights, [b, l]), device),
            segments: Segments::new(seg, b, l),
            tokens: self.tokens(),
            step_tokens: self.step_tokens,
            processed: self.rows.iter().map(|r| r.used).sum(),
        }
    }
}

/// Shape of the training stream.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub seed: u64,
    pub seq_len: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub pad_id: u32,
    pub pack: bool,
}

/// The endless, deterministic sequence of training rows.
#[derive(Debug)]
pub struct RowStream {
    docs: Arc<Vec<Encoded>>,
    spec: StreamSpec,
    /// Rows of epochs `[first_epoch, ..)` not yet consumed, and the index of the first.
    buffer: Vec<Row>,
    next_epoch: u64,
    /// Global index of `buffer[0]`.
    buffer_start: u64,
}

impl RowStream {
    pub fn new(docs: Arc<Vec<Encoded>>, spec: StreamSpec) -> Self {
        Self { docs, spec, buffer: Vec::new(), next_epoch: 0, buffer_start: 0 }
    }

    /// Rows of epoch `e`.
    pub fn epoch_rows(&self, e: u64) -> Vec<Row> {
        let mut order: Vec<usize> = (0..self.docs.len()).collect();
        SplitMix64::new(self.spec.seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(e + 1)).shuffle(&mut order);
        pack(order.iter().map(|&i| &self.docs[i]), self.spec.seq_len, self.spec.pad_id, self.spec.pack)
    }

    /// Global rows `[start, start + n)`; earlier rows are forgotten.
    pub fn rows(&mut self, start: u64, n: usize) -> Vec<Row> {
        assert!(start >= self.buffer_start, "the row stream only moves forward");
        while self.buffer_start + (self.buffer.len() as u64) < start + n as u64 {
            let rows = self.epoch_rows(self.next_epoch);
            self.next_epoch += 1;
            self.buffer.extend(rows);
        }
        let skip = (start - self.buffer_start) as usize;
        self.buffer.drain(..skip);
        self.buffer_start = start;
        self.buffer[..n].to_vec()
    }

    /// The micro-batches of optimizer step `step` (0-based).
    pub fn step_batches(&mut self, step: u64) -> Vec<HostBatch> {
        let (b, a) = (self.spec.batch_size, self.spec.grad_accum);
        let first_row = step * (a * b) as u64;
        let rows = self.rows(first_row, a * b);
        let mut out: Vec<HostBatch> = rows.chunks(b).map(|c| HostBatch { rows: c.to_vec(), step_tokens: 0 }).collect();
        let total: usize = out.iter().map(HostBatch::tokens).sum();
        for h in &mut out {
            h.step_tokens = total;
        }
        out
    }
}

impl StepSource for RowStream {
    type Item = HostBatch;
    fn step_batches(&mut self, step: u64) -> Vec<HostBatch> {
        RowStream::step_batches(self, step)
    }
    fn grad_accum(&self) -> usize {
        self.spec.grad_accum
    }
}

impl HostItem for HostBatch {
    type Batch = LmBatch;
    /// Rows are padded when packed; `pad_id` is not needed again.
    fn to_device(&self, _pad_id: u32, device: &Device) -> LmBatch {
        self.to_batch(device)
    }
}

/// Training data loader: micro-batches of steps `[start_step, max_steps)`.
pub type TrainLoader = StepLoader<RowStream>;

/// Evaluation batches: the eval documents packed in file order, fixed for the whole run.
pub type EvalLoader = FixedLoader<HostBatch>;

/// The evaluation batches of `docs` (at most `max_batches` when not 0).
pub fn eval_loader(docs: &[Encoded], spec: &StreamSpec, max_batches: usize, device: Device) -> EvalLoader {
    let rows = pack(docs.iter(), spec.seq_len, spec.pad_id, spec.pack);
    let mut batches: Vec<HostBatch> =
        rows.chunks(spec.batch_size).map(|c| HostBatch { rows: c.to_vec(), step_tokens: 0 }).collect();
    if max_batches > 0 {
        batches.truncate(max_batches);
    }
    for b in &mut batches {
        b.step_tokens = b.tokens();
    }
    FixedLoader::new(batches, spec.pad_id, device)
}
