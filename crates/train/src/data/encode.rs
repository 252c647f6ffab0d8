//! Tokenizing examples with the chat template and marking which tokens carry loss.
//!
//! A conversation is encoded turn by turn (`<|im_start|>role\n` · content · `<|im_end|>` · `\n`).
//! Loss falls on the assistant's content and its closing `<|im_end|>` (so the model learns to
//! stop), never on the headers, the user or system turns, or the newline after `<|im_end|>`; no
//! extra end token is appended (the reference appends a second `<|im_end|>`, catalogue §1.10).

use anyhow::Result;
use bit_axon_inference::{ChatTemplate, TextTokenizer};

use super::format::Example;

/// Token ids and, per token, whether predicting it is trained (`true`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub train: Vec<bool>,
}

impl Encoded {
    fn push(&mut self, ids: Vec<u32>, train: bool) {
        self.train.extend(std::iter::repeat_n(train, ids.len()));
        self.ids.extend(ids);
    }

    /// Tokens that carry loss.
    pub fn trained(&self) -> usize {
        self.train.iter().filter(|&&t| t).count()
    }
}

/// Encodes one example; `mask_prompt = false` trains every token of a conversation too.
/// Plain text gets an `<|endoftext|>` at its end (trained) so documents stay delimited.
pub fn encode(tok: &TextTokenizer, tpl: &ChatTemplate, ex: &Example, mask_prompt: bool) -> Result<Encoded> {
    let mut e = Encoded::default();
    match ex {
        Example::Text(t) => {
            e.push(tok.encode(t)?, true);
            e.push(vec![tok.require("<|endoftext|>")?], true);
        }
        Example::Chat(messages) => {
            let end = tok.require(&tpl.end)?;
            for m in messages {
                let learn = m.role == "assistant" || !mask_prompt;
                e.push(tok.encode(&format!("{}{}\n", tpl.start, m.role))?, !mask_prompt);
                e.push(tok.encode(&m.content)?, learn);
                e.push(vec![end], learn);
                e.push(tok.encode("\n")?, !mask_prompt);
            }
        }
    }
    Ok(e)
}
