use crate::rng::Rng;

/// How the next token is chosen from the logits.
///
/// Applied in this order (as in Hugging Face `generate`): repetition penalty on the logits,
/// temperature, top-k, top-p, min-p, then a draw from the renormalised distribution.
/// `temperature == 0` is greedy decoding (argmax after the repetition penalty).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability sums to at least `top_p`; 1 disables.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` × the most likely token's; 0 disables.
    pub min_p: f32,
    /// CTRL-style penalty on every token already in the context: a positive logit is divided by it,
    /// a negative one multiplied; 1 disables, values > 1 discourage repetition.
    pub repetition_penalty: f32,
    /// Seed of the sampler; the same seed, prompt and settings give the same tokens.
    pub seed: Option<u64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, seed: None }
    }
}

impl SamplingConfig {
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str| Err(crate::Error::Input(what.to_string()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min-p must be in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition penalty must be > 0");
        }
        Ok(())
    }
}

/// Chooses tokens according to a [`SamplingConfig`], with its own seeded generator.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub config: SamplingConfig,
    rng: Rng,
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Self {
        let rng = config.seed.map(Rng::new).unwrap_or_else(Rng::from_entropy);
        Self { config, rng }
    }

    /// Picks the next token from `logits [V]`, given the tokens already in the context.
    pub fn sample(&mut self, logits: &[f32], context: &[u32]) -> u32 {
        let logits = self.penalised(logits, context);
        if self.config.temperature == 0.0 {
            return argmax(&logits);
        }
        let dist = self.filtered(&logits);
        let mut u = self.rng.next_f64() as f32;
        for &(id, p) in &dist {
            if u < p {
                return id;
            }
            u -= p;
        }
        dist.last().map(|&(id, _)| id).unwrap_or_else(|| argmax(&logits))
    }

    /// The distribution [`sample`](Self::sample) draws from: `(token, probability)` pairs that
    /// survive the filters, most likely first, summing to 1. Greedy decoding gives one pair.
    pub fn distribution(&self, logits: &[f32], context: &[u32]) -> Vec<(u32, f32)> {
        let logits = self.penalised(logits, context);
        if self.config.temperature == 0.0 {
            return vec![(argmax(&logits), 1.0)];
        }
        self.filtered(&logits)
    }

    fn penalised(&self, logits: &[f32], context: &[u32]) -> Vec<f32> {
        let mut out = logits.to_vec();
        let p = self.config.repetition_penalty;
        if p != 1.0 {
            let mut seen = vec![false; out.len()];
            for &t in context {
                let t = t as usize;
                if t < out.len() && !seen[t] {
                    seen[t] = true;
                    out[t] = if out[t] > 0.0 { out[t] / p } else { out[t] * p };
                }
            }
        }
        out
    }

    fn filtered(&self, logits: &[f32]) -> Vec<(u32, f32)> {
        let c = &self.config;
        let t = c.temperature;
        let mut ids: Vec<u32> = (0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()).collect();
        ids.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if c.top_k > 0 {
            ids.truncate(c.top_k);
        }
        let max = ids.first().map(|&i| logits[i as usize]).unwrap_or(0.0);
        let mut probs: Vec<f32> = ids.iter().map(|&i| ((logits[i as usize] - max) / t).exp()).collect();
        normalise(&mut probs);
        if c.top_p < 1.0 {
            let mut acc = 0.0;
            let keep = probs.iter().position(|&p| {
                acc += p;
                acc >= c.top_p
            });
            let keep = keep.map_or(probs.len(), |k| k + 1);
            ids.truncate(keep);
            probs.truncate(keep);
        }
        if c.min_p > 0.0 {
            let floor = c.min_p * probs[0];
            let keep = probs.iter().take_while(|&&p| p >= floor).count().max(1);
            ids.truncate(keep);
            probs.truncate(keep);
        }
        normalise(&mut probs);
        ids.into_iter().zip(probs).collect()
    }
}

fn normalise(p: &mut [f32]) {
    let s: f32 = p.iter().sum();
    if s > 0.0 {
        p.iter_mut().for_each(|v| *v /= s);
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}
