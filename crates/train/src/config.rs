//! The run configuration: one TOML file (`configs/sft.toml`), with `--set key=value` overrides.
//!
//! Sections: `[model]` (a preset or a checkpoint `path`, plus any `BitAxonConfig` field),
//! `[tokenizer]`, `[data]`, `[adapter]`, `[quant]` (QLoRA), `[train]`, `[output]`. Unknown keys
//! are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bit_axon::BitAxonConfig;
use serde::{Deserialize, Serialize};

/// The whole run configuration (see `configs/sft.toml` for a commented example).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `preset = "small"` or `path = "DIR"` (a checkpoint), plus `BitAxonConfig` overrides.
    pub model: toml::Table,
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    pub data: DataConfig,
    #[serde(default)]
    pub adapter: AdapterSection,
    #[serde(default)]
    pub quant: QuantSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub orpo: OrpoSection,
    /// Thermal management between optimizer steps (see `bit_axon_thermal::ThermalConfig`).
    #[serde(default)]
    pub thermal: bit_axon_thermal::ThermalConfig,
    pub output: OutputSection,
}

/// ORPO settings (`train.objective = "orpo"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OrpoSection {
    /// λ, the weight of the odds-ratio term and the reward scale (TRL's `beta`, 0.1).
    pub lambda: f64,
}

impl Default for OrpoSection {
    fn default() -> Self {
        Self { lambda: 0.1 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// A `tokenizer.json`; default: the model directory's, else the built-in byte-level one.
    pub path: Option<PathBuf>,
    /// `"byte-level"`: 256 byte tokens + `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (259 ids).
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Report every bad line and stop before training.
    Stop,
    /// Report every bad line, skip them and train on the rest.
    Skip,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// Detect per line from its keys.
    Auto,
    /// `{"messages": [{"role", "content"}]}`
    Chat,
    /// `{"conversations": [{"from", "value"}], "system_prompt"?}`
    Sharegpt,
    /// `{"instruction", "input"?, "output"}`
    Alpaca,
    /// `{"text"}` lines, or a `.txt` file split at blank lines; every token is trained.
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training files (JSONL, or `.txt` for plain text).
    pub train: Vec<PathBuf>,
    /// Held-out files for eval loss; empty: no evaluation.
    #[serde(default)]
    pub eval: Vec<PathBuf>,
    #[serde(default = "default_format")]
    pub format: DataFormat,
    /// Tokens per packed row.
    #[serde(default = "default_seq")]
    pub max_seq_len: usize,
    /// Pack several documents per row (boundaries masked in attention, convolution and scan).
    #[serde(default = "yes")]
    pub pack: bool,
    #[serde(default = "default_on_error")]
    pub on_error: OnError,
    /// Loss on assistant tokens only (chat data); `false` trains on every token.
    #[serde(default = "yes")]
    pub mask_prompt: bool,
    /// A system message put first in every conversation that has none.
    pub system_prompt: Option<String>,
}

fn default_format() -> DataFormat {
    DataFormat::Auto
}
fn default_seq() -> usize {
    512
}
fn default_on_error() -> OnError {
    OnError::Stop
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterSection {
    /// `"lora"` or `"dora"`.
    pub kind: String,
    pub rank: usize,
    /// Update scale is `alpha / rank` (the reference's fixed scale 20 is `alpha = 20 · rank`).
    pub alpha: f64,
    pub dropout: f64,
    /// Projections to adapt: a name matches when the projection's checkpoint path ends with it
    /// (`q_proj`, `attention.q_proj`, `layer_3.ssm.in_proj`), or equals it with `*` wildcards
    /// (`layer_*.ssm.in_proj`). Default: the reference's targets.
    pub targets: Vec<String>,
    /// Start from this adapter (PEFT directory, e.g. an SFT run's `adapter/`) instead of a fresh
    /// one; its kind and rank must match.
    pub init_from: Option<PathBuf>,
}

/// The reference's default targets (catalogue §1.9); router, shared-expert gate, `x_proj` and the
/// head are excluded by being absent.
pub const DEFAULT_TARGETS: [&str; 11] = [
    "input_proj",
    "output_proj",
    "ssm.in_proj",
    "ssm.out_proj",
    "attention.q_proj",
    "attention.k_proj",
    "attention.v_proj",
    "attention.o_proj",
    "shared_expert.gate_proj",
    "shared_expert.up_proj",
    "shared_expert.down_proj",
];

impl Default for AdapterSection {
    fn default() -> Self {
        Self {
            kind: "lora".into(),
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            targets: DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
            init_from: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuantSection {
    /// Freeze the base in 4 bits (QLoRA). A base loaded already quantized stays as it is.
    pub enabled: bool,
    /// `"nf4"` or `"affine4"`.
    pub format: String,
    pub group_size: usize,
}

impl Default for QuantSection {
    fn default() -> Self {
        Self { enabled: false, format: "nf4".into(), group_size: 64 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// `"sft"` (next-token loss on chat/text data) or `"orpo"` (preference pairs).
    pub objective: String,
    /// `flex`, `wgpu` or `cuda[:N]`.
    pub device: String,
    pub seed: u64,
    /// Optimizer steps.
    pub max_steps: u64,
    /// Packed rows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step; the loss is averaged over all their target tokens.
    pub grad_accum: usize,
    pub learning_rate: f64,
    /// Floor of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup, in optimizer steps.
    pub warmup_steps: u64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global L2 norm clip; 0 disables.
    pub max_grad_norm: f64,
    /// Evaluate every N steps (and at the end); 0 disables.
    pub eval_every: u64,
    /// At most this many eval micro-batches per evaluation; 0: the whole eval set.
    pub eval_batches: usize,
    /// Checkpoint every N steps (and at the end).
    pub save_every: u64,
    /// Checkpoints kept.
    pub keep_last: usize,
    /// Stop after this many consecutive steps with a non-finite loss or gradient norm.
    pub max_bad_steps: u32,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            objective: "sft".into(),
            device: "flex".into(),
            seed: 42,
            max_steps: 1000,
            batch_size: 4,
            grad_accum: 1,
            learning_rate: 2e-4,
            min_lr: 0.0,
            warmup_steps: 50,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
            eval_every: 100,
            eval_batches: 0,
            save_every: 100,
            keep_last: 3,
            max_bad_steps: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// The run directory: checkpoints, metrics, the final adapter.
    pub dir: PathBuf,
}

impl TrainConfig {
    /// Reads `path` and applies `sets` (`dotted.key=value`; the value is parsed as TOML when it
    /// can be, else taken as a string). Relative paths in the file stay relative to the working
    /// directory, like the quickstart command expects.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        for s in sets {
            apply_set(&mut table, s)?;
        }
        let cfg: TrainConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        cfg.validate().with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let checks = [
            (t.max_steps == 0, "train.max_steps must be > 0"),
            (t.batch_size == 0, "train.batch_size must be > 0"),
            (t.grad_accum == 0, "train.grad_accum must be > 0"),
            (!(t.learning_rate > 0.0), "train.learning_rate must be > 0"),
            (t.keep_last == 0, "train.keep_last must be ≥ 1"),
            (self.data.max_seq_len < 2, "data.max_seq_len must be ≥ 2"),
            (self.data.train.is_empty(), "data.train names no file"),
            (self.adapter.rank == 0, "adapter.rank must be > 0"),
            (!(0.0..1.0).contains(&self.adapter.dropout), "adapter.dropout must be in [0, 1)"),
        ];
        for (bad, msg) in checks {
            if bad {
                bail!("{msg}");
            }
        }
        if !matches!(self.train.objective.as_str(), "sft" | "orpo") {
            bail!("train.objective must be \"sft\" or \"orpo\", got {:?}", self.train.objective);
        }
        if !(self.orpo.lambda >= 0.0) {
            bail!("orpo.lambda must be ≥ 0");
        }
        if !matches!(self.adapter.kind.as_str(), "lora" | "dora") {
            bail!("adapter.kind must be \"lora\" or \"dora\", got {:?}", self.adapter.kind);
        }
        bit_axon_quant::QuantFormat::parse(&self.quant.format).map_err(|e| anyhow::anyhow!("quant.format: {e}"))?;
        Ok(())
    }

    /// The model section without `path`: a preset plus overrides, or `None` when `path` is set
    /// (the checkpoint's `config.json` decides).
    pub fn model_path(&self) -> Option<PathBuf> {
        self.model.get("path").and_then(|v| v.as_str()).map(PathBuf::from)
    }

    /// The model configuration from `[model]` (preset + overrides) when no `path` is given.
    pub fn model_config(&self) -> Result<BitAxonConfig> {
        let mut t = self.model.clone();
        t.remove("path");
        let text = toml::to_string(&t)?;
        Ok(BitAxonConfig::from_toml_str(&text, Path::new("[model]"))?)
    }
}

/// `a.b.c=value` into the table.
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (key, raw) = set.split_once('=').with_context(|| format!("--set {set:?}: expected key=value"))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("--set {key}: `{p}` is not a table"))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}
