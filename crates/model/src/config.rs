//! Model configuration: the reference's `BitAxonConfig`, its presets, validation and the
//! parameter/memory arithmetic derived from its shapes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Hyper-parameters of a Bit-Axon model.
///
/// Field names are those of the reference implementation's `config.json`, so a checkpoint
/// directory written by either implementation reads in the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BitAxonConfig {
    /// Tokens in the vocabulary (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Width of the residual stream (`H`).
    pub hidden_dim: usize,
    /// Number of blocks; split into thirds: SSM, SWA+MoE, SSM+MoE (remainder to the last).
    pub num_layers: usize,
    /// Attention heads; `hidden_dim / num_heads` is the head size.
    pub num_heads: usize,
    /// Width of the embedding and LM head (`Ds`), the Qwen2.5 bridge dimension.
    pub d_source_model: usize,
    /// SSM state size per channel (`N`).
    pub ssm_d_state: usize,
    /// Kernel size of the SSM's causal depthwise convolution (`K`).
    pub ssm_d_conv: usize,
    /// SSM channel expansion: `E = hidden_dim * ssm_expand`.
    pub ssm_expand: usize,
    /// Chunk length of the parallel scan. Numerics do not depend on it; memory does.
    pub ssm_scan_step: usize,
    /// Sliding-window span `W`: a query sees itself and the `W - 1` tokens before it.
    pub swa_window_size: usize,
    /// Routed experts per MoE layer.
    pub moe_num_experts: usize,
    /// Experts selected per token.
    pub moe_top_k: usize,
    /// Hidden width of each expert's SwiGLU (`I`).
    pub moe_intermediate_dim: usize,
    /// Stored for compatibility; the shared expert is always present (as in the reference).
    pub moe_shared_expert: bool,
    /// Tie the LM head to the embedding.
    pub weight_tying: bool,
    /// Stored for compatibility; nothing limits the sequence length.
    pub max_seq_len: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
}

/// The three block kinds of the sandwich.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `x + SSM(norm(x))`.
    Ssm,
    /// `h = x + SWA(norm(x)); h + MoE(norm(h))`.
    SwaMoe,
    /// `h = x + SSM(norm(x)); h + MoE(norm(h))`.
    SsmMoe,
}

impl LayerKind {
    /// The name the reference uses for this kind.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Ssm => "ssm",
            LayerKind::SwaMoe => "swa_moe",
            LayerKind::SsmMoe => "ssm_moe",
        }
    }
    pub fn has_ssm(self) -> bool {
        !matches!(self, LayerKind::SwaMoe)
    }
    pub fn has_moe(self) -> bool {
        !matches!(self, LayerKind::Ssm)
    }
}

impl Default for BitAxonConfig {
    fn default() -> Self {
        Self::default_preset()
    }
}

/// Preset names accepted by [`BitAxonConfig::preset`].
pub const PRESETS: [&str; 3] = ["small", "medium", "default"];

impl BitAxonConfig {
    /// The reference's `BitAxonConfig()`: 24 layers, hidden 2560 (about 5.77B parameters).
    pub fn default_preset() -> Self {
        Self {
            vocab_size: 32_000,
            hidden_dim: 2_560,
            num_layers: 24,
            num_heads: 32,
            d_source_model: 2_048,
            ssm_d_state: 16,
            ssm_d_conv: 4,
            ssm_expand: 3,
            ssm_scan_step: 64,
            swa_window_size: 4_096,
            moe_num_experts: 8,
            moe_top_k: 2,
            moe_intermediate_dim: 4_096,
            moe_shared_expert: true,
            weight_tying: true,
            max_seq_len: 65_536,
            rms_norm_eps: 1e-6,
        }
    }

    /// The reference's `BitAxonConfig.medium()` (about 1.48B parameters).
    pub fn medium() -> Self {
        Self {
            hidden_dim: 2_048,
            num_layers: 12,
            num_heads: 16,
            d_source_model: 1_536,
            ssm_d_state: 12,
            moe_num_experts: 6,
            moe_intermediate_dim: 3_072,
            ..Self::default_preset()
        }
    }

    /// The reference's `BitAxonConfig.small()` (about 7.6M parameters).
    pub fn small() -> Self {
        Self {
            vocab_size: 1_024,
            hidden_dim: 256,
            num_layers: 4,
            num_heads: 4,
            d_source_model: 128,
            ssm_d_state: 4,
            ssm_d_conv: 2,
            ssm_expand: 2,
            swa_window_size: 64,
            moe_num_experts: 4,
            moe_intermediate_dim: 512,
            ..Self::default_preset()
        }
    }

    /// A preset by name (`small`, `medium`, `default`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "small" => Ok(Self::small()),
            "medium" => Ok(Self::medium()),
            "default" => Ok(Self::default_preset()),
            other => Err(Error::config("preset", format!("unknown preset `{other}`; expected one of {PRESETS:?}"))),
        }
    }

    /// Reads a reference `config.json` (unknown keys are ignored, missing keys take the
    /// `default` preset's values) and validates it.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        cfg.validate().map_err(|e| Error::format(path, e.to_string()))?;
        Ok(cfg)
    }

    /// Reads a TOML model config (as under `configs/models/`). An optional `preset = "NAME"`
    /// key selects the starting values; every other key overrides one field. Unknown keys are
    /// an error, so a typo does not silently fall back to a default.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| Error::format(origin, e.to_string()))?;
        let base = match table.remove("preset") {
            Some(toml::Value::String(name)) => Self::preset(&name).map_err(|e| Error::format(origin, e.to_string()))?,
            Some(other) => {
                return Err(Error::format(origin, format!("`preset` must be a string, found {other}")));
            }
            None => Self::default_preset(),
        };
        let mut merged = match toml::Value::try_from(&base) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("a config always serialises to a table"),
        };
        for (key, value) in table {
            if !merged.contains_key(&key) {
                return Err(Error::format(origin, format!("unknown config key `{key}`")));
            }
            merged.insert(key, value);
        }
        let cfg: Self =
            toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| Error::format(origin, e.to_string()))?;
        cfg.validate().map_err(|e| Error::format(origin, e.to_string()))?;
        Ok(cfg)
    }

    /// Loads a config from a `.json` or `.toml` file, or from a checkpoint directory's `config.json`.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::from_json_file(&path.join("config.json"));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                Self::from_toml_str(&text, path)
            }
            _ => Self::from_json_file(path),
        }
    }

    /// The JSON the reference writes (`dataclasses.asdict`, indent 2).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Checks every constraint the model code relies on; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_dim", self.hidden_dim),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("d_source_model", self.d_source_model),
            ("ssm_d_state", self.ssm_d_state),
            ("ssm_d_conv", self.ssm_d_conv),
            ("ssm_expand", self.ssm_expand),
            ("ssm_scan_step", self.ssm_scan_step),
            ("swa_window_size", self.swa_window_size),
            ("moe_num_experts", self.moe_num_experts),
            ("moe_top_k", self.moe_top_k),
            ("moe_intermediate_dim", self.moe_intermediate_dim),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if self.hidden_dim % self.num_heads != 0 {
            return Err(Error::config(
                "hidden_dim",
                format!("{} is not divisible by num_heads = {}", self.hidden_dim, self.num_heads),
            ));
        }
        if self.moe_top_k > self.moe_num_experts {
            return Err(Error::config(
                "moe_top_k",
                format!("{} exceeds moe_num_experts = {}", self.moe_top_k, self.moe_num_experts),
            ));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(Error::config("rms_norm_eps", format!("{} must be positive", self.rms_norm_eps)));
        }
        Ok(())
    }

    /// Attention head size.
    pub fn head_dim(&self) -> usize {
        self.hidden_dim / self.num_heads
    }

    /// SSM channels `E = hidden_dim * ssm_expand`.
    pub fn ssm_intermediate_dim(&self) -> usize {
        self.hidden_dim * self.ssm_expand
    }

    /// Kind of block `i`: `i < L/3` SSM, `i < 2L/3` SWA+MoE, else SSM+MoE.
    pub fn layer_kind(&self, i: usize) -> LayerKind {
        let third = self.num_layers / 3;
        if i < third {
            LayerKind::Ssm
        } else if i < 2 * third {
            LayerKind::SwaMoe
        } else {
            LayerKind::SsmMoe
        }
    }

    /// Kinds of all blocks, in order.
    pub fn layer_kinds(&self) -> Vec<LayerKind> {
        (0..self.num_layers).map(|i| self.layer_kind(i)).collect()
    }
}
