//! The batch streams burn-train iterates: a training stream that is a pure function of
//! `(seed, position)` — so a resumed run continues with exactly the batches it would have seen —
//! and a fixed evaluation set.
//!
//! Training: epoch `e` visits the documents in a permutation drawn from `seed` and `e` (a new
//! order every epoch), packs them into rows, and the rows of all epochs form one endless
//! sequence; micro-batch `k` is rows `[k·B, (k+1)·B)`. Optimizer step `s` takes micro-batches
//! `[s·A, (s+1)·A)` and normalises their loss by the step's total target count.

use std::sync::{Arc, Mutex};

use bit_axon::layers::Segments;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;

use super::Encoded;
use super::pack::{Row, pack};
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
        let mut out: Vec<HostBatch> =
            rows.chunks(b).map(|c| HostBatch { rows: c.to_vec(), step_tokens: 0 }).collect();
        let total: usize = out.iter().map(HostBatch::tokens).sum();
        for h in &mut out {
            h.step_tokens = total;
        }
        out
    }
}

/// Training data loader: micro-batches of steps `[start_step, max_steps)`.
pub struct TrainLoader {
    stream: Arc<Mutex<RowStream>>,
    pub start_step: u64,
    pub max_steps: u64,
    grad_accum: usize,
    device: Device,
}

impl TrainLoader {
    pub fn new(stream: RowStream, start_step: u64, max_steps: u64, device: Device) -> Self {
        let grad_accum = stream.spec.grad_accum;
        Self { stream: Arc::new(Mutex::new(stream)), start_step, max_steps, grad_accum, device }
    }
}

struct TrainIter<'a> {
    loader: &'a TrainLoader,
    step: u64,
    pending: Vec<HostBatch>,
    done: usize,
}

impl Iterator for TrainIter<'_> {
    type Item = Result<LmBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending.is_empty() {
            if self.step >= self.loader.max_steps {
                return None;
            }
            let mut s = self.loader.stream.lock().expect("row stream lock");
            self.pending = s.step_batches(self.step);
            self.pending.reverse();
            self.step += 1;
        }
        let h = self.pending.pop()?;
        self.done += 1;
        Some(Ok(h.to_batch(&self.loader.device)))
    }
}

impl DataLoaderIterator<LmBatch> for TrainIter<'_> {
    fn progress(&self) -> Progress {
        let total = (self.loader.max_steps - self.loader.start_step) as usize * self.loader.grad_accum;
        Progress::new(self.done, total, Some("micro-batches".into()))
    }
}

impl DataLoader<LmBatch> for TrainLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<LmBatch> + 'a> {
        Box::new(TrainIter { loader: self, step: self.start_step, pending: Vec::new(), done: 0 })
    }

    fn num_items(&self) -> usize {
        (self.max_steps - self.start_step) as usize * self.grad_accum
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<LmBatch>> {
        Arc::new(Self {
            stream: self.stream.clone(),
            start_step: self.start_step,
            max_steps: self.max_steps,
            grad_accum: self.grad_accum,
            device: device.clone(),
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<LmBatch>> {
        let a = self.grad_accum as u64;
        Arc::new(Self {
            stream: self.stream.clone(),
            start_step: self.start_step + start as u64 / a,
            max_steps: (self.start_step + (end as u64).div_ceil(a)).min(self.max_steps),
            grad_accum: self.grad_accum,
            device: self.device.clone(),
        })
    }
}

/// Evaluation batches: the eval documents packed in file order, fixed for the whole run.
#[derive(Clone)]
pub struct EvalLoader {
    batches: Arc<Vec<HostBatch>>,
    device: Device,
}

impl EvalLoader {
    pub fn new(docs: &[Encoded], spec: &StreamSpec, max_batches: usize, device: Device) -> Self {
        let rows = pack(docs.iter(), spec.seq_len, spec.pad_id, spec.pack);
        let mut batches: Vec<HostBatch> =
            rows.chunks(spec.batch_size).map(|c| HostBatch { rows: c.to_vec(), step_tokens: 0 }).collect();
        if max_batches > 0 {
            batches.truncate(max_batches);
        }
        for b in &mut batches {
            b.step_tokens = b.tokens();
        }
        Self { batches: Arc::new(batches), device }
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

struct EvalIter<'a> {
    loader: &'a EvalLoader,
    i: usize,
}

impl Iterator for EvalIter<'_> {
    type Item = Result<LmBatch, DatasetError>;
    fn next(&mut self) -> Option<Self::Item> {
        let h = self.loader.batches.get(self.i)?;
        self.i += 1;
        Some(Ok(h.to_batch(&self.loader.device)))
    }
}

impl DataLoaderIterator<LmBatch> for EvalIter<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.i, self.loader.batches.len(), Some("batches".into()))
    }
}

impl DataLoader<LmBatch> for EvalLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<LmBatch> + 'a> {
        Box::new(EvalIter { loader: self, i: 0 })
    }
    fn num_items(&self) -> usize {
        self.batches.len()
    }
    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<LmBatch>> {
        Arc::new(Self { batches: self.batches.clone(), device: device.clone() })
    }
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<LmBatch>> {
        let end = end.min(self.batches.len());
        Arc::new(Self { batches: Arc::new(self.batches[start.min(end)..end].to_vec()), device: self.device.clone() })
    }
}
