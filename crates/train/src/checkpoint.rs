//! Run checkpoints: `RUN_DIR/checkpoints/step-00000120/` holding the adapter (PEFT layout), the
//! optimizer and scheduler records, `state.json` (step, data position, bad-step count, seed) and
//! the resolved config. Each is written under `.tmp-step-…` and renamed when complete, so a
//! crash mid-save leaves the previous checkpoint as it was; the last `keep_last` are kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::store::ModuleRecord;
use burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
};
use burn::train::metric::store::EventStoreClient;
use serde::{Deserialize, Serialize};

/// What a checkpoint records beyond tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    /// Optimizer steps completed (including skipped bad steps).
    pub step: u64,
    /// Micro-batches consumed.
    pub micro_batches: u64,
    /// Consecutive non-finite steps at this point.
    pub bad_steps: u32,
    pub seed: u64,
    /// Mean train loss of the last step.
    pub train_loss: f64,
}

pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run).join(format!("step-{step:08}"))
}

pub fn tmp_dir(run: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run).join(format!(".tmp-step-{step:08}"))
}

/// Complete checkpoints, oldest first.
pub fn list(run: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(checkpoints_dir(run)) else { return Vec::new() };
    let mut out: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path().join("state.json").is_file().then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The newest complete checkpoint and its state.
pub fn latest(run: &Path) -> Result<Option<(PathBuf, RunState)>> {
    let Some((_, dir)) = list(run).pop() else { return Ok(None) };
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let state = serde_json::from_str(&text).with_context(|| format!("{}: invalid checkpoint state", p.display()))?;
    Ok(Some((dir, state)))
}

/// Deletes all but the newest `keep` checkpoints, and leftovers of interrupted saves.
pub fn prune(run: &Path, keep: usize) -> Result<()> {
    let all = list(run);
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if let Ok(rd) = std::fs::read_dir(checkpoints_dir(run)) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(".tmp-step-") {
                std::fs::remove_dir_all(e.path()).ok();
            }
        }
    }
    Ok(())
}

/// Moves a finished staging directory into place.
pub fn commit(run: &Path, step: u64) -> Result<PathBuf> {
    let (tmp, dst) = (tmp_dir(run, step), step_dir(run, step));
    if dst.exists() {
        std::fs::remove_dir_all(&dst).with_context(|| format!("replacing {}", dst.display()))?;
    }
    std::fs::rename(&tmp, &dst).with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))?;
    Ok(dst)
}

/// Written files, by `(name, step)`, shared with the waiting training loop.
#[derive(Default)]
pub struct Written {
    done: Mutex<BTreeSet<(String, usize)>>,
    cv: Condvar,
}

impl Written {
    /// Waits until every name in `names` is written for `step` (bounded, so a failed write in
    /// burn-train's checkpointer thread cannot hang the run).
    pub fn wait(&self, names: &[&str], step: usize) -> Result<()> {
        let mut done = self.done.lock().expect("checkpoint latch");
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        while !names.iter().all(|n| done.contains(&(n.to_string(), step))) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                bail!("checkpoint records for step {step} were not written in time");
            }
            done = self.cv.wait_timeout(done, left).expect("checkpoint latch").0;
        }
        Ok(())
    }

    fn mark(&self, name: &str, step: usize) {
        self.done.lock().expect("checkpoint latch").insert((name.to_string(), step));
        self.cv.notify_all();
    }
}

/// burn-train checkpointer writing `{name}.bpk` into the staging directory of a step.
pub struct StagedCheckpointer {
    pub run: PathBuf,
    pub name: &'static str,
    pub written: Arc<Written>,
}

impl<R: Checkpoint> Checkpointer<R> for StagedCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let dir = tmp_dir(&self.run, epoch as u64);
        std::fs::create_dir_all(&dir).map_err(CheckpointerError::IOError)?;
        record.save(dir.join(format!("{}.bpk", self.name)))?;
        self.written.mark(self.name, epoch);
        Ok(())
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(()) // retention is decided by `prune`, over whole directories
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(step_dir(&self.run, epoch as u64).join(format!("{}.bpk", self.name)))
    }
}

/// The module record is not written through burn-train: only the adapters change, and they are
/// saved in the PEFT layout beside the records.
pub struct AdapterOnlyModel;

impl Checkpointer<ModuleRecord> for AdapterOnlyModel {
    fn save(&self, _epoch: usize, _record: ModuleRecord) -> Result<(), CheckpointerError> {
        Ok(())
    }
    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }
    fn restore(&self, _epoch: usize) -> Result<ModuleRecord, CheckpointerError> {
        Err(CheckpointerError::Unknown("adapters are restored from adapter_model.safetensors".into()))
    }
}

/// Save whenever the training loop asks (it decides when).
pub struct AlwaysSave;

impl CheckpointingStrategy for AlwaysSave {
    fn checkpointing(&mut self, _epoch: usize, _store: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

pub fn load_optimizer(dir: &Path) -> Result<OptimizerRecord> {
    let p = dir.join("optim.bpk");
    OptimizerRecord::load(&p).map_err(|e| anyhow::anyhow!("{}: {e:?}", p.display()))
}

pub fn load_scheduler(dir: &Path) -> Result<LrSchedulerRecord> {
    let p = dir.join("scheduler.bpk");
    LrSchedulerRecord::load(&p).map_err(|e| anyhow::anyhow!("{}: {e:?}", p.display()))
}
