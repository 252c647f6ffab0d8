//! Hugging Face `tokenizer.json` (BPE model): reading the parts porting needs, and writing the
//! truncated tokenizer: the kept vocabulary renumbered, only the merges whose two parts and
//! result are all kept (in their original order), the kept added tokens renumbered, and the
//! normaliser, pre-tokenizer, post-processor and decoder unchanged. With a merge-closed kept
//! set (see [`crate::vocab`]) text made of kept tokens encodes to the same tokens, renumbered.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::vocab::VocabMap;

/// A parsed BPE `tokenizer.json`.
pub struct TokenizerFile {
    pub path: PathBuf,
    pub json: Value,
    /// Base vocabulary, token → id.
    pub vocab: HashMap<String, u32>,
    /// Merges in rank order.
    pub merges: Vec<(String, String)>,
    /// Added tokens (`id`, `content`), e.g. the chat special tokens.
    pub added: Vec<(u32, String)>,
    /// `continuing_subword_prefix` of the BPE model ("" for byte-level BPE).
    pub subword_prefix: String,
}

impl TokenizerFile {
    pub fn open(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| Error::format(path, format!("not JSON: {e}")))?;
        Self::from_json(json, path)
    }

    pub fn from_json(json: Value, path: &Path) -> Result<Self> {
        let bad = |why: &str| Error::format(path, why.to_string());
        let model = json.get("model").ok_or_else(|| bad("no `model` section"))?;
        if model.get("type").and_then(Value::as_str) != Some("BPE") {
            return Err(bad("only BPE tokenizers (`model.type` = \"BPE\") can be truncated"));
        }
        let vocab_obj = model.get("vocab").and_then(Value::as_object).ok_or_else(|| bad("no `model.vocab` object"))?;
        let mut vocab = HashMap::with_capacity(vocab_obj.len());
        for (tok, id) in vocab_obj {
            let id = id.as_u64().ok_or_else(|| bad(&format!("vocab entry `{tok}` has a non-integer id")))?;
            vocab.insert(tok.clone(), id as u32);
        }
        let merges = model
            .get("merges")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `model.merges` list"))?
            .iter()
            .map(|m| parse_merge(m).ok_or_else(|| bad(&format!("bad merge entry {m}"))))
            .collect::<Result<Vec<_>>>()?;
        let mut added = Vec::new();
        for t in json.get("added_tokens").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
            let id = t.get("id").and_then(Value::as_u64).ok_or_else(|| bad("added token without an integer `id`"))?;
            let content =
                t.get("content").and_then(Value::as_str).ok_or_else(|| bad("added token without `content`"))?;
            added.push((id as u32, content.to_string()));
        }
        let subword_prefix =
            model.get("continuing_subword_prefix").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Self { path: path.to_path_buf(), json, vocab, merges, added, subword_prefix })
    }

    /// The token a merge produces.
    pub fn merge_result(&self, a: &str, b: &str) -> String {
        format!(
            "{a}{}",
            b.strip_prefix(self.subword_prefix.as_str()).filter(|_| !self.subword_prefix.is_empty()).unwrap_or(b)
        )
    }

    /// Number of ids in use (base vocabulary and added tokens).
    pub fn len(&self) -> usize {
        let max_base = self.vocab.values().copied().max().map_or(0, |m| m as usize + 1);
        let max_added = self.added.iter().map(|(id, _)| *id as usize + 1).max().unwrap_or(0);
        max_base.max(max_added)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The truncated tokenizer for `map` (see the module documentation).
    pub fn truncate(&self, map: &VocabMap) -> Result<Value> {
        let old_to_new = map.old_to_new();
        // Everything but the (large) vocabulary and merges is copied unchanged.
        let mut json = self.json.clone_without_model_tables();
        let mut kept: HashSet<&str> = HashSet::new();
        let mut vocab = Map::new();
        let mut entries: Vec<(&String, u32)> = Vec::new();
        for (tok, old) in &self.vocab {
            if let Some(&new) = old_to_new.get(old) {
                entries.push((tok, new));
                kept.insert(tok.as_str());
            }
        }
        entries.sort_by_key(|e| e.1);
        for (tok, new) in entries {
            vocab.insert(tok.clone(), json!(new));
        }
        let string_merges =
            self.json["model"]["merges"].as_array().and_then(|m| m.first()).is_some_and(Value::is_string);
        let merges: Vec<Value> = self
            .merges
            .iter()
            .filter(|(a, b)| {
                kept.contains(a.as_str())
                    && kept.contains(b.as_str())
                    && kept.contains(self.merge_result(a, b).as_str())
            })
            .map(|(a, b)| if string_merges { json!(format!("{a} {b}")) } else { json!([a, b]) })
            .collect();
        json["model"]["vocab"] = Value::Object(vocab);
        json["model"]["merges"] = Value::Array(merges);
        if let Some(added) = json.get_mut("added_tokens").and_then(Value::as_array_mut) {
            added.retain(|t| {
                t.get("id").and_then(Value::as_u64).is_some_and(|id| old_to_new.contains_key(&(id as u32)))
            });
            for t in added.iter_mut() {
                let old = t["id"].as_u64().unwrap_or_default() as u32;
                t["id"] = json!(old_to_new[&old]);
            }
        }
        remap_post_processor(&mut json["post_processor"], &old_to_new).map_err(|e| Error::format(&self.path, e))?;
        Ok(json)
    }
}

trait CloneWithoutTables {
    fn clone_without_model_tables(&self) -> Value;
}

impl CloneWithoutTables for Value {
    fn clone_without_model_tables(&self) -> Value {
        let mut out = Map::new();
        for (k, v) in self.as_object().into_iter().flatten() {
            if k == "model" {
                let model: Map<String, Value> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(mk, _)| *mk != "vocab" && *mk != "merges")
                    .map(|(mk, mv)| (mk.clone(), mv.clone()))
                    .collect();
                out.insert(k.clone(), Value::Object(model));
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }
}

fn parse_merge(m: &Value) -> Option<(String, String)> {
    match m {
        Value::String(s) => {
            let (a, b) = s.split_once(' ')?;
            Some((a.to_string(), b.to_string()))
        }
        Value::Array(v) if v.len() == 2 => Some((v[0].as_str()?.to_string(), v[1].as_str()?.to_string())),
        _ => None,
    }
}

/// A `TemplateProcessing` post-processor names special tokens by id: renumber them (an error
/// if one was dropped). Other post-processors (Qwen's is `ByteLevel`) hold no ids.
fn remap_post_processor(pp: &mut Value, old_to_new: &HashMap<u32, u32>) -> std::result::Result<(), String> {
    if let Some(list) = pp.get_mut("processors").and_then(Value::as_array_mut) {
        for p in list {
            remap_post_processor(p, old_to_new)?;
        }
    }
    if let Some(specials) = pp.get_mut("special_tokens").and_then(Value::as_object_mut) {
        for (name, tok) in specials.iter_mut() {
            if let Some(ids) = tok.get_mut("ids").and_then(Value::as_array_mut) {
                for id in ids {
                    let old = id.as_u64().ok_or(format!("post-processor token `{name}` has a non-integer id"))? as u32;
                    let new = old_to_new
                        .get(&old)
                        .ok_or(format!("post-processor token `{name}` (id {old}) is not in the kept vocabulary"))?;
                    *id = json!(new);
                }
            }
        }
    }
    Ok(())
}

/// The `tokenizer_config.json` to write beside the truncated tokenizer: the source's with its
/// `added_tokens_decoder` renumbered and dropped tokens removed (also from
/// `additional_special_tokens`), or a minimal Qwen-style one when there is no source config.
pub fn truncate_tokenizer_config(source: Option<&Value>, tok: &TokenizerFile, map: &VocabMap) -> Value {
    let old_to_new = map.old_to_new();
    let kept_added: HashMap<&str, u32> =
        tok.added.iter().filter_map(|(old, c)| old_to_new.get(old).map(|n| (c.as_str(), *n))).collect();
    let Some(src) = source else {
        let mut decoder = Map::new();
        for (c, n) in &kept_added {
            decoder.insert(n.to_string(), json!({"content": c, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}));
        }
        return json!({
            "added_tokens_decoder": decoder,
            "eos_token": kept_added.contains_key("<|im_end|>").then_some("<|im_end|>"),
            "pad_token": kept_added.contains_key("<|endoftext|>").then_some("<|endoftext|>"),
            "bos_token": null,
            "unk_token": null,
            "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
    };
    let mut cfg = src.clone();
    if let Some(dec) = src.get("added_tokens_decoder").and_then(Value::as_object) {
        let mut out = Map::new();
        for (old, v) in dec {
            if let Some(new) = old.parse::<u32>().ok().and_then(|o| old_to_new.get(&o)) {
                out.insert(new.to_string(), v.clone());
            }
        }
        cfg["added_tokens_decoder"] = Value::Object(out);
    }
    if let Some(list) = cfg.get_mut("additional_special_tokens").and_then(Value::as_array_mut) {
        list.retain(|t| t.as_str().is_some_and(|s| kept_added.contains_key(s)));
    }
    cfg
}
