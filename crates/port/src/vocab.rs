//! Choosing the kept vocabulary and its new numbering.
//!
//! The kept set always contains the byte-level alphabet (every single-character token, so any
//! text still encodes) and the chat special tokens ([`CHAT_SPECIALS`]), and is closed under
//! merges: a token is kept only with both parts of the merge that first produces it, so BPE
//! can still build it. Regular tokens are numbered `0..` in their original id order; the kept
//! special tokens follow, also in their original order.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::tokenizer::TokenizerFile;

/// Special tokens the Qwen chat template needs; kept whatever the vocabulary size.
pub const CHAT_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// New id → old id.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabMap {
    pub new_to_old: Vec<u32>,
    /// How the map was chosen, for the report.
    pub method: String,
}

impl VocabMap {
    /// `0..n` unchanged (no tokenizer: the reference's first-N mapping).
    pub fn identity(n: usize) -> Self {
        Self { new_to_old: (0..n as u32).collect(), method: format!("first {n} ids (no tokenizer)") }
    }

    pub fn len(&self) -> usize {
        self.new_to_old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.new_to_old.is_empty()
    }

    pub fn old_to_new(&self) -> HashMap<u32, u32> {
        self.new_to_old.iter().enumerate().map(|(n, &o)| (o, n as u32)).collect()
    }
}

/// The first ids of the tokenizer (merge-closed), plus the chat special tokens: `n` in all.
pub fn first_n(tok: &TokenizerFile, n: usize) -> Result<VocabMap> {
    let mut ids: Vec<u32> = tok.vocab.values().copied().collect();
    ids.sort_unstable();
    select(tok, n, ids.into_iter(), format!("first {n} ids (merge-closed) + chat special tokens"))
}

/// The tokens most frequent in `counts` (ties by id), then the remaining ids in order: `n` in all.
pub fn by_frequency(tok: &TokenizerFile, n: usize, counts: &HashMap<u32, u64>) -> Result<VocabMap> {
    let mut by_freq: Vec<(u32, u64)> = counts.iter().map(|(&id, &c)| (id, c)).collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut rest: Vec<u32> = tok.vocab.values().copied().collect();
    rest.sort_unstable();
    let candidates = by_freq.into_iter().map(|(id, _)| id).chain(rest);
    select(tok, n, candidates, format!("{n} ids by corpus frequency (merge-closed) + chat special tokens"))
}

/// Token counts of `text` under the full tokenizer (special tokens in the text are recognised).
pub fn count_corpus(tokenizer_path: &Path, text: &str) -> Result<HashMap<u32, u64>> {
    let tk = tokenizers::Tokenizer::from_file(tokenizer_path)
        .map_err(|e| Error::format(tokenizer_path, format!("cannot load tokenizer: {e}")))?;
    let mut counts = HashMap::new();
    // Encode in pieces of whole lines so memory stays bounded on a large corpus.
    let mut chunk = String::new();
    let mut flush = |chunk: &mut String| -> Result<()> {
        let enc = tk
            .encode(chunk.as_str(), false)
            .map_err(|e| Error::format(tokenizer_path, format!("cannot encode the corpus: {e}")))?;
        for &id in enc.get_ids() {
            *counts.entry(id).or_insert(0u64) += 1;
        }
        chunk.clear();
        Ok(())
    };
    for line in text.split_inclusive('\n') {
        chunk.push_str(line);
        if chunk.len() > 1 << 16 {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    Ok(counts)
}

fn select(tok: &TokenizerFile, n: usize, candidates: impl Iterator<Item = u32>, method: String) -> Result<VocabMap> {
    let id_to_tok: HashMap<u32, &str> = tok.vocab.iter().map(|(t, &i)| (i, t.as_str())).collect();
    let specials: Vec<u32> = {
        let mut s: Vec<u32> =
            tok.added.iter().filter(|(_, c)| CHAT_SPECIALS.contains(&c.as_str())).map(|(id, _)| *id).collect();
        s.sort_unstable();
        s
    };
    let mut producer: HashMap<String, (&str, &str)> = HashMap::new();
    for (a, b) in &tok.merges {
        producer.entry(tok.merge_result(a, b)).or_insert((a.as_str(), b.as_str()));
    }
    let alphabet: BTreeSet<u32> = tok.vocab.iter().filter(|(t, _)| t.chars().count() == 1).map(|(_, &id)| id).collect();
    let budget = n.checked_sub(specials.len()).filter(|&b| b >= alphabet.len()).ok_or_else(|| {
        Error::Incompatible(format!(
            "vocabulary size {n} is smaller than the {} single-character tokens plus {} chat special tokens that must be kept",
            alphabet.len(),
            specials.len()
        ))
    })?;
    if budget > tok.vocab.len() {
        return Err(Error::Incompatible(format!(
            "vocabulary size {n} exceeds the tokenizer's {} base tokens + {} chat special tokens ({})",
            tok.vocab.len(),
            specials.len(),
            tok.path.display()
        )));
    }
    let mut kept = alphabet;
    for id in candidates {
        if kept.len() >= budget {
            break;
        }
        let Some(&t) = id_to_tok.get(&id) else { continue };
        if kept.contains(&id) {
            continue;
        }
        // Everything needed to build `t`: itself and, recursively, the parts of its merge.
        let mut missing = BTreeSet::new();
        let mut stack = vec![t];
        while let Some(s) = stack.pop() {
            let Some(&sid) = tok.vocab.get(s) else { continue };
            if kept.contains(&sid) || !missing.insert(sid) {
                continue;
            }
            if let Some(&(a, b)) = producer.get(s) {
                stack.push(a);
                stack.push(b);
            }
        }
        if kept.len() + missing.len() <= budget {
            kept.extend(missing);
        }
    }
    if kept.len() < budget {
        return Err(Error::Incompatible(format!(
            "could only choose {} merge-closed tokens for a budget of {budget} from {}",
            kept.len(),
            tok.path.display()
        )));
    }
    let mut new_to_old: Vec<u32> = kept.into_iter().collect();
    new_to_old.extend(specials);
    Ok(VocabMap { new_to_old, method })
}
