use std::collections::HashMap;
use std::collections::HashSet;
use std::path::Path;

use burn::nn::{Embedding, EmbeddingConfig, Initializer, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::linear;

use crate::cache::ModelCache;
use crate::checkpoint::{FloatDtype, Loader, Saver, TensorFiles, write_safetensors, write_text_atomic};
use crate::config::BitAxonConfig;
use crate::error::{Error, Result};
use crate::layers::{Block, BlockConfig, ExpertStack, Projection, Segments};
use crate::params::model_tensors;

/// The Bit-Axon language model.
///
/// ```text
/// x      = input_proj(embed(ids))          ids [B, L] → [B, L, H]   (embedding width Ds)
/// x      = block_i(x)  for i in 0..L        sandwich: SSM | SWA+MoE | SSM+MoE
/// logits = lm_head(output_proj(x))          [B, L, V]  (head tied to the embedding by default)
/// ```
/// No positional encoding and no final norm, as in the reference.
#[derive(Module, Debug)]
pub struct BitAxonModel {
    pub embed_tokens: Embedding,
    pub input_proj: Projection,
    pub layers: Vec<Block>,
    pub output_proj: Projection,
    /// `None` when the head is tied to `embed_tokens`. A 4-bit checkpoint of a tied model may
    /// hold its own quantized copy of the head (the reference does), which is used when present.
    pub lm_head: Option<Projection>,
}

/// What loading a checkpoint found beyond the model's own tensors.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Tensors in the files that the model does not use (sorted).
    pub unused: Vec<String>,
}

/// Output of [`BitAxonModel::forward_hidden`]: logits plus the residual stream after each stage.
#[derive(Debug, Clone)]
pub struct HiddenStates {
    pub logits: Tensor<3>,
    /// `input_proj(embed(ids))`, `[B, L, H]`.
    pub embed_proj: Tensor<3>,
    /// Output of each block, `[B, L, H]`.
    pub layers: Vec<Tensor<3>>,
    /// `output_proj(x)` before the head, `[B, L, Ds]`.
    pub output_proj: Tensor<3>,
}

/// Options for writing a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct SaveOptions {
    /// Precision of ordinary parameters.
    pub dtype: FloatDtype,
    /// Precision of the routed-expert stacks (the reference stores f16).
    pub expert_dtype: FloatDtype,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self { dtype: FloatDtype::F32, expert_dtype: FloatDtype::F16 }
    }
}

impl BitAxonConfig {
    /// A randomly initialised model (see each layer's `init` for the scheme).
    pub fn init(&self, device: &Device) -> BitAxonModel {
        let (v, ds, h) = (self.vocab_size, self.d_source_model, self.hidden_dim);
        let embed_tokens = EmbeddingConfig::new(v, ds)
            .with_initializer(Initializer::Normal { mean: 0.0, std: 1.0 / (ds as f64).sqrt() })
            .init(device);
        let lin = |i, o| Projection::float(LinearConfig::new(i, o).with_bias(false).init(device));
        BitAxonModel {
            embed_tokens,
            input_proj: lin(ds, h),
            layers: (0..self.num_layers).map(|i| BlockConfig::new(self, i).init(device)).collect(),
            output_proj: lin(h, ds),
            lm_head: (!self.weight_tying).then(|| lin(ds, v)),
        }
    }
}

impl BitAxonModel {
    /// Loads a checkpoint directory (`config.json` + `*.safetensors`, reference layout).
    pub fn load(dir: &Path, device: &Device) -> Result<(BitAxonConfig, BitAxonModel, LoadReport)> {
        let config = BitAxonConfig::from_json_file(&dir.join("config.json"))?;
        let files = TensorFiles::open_dir(dir)?;
        let model = Self::from_files(&config, &files, device)?;
        let report = unused_report(&config, &files);
        Ok((config, model, report))
    }

    /// Builds the model from already opened tensor files.
    pub fn from_files(cfg: &BitAxonConfig, files: &TensorFiles, device: &Device) -> Result<Self> {
        let ld = Loader::new(files, device);
        let (v, ds, h) = (cfg.vocab_size, cfg.d_source_model, cfg.hidden_dim);
        let embed = ld.param("embed_tokens.weight", [v, ds])?;
        let layers = (0..cfg.num_layers)
            .map(|i| BlockConfig::new(cfg, i).load(&ld, &format!("layer_{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(BitAxonModel {
            embed_tokens: Embedding { weight: embed },
            input_proj: ld.projection("input_proj", ds, h)?,
            layers,
            output_proj: ld.projection("output_proj", h, ds)?,
            lm_head: match ld.quant_matrix("lm_head", &[v, ds])? {
                Some(m) => Some(Projection::quant(bit_axon_quant::QuantLinear::from_matrix(&m, device))),
                None if cfg.weight_tying => None,
                None => Some(ld.projection("lm_head", ds, v)?),
            },
        })
    }

    /// Writes `config.json` and `model.safetensors` into `dir` in the reference layout (a tied
    /// head is also written as `lm_head.weight`, as the reference does). Each file is written
    /// to a temporary name and renamed.
    pub fn save(&self, cfg: &BitAxonConfig, dir: &Path, opts: SaveOptions) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut sv = Saver::new(opts.dtype, opts.expert_dtype);
        self.export(&mut sv);
        let meta = HashMap::from([("format".to_string(), "mlx".to_string())]);
        write_safetensors(&dir.join("model.safetensors"), &sv.tensors, Some(meta))?;
        write_text_atomic(&dir.join("config.json"), &cfg.to_json())
    }

    /// Appends every tensor, with reference names, to `sv`.
    pub fn export(&self, sv: &mut Saver) {
        sv.param("embed_tokens.weight".into(), &self.embed_tokens.weight);
        sv.projection("input_proj", &self.input_proj);
        for (i, layer) in self.layers.iter().enumerate() {
            layer.save(sv, &format!("layer_{i}"));
        }
        sv.projection("output_proj", &self.output_proj);
        match &self.lm_head {
            Some(head) => sv.projection("lm_head", head),
            None => sv.param("lm_head.weight".into(), &self.embed_tokens.weight),
        }
    }

    /// Every dense projection with its checkpoint prefix (`layer_3.attention.q_proj`, ...), in
    /// checkpoint order. The routed-expert stacks are not projections and are not listed.
    pub fn projections(&self) -> Vec<(String, &Projection)> {
        let mut out = vec![("input_proj".to_string(), &self.input_proj)];
        for (i, b) in self.layers.iter().enumerate() {
            b.projections(&format!("layer_{i}"), &mut out);
        }
        out.push(("output_proj".to_string(), &self.output_proj));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head".to_string(), h));
        }
        out
    }

    /// Mutable form of [`BitAxonModel::projections`]: `f(prefix, projection)` may attach an
    /// adapter or swap the weight.
    pub fn visit_projections_mut(&mut self, f: &mut dyn FnMut(&str, &mut Projection)) {
        f("input_proj", &mut self.input_proj);
        for (i, b) in self.layers.iter_mut().enumerate() {
            b.visit_projections_mut(&format!("layer_{i}"), f);
        }
        f("output_proj", &mut self.output_proj);
        if let Some(h) = &mut self.lm_head {
            f("lm_head", h);
        }
    }

    /// Calls `f` on every routed-expert stack with its checkpoint prefix
    /// (`layer_{i}.moe.switch_mlp.{gate,up,down}_proj`).
    pub fn visit_expert_stacks_mut(&mut self, f: &mut dyn FnMut(&str, &mut ExpertStack)) {
        for (i, b) in self.layers.iter_mut().enumerate() {
            if let Some(m) = &mut b.moe {
                let sw = &mut m.switch_mlp;
                for (name, s) in
                    [("gate_proj", &mut sw.gate_proj), ("up_proj", &mut sw.up_proj), ("down_proj", &mut sw.down_proj)]
                {
                    f(&format!("layer_{i}.moe.switch_mlp.{name}"), s);
                }
            }
        }
    }

    /// Full forward without a cache: `ids [B, L]` → logits `[B, L, V]`.
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.run(ids, None, None, None)
    }

    /// Full forward over packed rows: each document of `docs` is computed as if alone (no
    /// attention, convolution or SSM state across a boundary). Training uses this.
    pub fn forward_packed(&self, ids: Tensor<2, Int>, docs: &Segments) -> Tensor<3> {
        self.run(ids, None, None, Some(docs))
    }

    /// Forward that continues from `cache` and updates it: use it for prefill (any length,
    /// also in several pieces) and for one-token decode steps.
    pub fn forward_cached(&self, ids: Tensor<2, Int>, cache: &mut ModelCache) -> Tensor<3> {
        self.run(ids, Some(cache), None, None)
    }

    /// Full forward that also returns the residual stream after every stage.
    pub fn forward_hidden(&self, ids: Tensor<2, Int>) -> HiddenStates {
        let mut hidden = Vec::with_capacity(self.layers.len() + 2);
        let logits = self.run(ids, None, Some(&mut hidden), None);
        let output_proj = hidden.pop().expect("output_proj recorded");
        let embed_proj = hidden.remove(0);
        HiddenStates { logits, embed_proj, layers: hidden, output_proj }
    }

    /// A cache sized for this model.
    pub fn new_cache(&self) -> ModelCache {
        ModelCache::new(self.layers.len())
    }

    fn run(
        &self,
        ids: Tensor<2, Int>,
        mut cache: Option<&mut ModelCache>,
        mut hidden: Option<&mut Vec<Tensor<3>>>,
        docs: Option<&Segments>,
    ) -> Tensor<3> {
        let len = ids.dims()[1];
        let mut x = self.input_proj.forward(self.embed_tokens.forward(ids));
        if let Some(h) = hidden.as_deref_mut() {
            h.push(x.clone());
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let prev = cache.as_deref_mut().and_then(|c| c.layers[i].take());
            let (y, state) = layer.forward_docs(x, prev, docs);
            x = y;
            if let Some(c) = cache.as_deref_mut() {
                c.layers[i] = Some(state);
            }
            if let Some(h) = hidden.as_deref_mut() {
                h.push(x.clone());
            }
        }
        if let Some(c) = cache {
            c.position += len;
        }
        let x = self.output_proj.forward(x);
        if let Some(h) = hidden {
            h.push(x.clone());
        }
        match &self.lm_head {
            Some(head) => head.forward(x),
            None => linear(x, self.embed_tokens.weight.val().transpose(), None),
        }
    }
}

/// Keys that sit beside `X.weight` when `X` is stored in 4 bits.
const QUANT_KEYS: [&str; 7] = ["scales", "biases", "biases_quant", "absmax", "absmax_q", "absmax_scale", "absmax_mean"];

fn unused_report(cfg: &BitAxonConfig, files: &TensorFiles) -> LoadReport {
    let mut known: HashSet<String> = HashSet::new();
    for name in model_tensors(cfg).into_iter().map(|t| t.name).chain(["lm_head.weight".to_string()]) {
        if let Some(base) = name.strip_suffix(".weight") {
            for part in QUANT_KEYS {
                known.insert(format!("{base}.{part}"));
            }
        }
        known.insert(name);
    }
    let mut unused: Vec<String> = files.names().filter(|n| !known.contains(*n)).map(String::from).collect();
    unused.sort();
    LoadReport { unused }
}

/// Checks token ids against the vocabulary; the error names the first bad position.
pub fn check_token_ids(ids: &[i64], shape: [usize; 2], vocab: usize) -> Result<()> {
    if let Some(pos) = ids.iter().position(|&t| t < 0 || t as usize >= vocab) {
        let (b, t) = (pos / shape[1].max(1), pos % shape[1].max(1));
        return Err(Error::Input(format!(
            "token id {} at [batch {b}, position {t}] is outside the vocabulary [0, {vocab})",
            ids[pos]
        )));
    }
    Ok(())
}

/// Makes an id tensor `[B, L]` on `device`.
pub fn token_tensor(ids: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids, shape), device)
}
