//! The training loop: a burn-train [`SupervisedLearningStrategy`] that counts optimizer steps
//! (not epochs), so checkpoints, evaluation and resume happen at any step.
//!
//! Per optimizer step: `grad_accum` micro-batches through the [`Learner`]'s `train_step`
//! (gradients summed; each micro-loss is already divided by the step's total target count), the
//! global gradient norm, a NaN/inf guard on loss and norm *before* the update (a bad step is
//! skipped; `max_bad_steps` in a row stop the run), global-norm clipping, then the learner's
//! scheduler and optimizer step. Metrics go to burn-train's event processor (its renderer and
//! logs) and to `metrics.jsonl`. Dropout masks are seeded per micro-batch from the run seed, so
//! a resumed run repeats them exactly.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::adapters::Trainable;
use anyhow::Result;
use burn::data::dataloader::Progress;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::train::metric::store::EventStoreClient;
use burn::train::{
    EventProcessorTraining, InferenceStep, Learner, LearnerEvent, LearnerModel, LearningCheckpointer,
    SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainStep, TrainingComponents,
    TrainingItem, ValidLoader,
};

use crate::adapters;
use crate::checkpoint::{self, RunState, Written};
use crate::config::TrainConfig;
use crate::metrics::{MetricsFile, MetricsRecord, RecordKind};
use crate::objective::{Objective, Report, Sums};
use crate::rng::micro_seed;
use bit_axon_dashboard::{RecordFeed, names};

/// Asked between optimizer steps (thermal scheduler, dashboard keys).
pub trait StepHook: Send {
    /// Called after step `step` took `busy_s` seconds; may sleep. Returns what to do next.
    fn after_step(&mut self, step: u64, busy_s: f64) -> HookAction;
    /// Extra metrics for the step's record (temperature, thermal state, ...).
    fn metrics(&mut self, _rec: &mut MetricsRecord) {}
    /// A line for the run summary.
    fn summary(&self) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HookAction {
    Continue,
    /// Save a checkpoint now, then go on.
    SaveNow,
    /// Save a checkpoint and stop (a graceful stop, or a critical temperature), with the reason.
    SaveAndStop(String),
}

/// How the run ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub last_step: u64,
    pub train_loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub first_eval_loss: Option<f64>,
    pub tokens: u64,
    pub seconds: f64,
    pub error: Option<String>,
    pub stopped: Option<String>,
    pub last_checkpoint: Option<PathBuf>,
    /// Metrics of the first and the last evaluation.
    pub first_eval: Vec<(String, f64)>,
    pub last_eval: Vec<(String, f64)>,
    pub summaries: Vec<String>,
}

/// Everything the loop needs besides what burn-train passes in.
pub struct StepStrategy<M> {
    pub device: Device,
    pub cfg: TrainConfig,
    pub config_text: String,
    pub run_dir: PathBuf,
    pub base_name: Option<String>,
    pub start: RunState,
    pub params: Vec<Trainable>,
    pub written: Arc<Written>,
    pub metrics: Arc<MetricsFile>,
    pub hooks: Mutex<Vec<Box<dyn StepHook>>>,
    pub outcome: Arc<Mutex<Outcome>>,
    pub quiet: bool,
    /// Records for the renderer (the dashboard), besides the metrics file.
    pub feed: Option<RecordFeed>,
    pub _model: std::marker::PhantomData<fn() -> M>,
}

/// `‖g‖²` of one trainable tensor, as a one-element tensor (not read back).
fn square_norm(grads: &GradientsParams, p: &Trainable) -> Option<Tensor<1>> {
    match p.rank {
        1 => grads.get::<1>(p.id).map(|g| g.powi_scalar(2).sum()),
        _ => grads.get::<2>(p.id).map(|g| g.powi_scalar(2).sum()),
    }
}

/// `sqrt(Σ‖g‖²)` over the trainable parameters.
fn global_norm(grads: &GradientsParams, params: &[Trainable]) -> f64 {
    let parts: Vec<Tensor<1>> = params.iter().filter_map(|p| square_norm(grads, p)).collect();
    if parts.is_empty() {
        return 0.0;
    }
    let total = Tensor::cat(parts, 0).sum().into_scalar::<f32>();
    (total as f64).sqrt()
}

/// Debugging aid (`BIT_AXON_TRAIN_GRADS=1`): the gradient norm of every trainable tensor, one
/// line each on stderr, so two devices or two versions can be compared tensor by tensor.
fn print_grad_norms(step: u64, grads: &GradientsParams, params: &[Trainable]) {
    for p in params {
        if let Some(sq) = square_norm(grads, p) {
            eprintln!("grad: step {step} {} {:.6e}", p.name, (sq.into_scalar::<f32>() as f64).sqrt());
        }
    }
}

fn scale_grads(grads: &mut GradientsParams, params: &[Trainable], s: f64) {
    for p in params {
        match p.rank {
            1 => {
                if let Some(g) = grads.remove::<1>(p.id) {
                    grads.register(p.id, g.mul_scalar(s));
                }
            }
            _ => {
                if let Some(g) = grads.remove::<2>(p.id) {
                    grads.register(p.id, g.mul_scalar(s));
                }
            }
        }
    }
}

impl<M> StepStrategy<M>
where
    M: LearnerModel + Objective,
    <M as TrainStep>::Output: Report,
    <M as InferenceStep>::Output: Report,
{
    fn log(&self, line: &str) {
        if !self.quiet {
            println!("{line}");
        }
    }

    /// Appends to `metrics.jsonl` and hands the record to the renderer.
    fn emit(&self, r: &MetricsRecord) {
        if let Err(e) = self.metrics.append(r) {
            eprintln!("warning: cannot append to metrics.jsonl: {e:#}");
        }
        if let Some(f) = &self.feed {
            f.push(r.clone());
        }
    }

    fn log_eval(&self, step: u64, total: u64, m: &[(String, f64)], note: &str) {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{} {v:.4}", k.to_lowercase())).collect();
        self.log(&format!("step {step:>6}/{total}  eval: {}{note}", parts.join("  ")));
    }

    fn save(
        &self,
        learner: &Learner<M>,
        ckpt: &mut Option<LearningCheckpointer<M>>,
        store: &EventStoreClient,
        state: &RunState,
    ) -> Result<PathBuf> {
        let step = state.step;
        let tmp = checkpoint::tmp_dir(&self.run_dir, step);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        if let Some(c) = ckpt.as_mut() {
            c.checkpoint(learner, step as usize, store);
            self.written.wait(&["optim", "scheduler"], step as usize)?;
        }
        let model = learner.model().valid();
        adapters::save_peft(model.bit_axon(), &self.cfg.adapter, self.base_name.as_deref(), &tmp)?;
        if std::env::var("BIT_AXON_TRAIN_CRASH_DURING_SAVE").ok().and_then(|v| v.parse::<u64>().ok()) == Some(step) {
            eprintln!("BIT_AXON_TRAIN_CRASH_DURING_SAVE: aborting in the middle of saving step {step}");
            std::process::abort();
        }
        std::fs::write(tmp.join("train_config.toml"), &self.config_text)?;
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?)?;
        let dst = checkpoint::commit(&self.run_dir, step)?;
        checkpoint::prune(&self.run_dir, self.cfg.train.keep_last)?;
        Ok(dst)
    }

    fn evaluate(
        &self,
        learner: &Learner<M>,
        valid: &ValidLoader<M>,
        processor: &mut SupervisedTrainingEventProcessor<M>,
        step: u64,
    ) -> Option<(f64, Vec<(String, f64)>)> {
        let n = valid.num_items();
        if n == 0 {
            return None;
        }
        let model = learner.model().valid();
        processor.process_valid(LearnerEvent::StartSplit { epoch_number: 1, total_items: n }).ok();
        let mut sums = Sums::default();
        let mut it = valid.iter();
        let mut i = 0;
        while let Some(Ok(batch)) = it.next() {
            i += 1;
            let out = InferenceStep::step(&model, batch);
            sums.merge(&out.sums());
            let progress = it.progress();
            processor.process_valid(LearnerEvent::ProcessedItem(TrainingItem::new(out, progress, Some(i), None))).ok();
        }
        processor.process_valid(LearnerEvent::EndSplit(1)).ok();
        let _ = step;
        let (loss, metrics) = model.summarize(&sums);
        loss.is_finite().then_some((loss, metrics))
    }
}

impl<M> SupervisedLearningStrategy<M> for StepStrategy<M>
where
    M: LearnerModel + Objective,
    <M as TrainStep>::Output: Report,
    <M as InferenceStep>::Output: Report,
{
    fn fit(
        &self,
        components: TrainingComponents<M>,
        mut learner: Learner<M>,
        train: TrainLoader<M>,
        valid: ValidLoader<M>,
        _starting_epoch: usize,
    ) -> (M, SupervisedTrainingEventProcessor<M>) {
        let mut processor = components.event_processor;
        let mut ckpt = components.checkpointer;
        let store = components.event_store;
        let interrupter = components.interrupter;
        let t = &self.cfg.train;
        learner.fork(&self.device);
        let train = train.to_device(&self.device);
        let valid = valid.to_device(&self.device.clone().inner());
        let total = t.max_steps;
        let accum = t.grad_accum as u64;
        let mut state = self.start.clone();
        let start_time = Instant::now();
        let mut outcome = Outcome { last_step: state.step, ..Default::default() };
        processor
            .process_train(LearnerEvent::StartSplit {
                epoch_number: 1,
                total_items: (total - self.start.step) as usize,
            })
            .ok();
        if state.step == 0
            && let Some((eval, m)) = self.evaluate(&learner, &valid, &mut processor, 0)
        {
            outcome.first_eval_loss = Some(eval);
            outcome.first_eval = m.clone();
            self.log_eval(0, total, &m, " (before training)");
            self.emit(&eval_record(0, total, 0.0, &m));
        }
        // Debugging aid for interruption tests: slow every step down.
        let step_sleep = std::env::var("BIT_AXON_TRAIN_STEP_SLEEP_MS").ok().and_then(|v| v.parse::<u64>().ok());
        // Debugging aid for slow first steps on a GPU (kernel compilation): time every micro-batch.
        let trace = std::env::var_os("BIT_AXON_TRAIN_TRACE").is_some();
        let grad_trace = std::env::var_os("BIT_AXON_TRAIN_GRADS").is_some();
        let mut it = train.iter();
        let mut tokens_total = 0u64;
        let mut since_log = (Instant::now(), 0usize, 0.0f64, 0usize);
        let mut stop_reason: Option<String> = None;
        'steps: while state.step < total {
            if interrupter.should_stop() {
                stop_reason = Some("interrupted".into());
                break;
            }
            let t0 = Instant::now();
            let mut acc = GradientsAccumulator::new();
            let mut sums = Sums::default();
            let mut tokens = 0usize;
            let mut last = None;
            for _ in 0..accum {
                let Some(Ok(batch)) = it.next() else {
                    outcome.error = Some("the training data stream ended early".into());
                    break 'steps;
                };
                self.device.seed(micro_seed(state.seed, state.micro_batches));
                state.micro_batches += 1;
                let out = learner.train_step(batch);
                acc.accumulate(&learner.model(), out.grads);
                sums.merge(&out.item.sums());
                tokens += out.item.processed();
                last = Some(out.item);
                if trace {
                    let _ = self.device.sync();
                    eprintln!(
                        "trace: step {} micro-batch {} ({} tokens so far) done after {:.2} s",
                        state.step + 1,
                        state.micro_batches,
                        tokens,
                        t0.elapsed().as_secs_f64()
                    );
                }
            }
            let mut grads = acc.grads();
            let norm = global_norm(&grads, &self.params);
            if grad_trace {
                print_grad_norms(state.step + 1, &grads, &self.params);
            }
            let (loss, step_metrics) = learner.model().summarize(&sums);
            state.step += 1;
            state.train_loss = loss;
            let mut rec =
                MetricsRecord::new(RecordKind::Train, state.step, total, 1, start_time.elapsed().as_secs_f64());
            if !loss.is_finite() || !norm.is_finite() {
                state.bad_steps += 1;
                let msg = format!(
                    "step {}: non-finite loss ({loss}) or gradient norm ({norm}); update skipped ({} in a row, limit {})",
                    state.step, state.bad_steps, t.max_bad_steps
                );
                eprintln!("{msg}");
                rec.text.insert("warning".into(), msg);
                self.emit(&rec);
                if state.bad_steps >= t.max_bad_steps {
                    outcome.error = Some(format!(
                        "stopped: {} consecutive steps with a non-finite loss or gradient norm (last at step {}); \
                         lower train.learning_rate or check the data",
                        state.bad_steps, state.step
                    ));
                    break;
                }
                continue;
            }
            state.bad_steps = 0;
            if t.max_grad_norm > 0.0 && norm > t.max_grad_norm {
                scale_grads(&mut grads, &self.params, t.max_grad_norm / (norm + 1e-6));
            }
            learner.lr_step();
            let lr = learner.lr_current();
            learner.optimizer_step(grads);
            let busy = t0.elapsed().as_secs_f64();
            if trace {
                eprintln!("trace: step {} optimizer step done after {busy:.2} s", state.step);
            }
            if let Some(ms) = step_sleep {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            tokens_total += tokens as u64;
            since_log.1 += tokens;
            since_log.2 += loss;
            since_log.3 += 1;
            let tok_s = tokens as f64 / busy.max(1e-9);
            rec.time_s = start_time.elapsed().as_secs_f64();
            for (k, v) in step_metrics {
                put(&mut rec, &k, v);
            }
            put(&mut rec, names::LEARNING_RATE, lr.base());
            put(&mut rec, names::GRAD_NORM, norm);
            put(&mut rec, names::TOKENS_PER_SECOND, tok_s);
            if let Some(mem) = crate::sys::rss_bytes() {
                put(&mut rec, names::MEMORY, mem as f64);
            }
            if let Some(item) = last {
                let progress = Progress::new(
                    (state.step - self.start.step) as usize,
                    (total - self.start.step) as usize,
                    Some("steps".into()),
                );
                processor
                    .process_train(LearnerEvent::ProcessedItem(TrainingItem::new(
                        item,
                        progress,
                        Some(state.step as usize),
                        Some(lr.clone()),
                    )))
                    .ok();
            }
            let mut action = HookAction::Continue;
            {
                let mut hooks = self.hooks.lock().expect("hooks");
                for h in hooks.iter_mut() {
                    h.metrics(&mut rec);
                }
                for h in hooks.iter_mut() {
                    match h.after_step(state.step, busy) {
                        HookAction::Continue => {}
                        a @ HookAction::SaveNow if action == HookAction::Continue => action = a,
                        a @ HookAction::SaveAndStop(_) => action = a,
                        _ => {}
                    }
                }
            }
            self.emit(&rec);
            let log_every = (total / 20).clamp(1, 50);
            if state.step % log_every == 0 || state.step == total {
                let dt = since_log.0.elapsed().as_secs_f64();
                self.log(&format!(
                    "step {:>6}/{total}  loss {:.4}  lr {:.2e}  grad-norm {:.3}  {:.0} tok/s",
                    state.step,
                    since_log.2 / since_log.3.max(1) as f64,
                    lr.base(),
                    norm,
                    since_log.1 as f64 / dt.max(1e-9)
                ));
                since_log = (Instant::now(), 0, 0.0, 0);
            }
            let last_step = state.step == total;
            if (t.eval_every > 0 && state.step % t.eval_every == 0) || last_step {
                if let Some((eval, m)) = self.evaluate(&learner, &valid, &mut processor, state.step) {
                    outcome.first_eval_loss.get_or_insert(eval);
                    outcome.eval_loss = Some(eval);
                    outcome.last_eval = m.clone();
                    self.log_eval(state.step, total, &m, "");
                    self.emit(&eval_record(state.step, total, start_time.elapsed().as_secs_f64(), &m));
                }
            }
            let due = (t.save_every > 0 && state.step % t.save_every == 0) || last_step;
            if due || action != HookAction::Continue {
                match self.save(&learner, &mut ckpt, &store, &state) {
                    Ok(dir) => outcome.last_checkpoint = Some(dir),
                    Err(e) => {
                        outcome.error = Some(format!("saving the checkpoint of step {}: {e:#}", state.step));
                        break;
                    }
                }
            }
            if let HookAction::SaveAndStop(reason) = action {
                stop_reason = Some(reason);
                break;
            }
        }
        processor.process_train(LearnerEvent::EndSplit(1)).ok();
        outcome.last_step = state.step;
        outcome.train_loss = Some(state.train_loss);
        outcome.tokens = tokens_total;
        outcome.seconds = start_time.elapsed().as_secs_f64();
        outcome.stopped = stop_reason;
        outcome.summaries = self.hooks.lock().expect("hooks").iter().filter_map(|h| h.summary()).collect();
        let mut end = MetricsRecord::new(RecordKind::End, state.step, total, 1, outcome.seconds);
        if let Some(r) = &outcome.stopped {
            end.text.insert("Stop".into(), r.clone());
        }
        self.emit(&end);
        *self.outcome.lock().expect("outcome") = outcome;
        (learner.model(), processor)
    }
}

fn eval_record(step: u64, total: u64, time_s: f64, m: &[(String, f64)]) -> MetricsRecord {
    let mut e = MetricsRecord::new(RecordKind::Eval, step, total, 1, time_s);
    for (k, v) in m {
        put(&mut e, k, *v);
    }
    e
}

/// Adds a finite metric (JSON has no NaN).
fn put(r: &mut MetricsRecord, k: &str, v: f64) {
    if v.is_finite() {
        r.metrics.insert(k.to_string(), v);
    }
}
