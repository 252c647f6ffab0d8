//! The two loaders burn-train iterates, for any kind of batch: [`StepLoader`] replays a
//! deterministic, seekable stream step by step (so a resumed run sees exactly the batches the
//! uninterrupted one would have), [`FixedLoader`] serves a fixed list (evaluation).

use std::sync::{Arc, Mutex};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;

/// A micro-batch held on the host until burn-train asks for it.
pub trait HostItem: Clone + Send + Sync + 'static {
    type Batch: Send + 'static;
    /// The device tensors; `pad_id` fills positions past a row's end where the batch pads.
    fn to_device(&self, pad_id: u32, device: &Device) -> Self::Batch;
}

/// Each optimizer step's micro-batches, a pure function of the step.
pub trait StepSource: Send + 'static {
    type Item: HostItem;
    fn step_batches(&mut self, step: u64) -> Vec<Self::Item>;
    /// Micro-batches per step.
    fn grad_accum(&self) -> usize;
}

/// Training loader: the micro-batches of steps `[start_step, max_steps)`.
pub struct StepLoader<S: StepSource> {
    stream: Arc<Mutex<S>>,
    pub start_step: u64,
    pub max_steps: u64,
    accum: usize,
    pad_id: u32,
    device: Device,
}

impl<S: StepSource> StepLoader<S> {
    pub fn new(stream: S, start_step: u64, max_steps: u64, pad_id: u32, device: Device) -> Self {
        let accum = stream.grad_accum();
        Self { stream: Arc::new(Mutex::new(stream)), start_step, max_steps, accum, pad_id, device }
    }

    fn with_steps(&self, start_step: u64, max_steps: u64, device: &Device) -> Arc<Self> {
        Arc::new(Self {
            stream: self.stream.clone(),
            start_step,
            max_steps,
            accum: self.accum,
            pad_id: self.pad_id,
            device: device.clone(),
        })
    }
}

struct StepIter<'a, S: StepSource> {
    l: &'a StepLoader<S>,
    step: u64,
    pending: Vec<S::Item>,
    done: usize,
}

impl<S: StepSource> Iterator for StepIter<'_, S> {
    type Item = Result<<S::Item as HostItem>::Batch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending.is_empty() {
            if self.step >= self.l.max_steps {
                return None;
            }
            self.pending = self.l.stream.lock().expect("step stream lock").step_batches(self.step);
            self.pending.reverse();
            self.step += 1;
        }
        let h = self.pending.pop()?;
        self.done += 1;
        Some(Ok(h.to_device(self.l.pad_id, &self.l.device)))
    }
}

impl<S: StepSource> DataLoaderIterator<<S::Item as HostItem>::Batch> for StepIter<'_, S> {
    fn progress(&self) -> Progress {
        Progress::new(self.done, self.l.num_items(), Some("micro-batches".into()))
    }
}

impl<S: StepSource> DataLoader<<S::Item as HostItem>::Batch> for StepLoader<S> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<<S::Item as HostItem>::Batch> + 'a> {
        Box::new(StepIter { l: self, step: self.start_step, pending: Vec::new(), done: 0 })
    }

    fn num_items(&self) -> usize {
        (self.max_steps - self.start_step) as usize * self.accum
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<<S::Item as HostItem>::Batch>> {
        self.with_steps(self.start_step, self.max_steps, device)
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<<S::Item as HostItem>::Batch>> {
        let a = self.accum as u64;
        let max = (self.start_step + (end as u64).div_ceil(a)).min(self.max_steps);
        self.with_steps(self.start_step + start as u64 / a, max, &self.device)
    }
}

/// Evaluation loader: the same batches, in the same order, every time.
pub struct FixedLoader<H: HostItem> {
    batches: Arc<Vec<H>>,
    pad_id: u32,
    device: Device,
}

impl<H: HostItem> FixedLoader<H> {
    pub fn new(batches: Vec<H>, pad_id: u32, device: Device) -> Self {
        Self { batches: Arc::new(batches), pad_id, device }
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

struct FixedIter<'a, H: HostItem> {
    l: &'a FixedLoader<H>,
    i: usize,
}

impl<H: HostItem> Iterator for FixedIter<'_, H> {
    type Item = Result<H::Batch, DatasetError>;
    fn next(&mut self) -> Option<Self::Item> {
        let h = self.l.batches.get(self.i)?;
        self.i += 1;
        Some(Ok(h.to_device(self.l.pad_id, &self.l.device)))
    }
}

impl<H: HostItem> DataLoaderIterator<H::Batch> for FixedIter<'_, H> {
    fn progress(&self) -> Progress {
        Progress::new(self.i, self.l.batches.len(), Some("batches".into()))
    }
}

impl<H: HostItem> DataLoader<H::Batch> for FixedLoader<H> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<H::Batch> + 'a> {
        Box::new(FixedIter { l: self, i: 0 })
    }
    fn num_items(&self) -> usize {
        self.batches.len()
    }
    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<H::Batch>> {
        Arc::new(Self { batches: self.batches.clone(), pad_id: self.pad_id, device: device.clone() })
    }
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<H::Batch>> {
        let end = end.min(self.batches.len());
        let part = self.batches[start.min(end)..end].to_vec();
        Arc::new(Self { batches: Arc::new(part), pad_id: self.pad_id, device: self.device.clone() })
    }
}
