use std::time::{Duration, Instant};

use bit_axon::{BitAxonModel, ModelCache};
use burn::prelude::*;

use crate::sampling::Sampler;

/// When to stop and what ends a generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Token ids that end the generation (not emitted), e.g. `<|endoftext|>`, `<|im_end|>`.
    pub stop_ids: Vec<u32>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self { max_new_tokens: 256, stop_ids: Vec::new() }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// A stop id was sampled (it is not part of the output).
    StopToken(u32),
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The token callback asked to stop (e.g. a stop string matched).
    Callback,
}

/// Result of [`Session::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// Emitted tokens (stop ids excluded).
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    /// Tokens run through the model before the first sample (new prompt tokens plus any
    /// tokens of the previous answer not yet in the cache).
    pub prefilled: usize,
    /// Time to the first sampled token.
    pub time_to_first_token: Duration,
    /// Time spent after the first token.
    pub decode_time: Duration,
}

impl Generation {
    /// Tokens per second after the first token.
    pub fn decode_tokens_per_second(&self) -> f64 {
        let n = self.tokens.len().saturating_sub(1) as f64;
        if self.decode_time.is_zero() { 0.0 } else { n / self.decode_time.as_secs_f64() }
    }
}

/// A conversation with the model: the hybrid cache plus every token it has seen.
///
/// Prompts are prefilled once through the cache; each new token is one cached step. Tokens
/// sampled but not yet run through the model (the last answer token, or the stop token) wait
/// in `pending` and are run with the next call, so a multi-turn chat prefills only new tokens.
pub struct Session<'m> {
    model: &'m BitAxonModel,
    device: Device,
    cache: ModelCache,
    /// Every token in the conversation (in the cache or pending), for the repetition penalty.
    context: Vec<u32>,
    pending: Vec<u32>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m BitAxonModel, device: &Device) -> Self {
        Self { model, device: device.clone(), cache: model.new_cache(), context: Vec::new(), pending: Vec::new() }
    }

    /// Forgets the conversation.
    pub fn reset(&mut self) {
        self.cache = self.model.new_cache();
        self.context.clear();
        self.pending.clear();
    }

    /// Tokens in the conversation so far.
    pub fn context(&self) -> &[u32] {
        &self.context
    }

    /// Tokens the model has actually processed (the cache position).
    pub fn processed(&self) -> usize {
        self.cache.position
    }

    /// Runs pending tokens plus `ids` through the model; returns the last position's logits.
    fn feed(&mut self, ids: &[u32]) -> Vec<f32> {
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(ids);
        assert!(!all.is_empty(), "nothing to feed");
        let n = all.len();
        let tokens =
            Tensor::<2, Int>::from_data(TensorData::new(all.iter().map(|&t| t as i64).collect(), [1, n]), &self.device);
        let logits = self.model.forward_cached(tokens, &mut self.cache);
        let vocab = logits.dims()[2];
        logits.narrow(1, n - 1, 1).reshape([vocab]).into_data().convert::<f32>().try_into_vec().expect("f32 logits")
    }

    /// Appends `prompt` and generates. `on_token` sees each emitted token and returns `false` to
    /// stop (used for stop strings); it is not called for stop ids.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        cfg: &GenerationConfig,
        sampler: &mut Sampler,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Generation {
        let start = Instant::now();
        let prefilled = self.pending.len() + prompt.len();
        self.context.extend_from_slice(prompt);
        let mut logits = self.feed(prompt);
        let mut tokens = Vec::new();
        let mut first = None;
        let stop = loop {
            if tokens.len() >= cfg.max_new_tokens {
                break StopReason::MaxTokens;
            }
            let id = sampler.sample(&logits, &self.context);
            first.get_or_insert_with(|| start.elapsed());
            self.context.push(id);
            if cfg.stop_ids.contains(&id) {
                self.pending.push(id);
                break StopReason::StopToken(id);
            }
            tokens.push(id);
            if !on_token(id) {
                self.pending.push(id);
                break StopReason::Callback;
            }
            if tokens.len() >= cfg.max_new_tokens {
                self.pending.push(id);
                break StopReason::MaxTokens;
            }
            logits = self.feed(&[id]);
        };
        let ttft = first.unwrap_or_else(|| start.elapsed());
        Generation {
            tokens,
            stop,
            prefilled,
            time_to_first_token: ttft,
            decode_time: start.elapsed().saturating_sub(ttft),
        }
    }

    /// Adds tokens to the conversation without generating (they are run with the next call).
    pub fn push_pending(&mut self, ids: &[u32]) {
        self.context.extend_from_slice(ids);
        self.pending.extend_from_slice(ids);
    }
}
