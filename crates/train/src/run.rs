//! One training run, from the config file to the saved adapter.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bit_axon::device::parse_device;
use bit_axon::{BitAxonModel, SaveOptions};
use bit_axon_dashboard::{MetricsRecord, MetricsWriter, RecordFeed, TrainControls, renderer_with_feed};
use bit_axon_inference::{ChatTemplate, TextTokenizer, byte_level_tokenizer_json};
use bit_axon_quant::QuantFormat;
use bit_axon_thermal::ThermalScheduler;
use burn::data::dataloader::DataLoader;
use burn::optim::AdamWConfig;
use burn::prelude::*;
use burn::train::renderer::MetricsRenderer;
use burn::train::{InferenceStep, Learner, LearnerModel, SupervisedTraining, TrainStep, TrainingStrategy};

use crate::adapters;
use crate::checkpoint::{self, AdapterOnlyModel, AlwaysSave, RunState, StagedCheckpointer, Written};
use crate::config::TrainConfig;
use crate::data::load_documents;
use crate::data::loader::{RowStream, StreamSpec, TrainLoader, eval_loader};
use crate::data::preference::{PairLoader, PairStream, load_pairs, pair_eval_loader};
use crate::hooks::ThermalHook;
use crate::lm::CausalLm;
use crate::metrics::MetricsFile;
use crate::objective::{Objective, Report};
use crate::orpo::OrpoLm;
use crate::schedule::WarmupCosine;
use crate::strategy::{Outcome, StepHook, StepStrategy};

/// What the command line gives.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub sets: Vec<String>,
    pub resume: bool,
    /// No per-step progress lines and no dashboard (tests).
    pub quiet: bool,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunReport {
    pub outcome: Outcome,
    pub run_dir: PathBuf,
    /// The final adapter (PEFT layout).
    pub adapter_dir: PathBuf,
    /// The base model the adapter belongs to.
    pub base_dir: PathBuf,
    pub peak_rss: Option<u64>,
    pub warnings: Vec<String>,
}

/// Loads the tokenizer the config names: a file, the base model's, or the built-in byte-level one
/// (written into the run directory so the run is self-contained).
fn tokenizer(cfg: &TrainConfig, base: Option<&Path>, run_dir: &Path) -> Result<TextTokenizer> {
    if let Some(p) = &cfg.tokenizer.path {
        return Ok(TextTokenizer::from_file(p)?);
    }
    match cfg.tokenizer.kind.as_deref() {
        Some("byte-level") => {}
        Some(other) => bail!("tokenizer.kind: unknown {other:?} (byte-level)"),
        None => {
            if let Some(b) = base
                && b.join("tokenizer.json").is_file()
            {
                return Ok(TextTokenizer::from_file(&b.join("tokenizer.json"))?);
            }
        }
    }
    let p = run_dir.join("tokenizer.json");
    bit_axon::checkpoint::write_text_atomic(&p, &byte_level_tokenizer_json())?;
    Ok(TextTokenizer::from_file(&p)?)
}

/// Everything shared by the objectives once the model and data are ready.
struct Prepared {
    cfg: TrainConfig,
    config_text: String,
    device: Device,
    run_dir: PathBuf,
    base_dir: PathBuf,
    model: BitAxonModel,
    start: RunState,
    resume_dir: Option<PathBuf>,
    tok: TextTokenizer,
}

fn prepare(opts: &RunOptions) -> Result<Prepared> {
    let cfg = TrainConfig::load(&opts.config, &opts.sets)?;
    let config_text = toml::to_string_pretty(&cfg)?;
    let device = parse_device(&cfg.train.device)?;
    let run_dir = cfg.output.dir.clone();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let resume = if opts.resume {
        let r = checkpoint::latest(&run_dir)?;
        if r.is_none() {
            eprintln!("--resume: no checkpoint in {}; starting from the beginning", run_dir.display());
        }
        r
    } else {
        if !checkpoint::list(&run_dir).is_empty() {
            bail!(
                "{} already holds checkpoints of a run; pass --resume to continue it, or choose another output.dir \
                 (--set output.dir=...)",
                run_dir.display()
            );
        }
        None
    };
    checkpoint::prune(&run_dir, usize::MAX)?; // leftovers of an interrupted save

    // The base model: a checkpoint, or a fresh one saved into the run (so resume and merge find it).
    let (base_dir, mcfg, model) = match cfg.model_path() {
        Some(p) => {
            let (c, m, _) =
                BitAxonModel::load(&p, &device).with_context(|| format!("loading the base model {}", p.display()))?;
            (p, c, m)
        }
        None => {
            let dir = run_dir.join("base");
            let mcfg = cfg.model_config()?;
            if dir.join("config.json").is_file() && (resume.is_some() || cfg.adapter.init_from.is_some()) {
                let (c, m, _) = BitAxonModel::load(&dir, &device)?;
                (dir, c, m)
            } else {
                device.seed(cfg.train.seed);
                let m = mcfg.init(&device);
                let f32s = bit_axon::checkpoint::FloatDtype::F32;
                m.save(&mcfg, &dir, SaveOptions { dtype: f32s, expert_dtype: f32s })?;
                (dir, mcfg, m)
            }
        }
    };
    let tok = tokenizer(&cfg, Some(&base_dir), &run_dir)?;
    tok.require_chat_tokens()?;
    if tok.vocab_size() > mcfg.vocab_size {
        bail!("the tokenizer has {} tokens but the model's vocabulary is {}", tok.vocab_size(), mcfg.vocab_size);
    }
    if !base_dir.join("tokenizer.json").is_file() {
        std::fs::copy(tok.path(), base_dir.join("tokenizer.json")).ok();
    }
    let model = if cfg.quant.enabled {
        let f = QuantFormat::parse(&cfg.quant.format)?;
        // The frozen base (`bit_axon::quantize`'s rule); adapters train in float beside it.
        model.quantize_weights(&mcfg, f, cfg.quant.group_size)?
    } else {
        model
    };
    let check = |dir: &Path, peft: &adapters::PeftConfig| -> Result<()> {
        let saved = adapters::section_of(peft);
        if saved.rank != cfg.adapter.rank || saved.kind != cfg.adapter.kind || saved.alpha != cfg.adapter.alpha {
            bail!(
                "{}: this adapter ({} r={} alpha={}) differs from the config's ({} r={} alpha={})",
                dir.display(),
                saved.kind,
                saved.rank,
                saved.alpha,
                cfg.adapter.kind,
                cfg.adapter.rank,
                cfg.adapter.alpha
            );
        }
        Ok(())
    };
    let (model, start, resume_dir) = match resume {
        Some((dir, state)) => {
            let (m, peft) = adapters::load_peft(model, &dir, &device)?;
            check(&dir, &peft)?;
            println!("resuming from {} (step {})", dir.display(), state.step);
            (m, state, Some(dir))
        }
        None => {
            let fresh =
                RunState { step: 0, micro_batches: 0, bad_steps: 0, seed: cfg.train.seed, train_loss: f64::NAN };
            let m = match &cfg.adapter.init_from {
                Some(dir) => {
                    let (m, peft) = adapters::load_peft(model, dir, &device)?;
                    check(dir, &peft)?;
                    println!("starting from the adapter in {}", dir.display());
                    m
                }
                None => {
                    device.seed(cfg.train.seed ^ 0xada);
                    let (m, paths) = adapters::apply(model, &cfg.adapter, &device)?;
                    println!(
                        "{} adapters (r={}, alpha={}) on {} projections",
                        cfg.adapter.kind,
                        cfg.adapter.rank,
                        cfg.adapter.alpha,
                        paths.len()
                    );
                    m
                }
            };
            (m, fresh, None)
        }
    };
    Ok(Prepared { cfg, config_text, device, run_dir, base_dir, model, start, resume_dir, tok })
}

/// Runs training as configured; `hooks` are consulted between optimizer steps besides the
/// thermal scheduler and the dashboard keys.
pub fn run(opts: &RunOptions, hooks: Vec<Box<dyn StepHook>>) -> Result<RunReport> {
    let p = prepare(opts)?;
    let tpl = ChatTemplate::default();
    let pad_id = p.tok.require("<|endoftext|>")?;
    let inner = p.device.clone();
    let t = p.cfg.train.clone();
    match t.objective.as_str() {
        "orpo" => {
            let train = load_pairs(&p.cfg.data.train, &p.cfg.data, &p.tok, &tpl)?;
            println!(
                "train: {} pairs ({} dropped: a response lost every token to max_seq_len, {} bad lines skipped)",
                train.pairs.len(),
                train.dropped_truncated,
                train.bad_lines.len()
            );
            let eval = if p.cfg.data.eval.is_empty() {
                Vec::new()
            } else {
                let e = load_pairs(&p.cfg.data.eval, &p.cfg.data, &p.tok, &tpl)?;
                println!("eval: {} pairs", e.pairs.len());
                e.pairs
            };
            let stream = PairStream::new(Arc::new(train.pairs), t.seed, t.batch_size, t.grad_accum);
            let tl = PairLoader::new(stream, p.start.step, t.max_steps, pad_id, inner.clone());
            let el = pair_eval_loader(&eval, t.batch_size, t.eval_batches, pad_id, inner);
            let lambda = p.cfg.orpo.lambda;
            let model = p.model.clone();
            launch(p, OrpoLm { model, lambda }, Arc::new(tl), Arc::new(el), hooks, opts.quiet)
        }
        _ => {
            let train = load_documents(&p.cfg.data.train, &p.cfg.data, &p.tok, &tpl)?;
            report_data("train", &train);
            let eval = if p.cfg.data.eval.is_empty() {
                Vec::new()
            } else {
                let d = load_documents(&p.cfg.data.eval, &p.cfg.data, &p.tok, &tpl)?;
                report_data("eval", &d);
                d.docs
            };
            let spec = StreamSpec {
                seed: t.seed,
                seq_len: p.cfg.data.max_seq_len,
                batch_size: t.batch_size,
                grad_accum: t.grad_accum,
                pad_id,
                pack: p.cfg.data.pack,
            };
            let stream = RowStream::new(Arc::new(train.docs), spec.clone());
            let tl = TrainLoader::new(stream, p.start.step, t.max_steps, spec.pad_id, inner.clone());
            let el = eval_loader(&eval, &spec, t.eval_batches, inner);
            let model = p.model.clone();
            launch(p, CausalLm { model }, Arc::new(tl), Arc::new(el), hooks, opts.quiet)
        }
    }
}

/// The burn-train side: learner, checkpointers, renderer, the step strategy; then the final
/// adapter.
fn launch<M>(
    p: Prepared,
    model: M,
    train: Arc<dyn DataLoader<<M as TrainStep>::Input>>,
    eval: Arc<dyn DataLoader<<M as InferenceStep>::Input>>,
    mut hooks: Vec<Box<dyn StepHook>>,
    quiet: bool,
) -> Result<RunReport>
where
    M: LearnerModel + Objective,
    <M as TrainStep>::Output: Report,
    <M as InferenceStep>::Output: Report,
{
    let cfg = &p.cfg;
    let t = &cfg.train;
    let optim = AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(t.eps as f32)
        .with_weight_decay(t.weight_decay as f32)
        .init();
    let sched = WarmupCosine::new(t.learning_rate, t.min_lr, t.warmup_steps, t.max_steps);
    let mut learner = Learner::new(model.train(), optim, sched);
    if let Some(dir) = &p.resume_dir {
        learner.load_optim(checkpoint::load_optimizer(dir)?);
        learner.load_scheduler(checkpoint::load_scheduler(dir)?);
    }
    let run_dir = p.run_dir.clone();
    let metrics = Arc::new(MetricsFile::open(&run_dir, p.resume_dir.as_ref().map(|_| p.start.step))?);

    // Thermal scheduler + dashboard keys.
    let (scheduler, warnings) = ThermalScheduler::from_config(&cfg.thermal)?;
    let controls = TrainControls::new();
    let live = scheduler.live();
    let managed = scheduler.is_managed();
    let total = t.max_steps;
    let t0 = std::time::Instant::now();
    let mut writer = MetricsWriter::create(&run_dir)?;
    let scheduler = scheduler
        .with_pause_flag(controls.pause_flag())
        .with_stop_flag(controls.stop_flag())
        .with_observer(Box::new(move |ev, totals, limits| {
            let r = MetricsRecord::thermal(ev.step, total, 1, t0.elapsed().as_secs_f64(), ev, totals, limits);
            let _ = writer.write(&r);
        }));
    hooks.insert(0, Box::new(ThermalHook { scheduler, controls: controls.clone() }));
    let tty = !quiet && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let feed = RecordFeed::new();
    let renderer: Box<dyn MetricsRenderer> = if tty {
        renderer_with_feed(controls.clone(), managed.then_some(live), Some(feed.clone()))
    } else {
        Box::new(crate::renderer::LineRenderer)
    };

    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let written = Arc::new(Written::default());
    let strategy = StepStrategy::<M> {
        device: p.device.clone().autodiff(),
        cfg: cfg.clone(),
        config_text: p.config_text.clone(),
        run_dir: run_dir.clone(),
        base_name: Some(p.base_dir.display().to_string()),
        start: p.start.clone(),
        params: adapters::trainable_params(&p.model),
        written: written.clone(),
        metrics,
        hooks: Mutex::new(hooks),
        outcome: outcome.clone(),
        quiet: quiet || tty,
        feed: tty.then_some(feed),
        _model: std::marker::PhantomData,
    };
    let staged = |name| StagedCheckpointer { run: run_dir.clone(), name, written: written.clone() };
    let training = SupervisedTraining::new(&run_dir, train, eval)
        .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
        .with_custom_checkpointers(AdapterOnlyModel, staged("optim"), staged("scheduler"))
        .with_checkpointing_strategy(AlwaysSave)
        .renderer(renderer)
        .with_application_logger(None)
        .num_epochs(1);
    let result = training.launch(learner);
    if let Some(e) = result.error {
        bail!("training failed: {e}");
    }
    let outcome = outcome.lock().expect("outcome").clone();
    if let Some(e) = &outcome.error {
        bail!("{e}");
    }
    let adapter_dir = run_dir.join("adapter");
    let tmp = run_dir.join(".tmp-adapter");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    adapters::save_peft(result.model.bit_axon(), &cfg.adapter, Some(&p.base_dir.display().to_string()), &tmp)?;
    // Swap by renames, so an interruption leaves either the previous adapter or the new one.
    let old = run_dir.join(".old-adapter");
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    if adapter_dir.exists() {
        std::fs::rename(&adapter_dir, &old)?;
    }
    std::fs::rename(&tmp, &adapter_dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(RunReport {
        outcome,
        run_dir,
        adapter_dir,
        base_dir: p.base_dir,
        peak_rss: crate::sys::peak_rss_bytes(),
        warnings,
    })
}

fn report_data(split: &str, d: &crate::data::Documents) {
    println!(
        "{split}: {} documents ({} cut to max_seq_len, {} dropped: no trained token left after the cut, {} bad lines skipped)",
        d.docs.len(),
        d.truncated,
        d.dropped_truncated,
        d.bad_lines.len()
    );
    for e in d.bad_lines.iter().take(20) {
        eprintln!("skipped {e}");
    }
}
