//! The port: a Bit-Axon checkpoint directory from a Qwen2 checkpoint.
//!
//! The target is built block by block: each block is initialised with the model's own scheme
//! (seeded), exported with the model crate's [`Saver`], its tensors that have a source are
//! replaced by the transformed source values, and everything is streamed to
//! `model.safetensors` before the next block is made. Peak memory is therefore about one
//! target block plus one source tensor, whatever the model size.
//!
//! Mapping (as the reference, upstream-catalogue §1.17; layer `i` ← Qwen layer `i`):
//! - `embed_tokens.weight` (and an untied `lm_head.weight`) ← `model.embed_tokens.weight` rows
//!   through the vocabulary map;
//! - `layer_i.input_norm.weight` ← `input_layernorm`, `post_attention_norm` / `post_ssm_norm` ←
//!   `post_attention_layernorm`, padded with ones to the model width;
//! - `moe.shared_expert.*` ← the MLP's first `I` intermediate channels, zero-padded;
//! - `moe.switch_mlp.*` ← copies of the shared expert, expert 0 exact, the others + N(0, σ²);
//! - everything else keeps its initialisation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bit_axon::BitAxonConfig;
use bit_axon::checkpoint::{FloatDtype, OwnedTensor, Saver, decode_float, write_text_atomic};
use bit_axon::layers::{BlockConfig, Projection};
use burn::nn::{EmbeddingConfig, Initializer, LinearConfig};
use burn::prelude::*;
use safetensors::View;
use serde_json::json;

use crate::error::{Error, Result};
use crate::hf::HfCheckpoint;
use crate::report::{Action, PortReport, SpecialToken, TensorEntry, VocabSummary, peak_rss_bytes};
use crate::rng::GaussianRng;
use crate::tokenizer::{TokenizerFile, truncate_tokenizer_config};
use crate::transforms::{fit_matrix, init_routed_experts, pad_rms_norm};
use crate::vocab::{self, CHAT_SPECIALS, VocabMap};
use crate::writer::StreamWriter;

/// A source MLP matrix fitted to the shared expert: values, source key, source and target shapes.
type Projected = (Vec<f32>, String, (usize, usize), (usize, usize));

/// How the kept vocabulary is chosen.
#[derive(Debug, Clone)]
pub enum VocabSource {
    /// The first ids (merge-closed) plus the chat special tokens.
    FirstN,
    /// The most frequent tokens of this text file, then the first ids.
    Corpus(PathBuf),
}

#[derive(Debug, Clone)]
pub struct PortOptions {
    pub from: PathBuf,
    pub output: PathBuf,
    /// The target model; its `vocab_size` is the kept vocabulary size.
    pub config: BitAxonConfig,
    /// The source `tokenizer.json`; `None` uses `FROM/tokenizer.json` when present. Without a
    /// tokenizer the map is the first `vocab_size` ids and no tokenizer is written.
    pub tokenizer: Option<PathBuf>,
    pub vocab: VocabSource,
    /// Seeds the initialisation of tensors without a source and the routed-expert noise.
    pub seed: u64,
    pub dtype: FloatDtype,
    pub expert_dtype: FloatDtype,
    /// Standard deviation of the noise added to routed experts 1.. (the reference's 0.02).
    pub expert_noise_std: f32,
}

impl PortOptions {
    pub fn new(from: &Path, output: &Path, config: BitAxonConfig) -> Self {
        Self {
            from: from.to_path_buf(),
            output: output.to_path_buf(),
            config,
            tokenizer: None,
            vocab: VocabSource::FirstN,
            seed: 0,
            dtype: FloatDtype::F32,
            expert_dtype: FloatDtype::F16,
            expert_noise_std: 0.02,
        }
    }
}

/// Checks that `src` can feed a model with config `cfg`.
pub fn check_compatible(src: &HfCheckpoint, cfg: &BitAxonConfig) -> Result<()> {
    let q = &src.config;
    let at = src.dir.join("config.json");
    let why = |s: String| Err(Error::Incompatible(format!("{}: {s}", at.display())));
    if q.hidden_size != cfg.d_source_model {
        return why(format!(
            "source hidden_size {} ≠ target d_source_model {}; pick a config whose d_source_model is {}",
            q.hidden_size, cfg.d_source_model, q.hidden_size
        ));
    }
    if cfg.hidden_dim < q.hidden_size {
        return why(format!(
            "target hidden_dim {} < source hidden_size {}; norms cannot be padded",
            cfg.hidden_dim, q.hidden_size
        ));
    }
    if q.num_hidden_layers < cfg.num_layers {
        return why(format!("source has {} layers, the target needs {}", q.num_hidden_layers, cfg.num_layers));
    }
    Ok(())
}

/// Ports `opts.from` into `opts.output` (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json, vocab_map.json, port_report.json / .txt) and returns the report.
pub fn port(opts: &PortOptions) -> Result<PortReport> {
    // Burn's random initialisation draws from a process-wide generator: one port at a time, so
    // a seed always gives the same checkpoint.
    static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = &opts.config;
    cfg.validate()?;
    let src = HfCheckpoint::open(&opts.from)?;
    check_compatible(&src, cfg)?;
    let (v, ds, h) = (cfg.vocab_size, cfg.d_source_model, cfg.hidden_dim);
    let src_v = src.files.shape(src.embed_key()).map(|s| s[0]).unwrap_or(src.config.vocab_size);

    // Vocabulary.
    let tok_path = opts.tokenizer.clone().or_else(|| Some(opts.from.join("tokenizer.json")).filter(|p| p.is_file()));
    let tok = tok_path.as_deref().map(TokenizerFile::open).transpose()?;
    let map = match (&tok, &opts.vocab) {
        (Some(t), VocabSource::FirstN) => vocab::first_n(t, v)?,
        (Some(t), VocabSource::Corpus(corpus)) => {
            let text = std::fs::read_to_string(corpus).map_err(|e| Error::io(corpus, e))?;
            vocab::by_frequency(t, v, &vocab::count_corpus(&t.path, &text)?)?
        }
        (None, VocabSource::Corpus(_)) => {
            return Err(Error::Incompatible(
                "--vocab-corpus needs a tokenizer (FROM/tokenizer.json or --tokenizer)".into(),
            ));
        }
        (None, VocabSource::FirstN) => {
            if v > src_v {
                return Err(Error::Incompatible(format!(
                    "target vocab_size {v} > source vocabulary {src_v} and there is no tokenizer to choose tokens"
                )));
            }
            VocabMap::identity(v)
        }
    };
    debug_assert_eq!(map.len(), v);

    std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(&opts.output, e))?;
    let device = Device::flex();
    device.seed(opts.seed);
    let mut rng = GaussianRng::new(opts.seed);
    let expected_tensors = bit_axon::params::model_tensors(cfg).len() + 1;
    let mut out = StreamWriter::create(&opts.output.join("model.safetensors"), expected_tensors)?;
    let mut entries = Vec::new();
    let dname = |d: FloatDtype| format!("{d:?}").to_lowercase();

    // Embedding (and the tied head): kept rows from the source, the rest initialised.
    let embed_init = EmbeddingConfig::new(v, ds)
        .with_initializer(Initializer::Normal { mean: 0.0, std: 1.0 / (ds as f64).sqrt() })
        .init(&device);
    let mut embed = to_vec(embed_init.weight.val());
    let (rows, present) = src.rows(src.embed_key(), [src_v, ds], &map.new_to_old)?;
    let rows_without_source = present.iter().filter(|p| !**p).count();
    for (k, p) in present.iter().enumerate() {
        if *p {
            embed[k * ds..(k + 1) * ds].copy_from_slice(&rows[k * ds..(k + 1) * ds]);
        }
    }
    drop(rows);
    let identity_rows =
        rows_without_source == 0 && v == src_v && map.new_to_old.iter().enumerate().all(|(n, &o)| n as u32 == o);
    let embed_action = if identity_rows { Action::Ported } else { Action::Transformed };
    let t = OwnedTensor::from_f32(&embed, vec![v, ds], opts.dtype);
    out.push("embed_tokens.weight", &t)?;
    entries.push(TensorEntry::new(
        "embed_tokens.weight",
        &[v, ds],
        dname(opts.dtype),
        embed_action,
        src.embed_key(),
        "vocab_extract",
        &embed,
    ));
    if cfg.weight_tying {
        out.push("lm_head.weight", &t)?;
        entries.push(TensorEntry::new(
            "lm_head.weight",
            &[v, ds],
            dname(opts.dtype),
            embed_action,
            src.embed_key(),
            "vocab_extract (tied)",
            &embed,
        ));
    }
    drop((t, embed, embed_init));

    // Bridges: no source.
    let mut sv = Saver::new(opts.dtype, opts.expert_dtype);
    sv.projection("input_proj", &Projection::float(LinearConfig::new(ds, h).with_bias(false).init(&device)));
    sv.projection("output_proj", &Projection::float(LinearConfig::new(h, ds).with_bias(false).init(&device)));
    flush_initialised(&mut sv, &mut out, &mut entries)?;

    // Blocks.
    let (inter, experts) = (cfg.moe_intermediate_dim, cfg.moe_num_experts);
    let (src_inter, src_h) = (src.config.intermediate_size, src.config.hidden_size);
    for i in 0..cfg.num_layers {
        let block = BlockConfig::new(cfg, i).init(&device);
        let mut sv = Saver::new(opts.dtype, opts.expert_dtype);
        block.save(&mut sv, &format!("layer_{i}"));
        drop(block);
        let q = format!("model.layers.{i}");
        // The MLP projected into the shared expert (also the base of the routed experts).
        let mut shared: BTreeMap<&str, Projected> = BTreeMap::new();
        if cfg.layer_kind(i).has_moe() {
            for p in ["gate_proj", "up_proj", "down_proj"] {
                let key = format!("{q}.mlp.{p}.weight");
                let (src_shape, shape) =
                    if p == "down_proj" { ((src_h, src_inter), (h, inter)) } else { ((src_inter, src_h), (inter, h)) };
                let w = src.tensor(&key, &[src_shape.0, src_shape.1])?;
                shared.insert(p, (fit_matrix(&w, src_shape, shape), key, src_shape, shape));
            }
        }
        for (name, tensor) in std::mem::take(&mut sv.tensors) {
            let local = name.strip_prefix(&format!("layer_{i}.")).unwrap_or(&name).to_string();
            let norm_src = match local.as_str() {
                "input_norm.weight" => Some(format!("{q}.input_layernorm.weight")),
                "post_attention_norm.weight" | "post_ssm_norm.weight" => {
                    Some(format!("{q}.post_attention_layernorm.weight"))
                }
                _ => None,
            };
            if let Some(key) = norm_src {
                let w = src.tensor(&key, &[src_h])?;
                let vals = pad_rms_norm(&w, h);
                let action = if h == src_h { Action::Ported } else { Action::Transformed };
                out.push(&name, &OwnedTensor::from_f32(&vals, vec![h], opts.dtype))?;
                entries.push(TensorEntry::new(&name, &[h], dname(opts.dtype), action, &key, "pad_rms_norm", &vals));
                continue;
            }
            let mlp = ["gate_proj", "up_proj", "down_proj"]
                .into_iter()
                .find(|p| local == format!("moe.shared_expert.{p}.weight"));
            if let Some((vals, key, src_shape, shape)) = mlp.and_then(|p| shared.get(p)) {
                let action = if src_shape == shape { Action::Ported } else { Action::Transformed };
                out.push(&name, &OwnedTensor::from_f32(vals, vec![shape.0, shape.1], opts.dtype))?;
                entries.push(TensorEntry::new(
                    &name,
                    &[shape.0, shape.1],
                    dname(opts.dtype),
                    action,
                    key,
                    "moe_project",
                    vals,
                ));
                continue;
            }
            let routed = ["gate_proj", "up_proj", "down_proj"]
                .into_iter()
                .find(|p| local == format!("moe.switch_mlp.{p}.weight"));
            if let Some((base, key, _, _)) = routed.and_then(|p| shared.get(p)) {
                let shape = (&tensor).shape().to_vec();
                let vals = init_routed_experts(base, experts, opts.expert_noise_std, &mut rng);
                out.push(&name, &OwnedTensor::from_f32(&vals, shape.clone(), opts.expert_dtype))?;
                entries.push(TensorEntry::new(
                    &name,
                    &shape,
                    dname(opts.expert_dtype),
                    Action::Transformed,
                    key,
                    "copy_perturb",
                    &vals,
                ));
                continue;
            }
            push_initialised(&name, tensor, &mut out, &mut entries)?;
        }
    }

    // An untied head: its own source rows.
    if !cfg.weight_tying {
        let key = src.lm_head_key();
        let src_rows = src.files.shape(key).map(|s| s[0]).unwrap_or(src_v);
        let (vals, _) = src.rows(key, [src_rows, ds], &map.new_to_old)?;
        out.push("lm_head.weight", &OwnedTensor::from_f32(&vals, vec![v, ds], opts.dtype))?;
        entries.push(TensorEntry::new(
            "lm_head.weight",
            &[v, ds],
            dname(opts.dtype),
            Action::Transformed,
            key,
            "vocab_extract",
            &vals,
        ));
    }

    let mut meta = BTreeMap::from([
        ("format".to_string(), "mlx".to_string()),
        ("producer".to_string(), format!("bit-axon-port {}", env!("CARGO_PKG_VERSION"))),
        ("ported_from".to_string(), opts.from.display().to_string()),
    ]);
    meta.insert("vocab_map".into(), "vocab_map.json".into());
    out.finish(meta)?;
    write_text_atomic(&opts.output.join("config.json"), &cfg.to_json())?;

    // Vocabulary map and tokenizer.
    let old_to_new = map.old_to_new();
    let mut specials = Vec::new();
    let (mut merges_kept, mut merges_total) = (None, None);
    if let Some(t) = &tok {
        for (old, content) in &t.added {
            if CHAT_SPECIALS.contains(&content.as_str()) {
                specials.push(SpecialToken { token: content.clone(), old_id: *old, new_id: old_to_new[old] });
            }
        }
        let truncated = t.truncate(&map)?;
        merges_kept = truncated["model"]["merges"].as_array().map(Vec::len);
        merges_total = Some(t.merges.len());
        write_json(&opts.output.join("tokenizer.json"), &truncated)?;
        let src_cfg_path = t.path.with_file_name("tokenizer_config.json");
        let src_cfg = std::fs::read_to_string(&src_cfg_path).ok().and_then(|s| serde_json::from_str(&s).ok());
        write_json(&opts.output.join("tokenizer_config.json"), &truncate_tokenizer_config(src_cfg.as_ref(), t, &map))?;
    }
    write_json(
        &opts.output.join("vocab_map.json"),
        &json!({"method": map.method, "new_to_old": map.new_to_old, "source": opts.from.display().to_string()}),
    )?;

    let report = PortReport {
        source: opts.from.display().to_string(),
        output: opts.output.display().to_string(),
        seed: opts.seed,
        target_config: cfg.clone(),
        vocab: VocabSummary {
            method: map.method.clone(),
            size: map.len(),
            chat_special_tokens: specials,
            rows_without_source,
            tokenizer: tok.as_ref().map(|t| t.path.display().to_string()),
            merges_kept,
            merges_total,
        },
        tensors: entries,
        peak_rss_bytes: peak_rss_bytes(),
    };
    write_json(&opts.output.join("port_report.json"), &serde_json::to_value(&report).expect("report serialises"))?;
    write_text_atomic(&opts.output.join("port_report.txt"), &report.table())?;
    Ok(report)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("float tensor converts to f32")
}

fn push_initialised(name: &str, t: OwnedTensor, out: &mut StreamWriter, entries: &mut Vec<TensorEntry>) -> Result<()> {
    let r = &t;
    let vals = decode_float(&r.data(), r.dtype()).unwrap_or_default();
    out.push(name, r)?;
    let dt = format!("{:?}", r.dtype()).to_lowercase();
    entries.push(TensorEntry::new(name, r.shape(), dt, Action::Initialised, "", "", &vals));
    Ok(())
}

fn flush_initialised(sv: &mut Saver, out: &mut StreamWriter, entries: &mut Vec<TensorEntry>) -> Result<()> {
    for (name, t) in std::mem::take(&mut sv.tensors) {
        push_initialised(&name, t, out, entries)?;
    }
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("JSON serialises");
    Ok(write_text_atomic(path, &text)?)
}
