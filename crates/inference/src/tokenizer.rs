use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Special tokens the chat template and the stop conditions use, resolved by name.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// A Hugging Face `tokenizer.json` with the chat special tokens resolved.
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
}

impl TextTokenizer {
    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(Self { inner, path: path.to_path_buf() })
    }

    /// Loads `tokenizer.json` from a checkpoint directory.
    pub fn from_model_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::Tokenizer {
                path,
                reason: "not found; pass --tokenizer PATH or put tokenizer.json in the model directory".into(),
            });
        }
        Self::from_file(&path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Entries in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token by its text, if present.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Id of a token the caller cannot do without; the error names the token and the file.
    pub fn require(&self, token: &str) -> Result<u32> {
        self.token_id(token)
            .ok_or_else(|| Error::MissingSpecialToken { path: self.path.clone(), name: token.to_string() })
    }

    /// Checks that the chat template's tokens exist.
    pub fn require_chat_tokens(&self) -> Result<()> {
        self.require("<|im_start|>")?;
        self.require("<|im_end|>")?;
        Ok(())
    }

    /// Ids that end generation: `<|endoftext|>` and `<|im_end|>`, those present.
    pub fn stop_ids(&self) -> Vec<u32> {
        ["<|endoftext|>", "<|im_end|>"].iter().filter_map(|t| self.token_id(t)).collect()
    }

    /// Encodes text as is (special-token strings such as `<|im_start|>` become their ids; no
    /// BOS/EOS is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text, dropping special tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }

    /// Text of `ids` with special tokens written out (`<|im_start|>` ...).
    pub fn decode_with_special(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }
}

/// GPT-2's reversible byte → printable-character map used by byte-level BPE vocabularies.
fn byte_to_char() -> Vec<char> {
    let mut map = vec!['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("valid code point");
            next += 1;
            c
        };
    }
    map
}

/// The `tokenizer.json` of a byte-level BPE with no merges: ids 0–255 are the bytes, followed by
/// the chat special tokens (256 `<|endoftext|>`, 257 `<|im_start|>`, 258 `<|im_end|>`).
/// Any text encodes (one token per byte); useful for tests and toy models with a small vocabulary.
pub fn byte_level_tokenizer_json() -> String {
    let chars = byte_to_char();
    let vocab: serde_json::Map<String, serde_json::Value> =
        chars.iter().enumerate().map(|(i, c)| (c.to_string(), serde_json::Value::from(i))).collect();
    let added: Vec<serde_json::Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level =
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    serde_json::to_string_pretty(&serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    }))
    .expect("json")
}
