//! Attaching adapters to a model, freezing its base, and the PEFT file layout
//! (`adapter_config.json` + `adapter_model.safetensors`).
//!
//! PEFT keys: `base_model.model.{path}.lora_A.weight` `[r, in]`, `...lora_B.weight` `[out, r]`
//! and, for DoRA, `...lora_magnitude_vector.weight` `[out]` (the bare `...lora_magnitude_vector`
//! of older PEFT versions is read too). `{path}` is the projection's checkpoint prefix
//! (`layer_3.attention.q_proj`). Scale is `lora_alpha / r` (no rsLoRA).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use bit_axon::BitAxonModel;
use bit_axon::checkpoint::{FloatDtype, OwnedTensor, TensorFiles, write_safetensors, write_text_atomic};
use bit_axon::layers::{Adapter, AdapterConfig, Projection};
use bit_axon_quant::{QuantFormat, QuantLinear, QuantMatrix};
use burn::module::{Module, ParamId};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::AdapterSection;

/// Whether the projection at `path` is targeted by `pattern` (suffix match on `.`-separated
/// components, or a full match with `*` wildcards).
pub fn matches(path: &str, pattern: &str) -> bool {
    if pattern.contains('*') {
        return wildcard(path, pattern);
    }
    path == pattern || path.ends_with(&format!(".{pattern}"))
}

fn wildcard(s: &str, p: &str) -> bool {
    match p.split_once('*') {
        None => s == p,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else { return false };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && wildcard(&rest[i..], tail))
        }
    }
}

/// Parameter-id seed of the adapter at `path` (stable across runs: optimizer state is keyed by
/// parameter id, so a resumed run must rebuild the same ids).
pub fn id_seed(path: &str) -> u64 {
    // FNV-1a, then spread so A/B/m (seed, +1, +2) of different paths never collide in practice.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h & !3
}

pub fn adapter_config(s: &AdapterSection) -> AdapterConfig {
    AdapterConfig::new().with_rank(s.rank).with_alpha(s.alpha).with_dropout(s.dropout).with_dora(s.kind == "dora")
}

/// Freezes every base parameter and attaches a fresh adapter to each targeted projection.
/// Returns the model and the adapted paths; an error if a pattern matches nothing.
pub fn apply(model: BitAxonModel, s: &AdapterSection, device: &Device) -> Result<(BitAxonModel, Vec<String>)> {
    let cfg = adapter_config(s);
    let mut model = model.no_grad();
    let mut used = vec![false; s.targets.len()];
    let mut paths = Vec::new();
    model.visit_projections_mut(&mut |path, p| {
        let hit: Vec<usize> = (0..s.targets.len()).filter(|&i| matches(path, &s.targets[i])).collect();
        if hit.is_empty() {
            return;
        }
        for i in hit {
            used[i] = true;
        }
        p.adapter = Some(cfg.init(&p.weight, id_seed(path), device));
        paths.push(path.to_string());
    });
    if let Some(i) = used.iter().position(|u| !u) {
        bail!("adapter.targets: `{}` matches no projection of this model", s.targets[i]);
    }
    Ok((model, paths))
}

/// `adapter_config.json` in PEFT's schema (the fields PEFT reads for LoRA/DoRA).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
}

fn none() -> String {
    "none".into()
}

const PREFIX: &str = "base_model.model.";

/// Writes the model's adapters to `dir` (created) in the PEFT layout, f32, each file atomically.
pub fn save_peft(model: &BitAxonModel, s: &AdapterSection, base: Option<&str>, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tensors = BTreeMap::new();
    let mut targets = Vec::new();
    let mut dora = false;
    for (path, p) in model.projections() {
        let Some(a) = &p.adapter else { continue };
        targets.push(path.clone());
        let key = |k: &str| format!("{PREFIX}{path}.{k}");
        tensors.insert(key("lora_A.weight"), owned(a.lora_a.val().transpose()));
        tensors.insert(key("lora_B.weight"), owned(a.lora_b.val().transpose()));
        if let Some(m) = &a.magnitude {
            dora = true;
            tensors.insert(key("lora_magnitude_vector.weight"), owned(m.val()));
        }
    }
    if targets.is_empty() {
        bail!("the model has no adapters to save");
    }
    let cfg = PeftConfig {
        peft_type: "LORA".into(),
        task_type: "CAUSAL_LM".into(),
        r: s.rank,
        lora_alpha: s.alpha,
        lora_dropout: s.dropout,
        target_modules: targets,
        use_dora: dora,
        use_rslora: false,
        bias: "none".into(),
        fan_in_fan_out: false,
        inference_mode: true,
        base_model_name_or_path: base.map(String::from),
    };
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let list: Vec<(String, OwnedTensor)> = tensors.into_iter().collect();
    write_safetensors(&dir.join("adapter_model.safetensors"), &list, Some(meta))?;
    write_text_atomic(&dir.join("adapter_config.json"), &serde_json::to_string_pretty(&cfg)?)?;
    Ok(())
}

fn owned<const D: usize>(t: Tensor<D>) -> OwnedTensor {
    let shape = t.dims().to_vec();
    let v: Vec<f32> = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("float tensor");
    OwnedTensor::from_f32(&v, shape, FloatDtype::F32)
}

/// Reads `dir/adapter_config.json`.
pub fn read_peft_config(dir: &Path) -> Result<PeftConfig> {
    let p = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let cfg: PeftConfig =
        serde_json::from_str(&text).with_context(|| format!("{}: not a PEFT adapter config", p.display()))?;
    if cfg.peft_type != "LORA" {
        bail!("{}: peft_type {:?} is not supported (LORA, with use_dora for DoRA)", p.display(), cfg.peft_type);
    }
    if cfg.use_rslora {
        bail!("{}: use_rslora is not supported", p.display());
    }
    Ok(cfg)
}

/// The adapter section a PEFT config describes (targets are the exact saved paths).
pub fn section_of(cfg: &PeftConfig) -> AdapterSection {
    AdapterSection {
        kind: if cfg.use_dora { "dora" } else { "lora" }.into(),
        rank: cfg.r,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout,
        targets: cfg.target_modules.clone(),
        init_from: None,
    }
}

/// Loads a PEFT adapter from `dir` onto `model` (base frozen). Every tensor must belong to a
/// projection of the model with matching shapes; errors name the tensor and file.
pub fn load_peft(model: BitAxonModel, dir: &Path, device: &Device) -> Result<(BitAxonModel, PeftConfig)> {
    let cfg = read_peft_config(dir)?;
    let file = dir.join("adapter_model.safetensors");
    let files = TensorFiles::open(&file, std::slice::from_ref(&file))?;
    let scale = cfg.lora_alpha / cfg.r as f64;
    let mut model = model.no_grad();
    let mut seen = std::collections::HashSet::new();
    let mut err: Option<anyhow::Error> = None;
    model.visit_projections_mut(&mut |path, p| {
        if err.is_some() {
            return;
        }
        let key = |k: &str| format!("{PREFIX}{path}.{k}");
        if files.shape(&key("lora_A.weight")).is_none() {
            return;
        }
        let [d_in, d_out] = p.dims();
        let r = cfg.r;
        let res = (|| -> Result<Adapter> {
            let a = files.read_f32(&key("lora_A.weight"), &[r, d_in])?;
            let b = files.read_f32(&key("lora_B.weight"), &[d_out, r])?;
            let m = if cfg.use_dora {
                let k = if files.shape(&key("lora_magnitude_vector.weight")).is_some() {
                    key("lora_magnitude_vector.weight")
                } else {
                    key("lora_magnitude_vector")
                };
                Some(Tensor::<1>::from_data(TensorData::new(files.read_f32(&k, &[d_out])?, [d_out]), device))
            } else {
                None
            };
            let a = Tensor::<2>::from_data(TensorData::new(a, [r, d_in]), device).transpose();
            let b = Tensor::<2>::from_data(TensorData::new(b, [d_out, r]), device).transpose();
            Ok(Adapter::from_tensors(a, b, m, scale, cfg.lora_dropout, &p.weight, id_seed(path)))
        })();
        match res {
            Ok(a) => {
                p.adapter = Some(a);
                seen.insert(path.to_string());
            }
            Err(e) => err = Some(e),
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    for name in files.names() {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            bail!("{}: tensor `{name}` is not under `{PREFIX}`", file.display());
        };
        let path = ["lora_A.weight", "lora_B.weight", "lora_magnitude_vector.weight", "lora_magnitude_vector"]
            .iter()
            .find_map(|s| rest.strip_suffix(&format!(".{s}")));
        match path {
            Some(p) if seen.contains(p) => {}
            _ => bail!("{}: tensor `{name}` does not match any projection of this model", file.display()),
        }
    }
    Ok((model, cfg))
}

/// Folds every adapter into its projection: float bases get `W'`; a 4-bit base is dequantized
/// (`requantize = None`) or quantized again in the given format and group size.
pub fn merge(mut model: BitAxonModel, requantize: Option<(QuantFormat, usize)>) -> Result<BitAxonModel> {
    let mut err = None;
    model.visit_projections_mut(&mut |path, p| {
        let Some(a) = p.adapter.take() else { return };
        let fused = a.fused_weight(&p.weight); // [out, in]
        let device = fused.device();
        let [d_out, d_in] = fused.dims();
        let quantize_again = match requantize {
            Some(q) if p.is_quantized() => Some(q),
            _ => None,
        };
        match quantize_again {
            None => {
                let l = burn::nn::Linear { weight: burn::module::Param::from_tensor(fused.transpose()), bias: None };
                *p = Projection::float(l);
            }
            Some((format, gs)) => {
                let res = fused
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("{path}: {e:?}"))
                    .and_then(|w| Ok(QuantMatrix::quantize(path, format, &w, &[d_out, d_in], gs)?));
                match res {
                    Ok(m) => *p = Projection::quant(QuantLinear::from_matrix(&m, &device)),
                    Err(e) => err = Some(e),
                }
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

/// One trainable tensor: where it sits (`layer_3.attention.q_proj.lora_a`), its id and rank.
#[derive(Debug, Clone)]
pub struct Trainable {
    pub name: String,
    pub id: ParamId,
    pub rank: usize,
}

/// Every adapter tensor (the trainable set), in model order.
pub fn trainable_params(model: &BitAxonModel) -> Vec<Trainable> {
    let mut out = Vec::new();
    for (path, p) in model.projections() {
        if let Some(a) = &p.adapter {
            out.push(Trainable { name: format!("{path}.lora_a"), id: a.lora_a.id, rank: 2 });
            out.push(Trainable { name: format!("{path}.lora_b"), id: a.lora_b.id, rank: 2 });
            if let Some(m) = &a.magnitude {
                out.push(Trainable { name: format!("{path}.magnitude"), id: m.id, rank: 1 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_patterns() {
        assert!(matches("layer_3.attention.q_proj", "q_proj"));
        assert!(matches("layer_3.attention.q_proj", "attention.q_proj"));
        assert!(!matches("layer_3.attention.q_proj", "_proj"));
        assert!(matches("layer_12.ssm.in_proj", "layer_*.ssm.in_proj"));
        assert!(!matches("layer_12.ssm.x_proj", "layer_*.ssm.in_proj"));
        assert!(matches("input_proj", "input_proj"));
        assert!(!matches("layer_0.moe.shared_expert_gate", "gate"));
        assert!(matches("layer_0.moe.gate", "gate"));
    }
}
