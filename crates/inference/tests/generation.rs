//! Greedy generation through the cache equals argmax decoding by repeated full forwards (the
//! correct behaviour; the reference decodes without attention history), for prompts shorter
//! and longer than the attention window.

use std::path::Path;

use bit_axon::BitAxonModel;
use bit_axon_inference::{GenerationConfig, Sampler, SamplingConfig, Session, StopReason};
use burn::prelude::*;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream").join(name)
}

/// Argmax continuation computed by re-running the whole sequence each step.
fn argmax_by_full_forward(model: &BitAxonModel, prompt: &[u32], n: usize, device: &Device) -> Vec<u32> {
    let mut seq: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    let mut out = Vec::new();
    for _ in 0..n {
        let len = seq.len();
        let logits = model.forward(Tensor::from_data(TensorData::new(seq.clone(), [1, len]), device));
        let vocab = logits.dims()[2];
        let next = logits.narrow(1, len - 1, 1).reshape([vocab]).argmax(0).into_scalar::<i64>();
        seq.push(next);
        out.push(next as u32);
    }
    out
}

pub fn check_greedy(dir: &Path, prompts: &[Vec<u32>], n: usize) {
    let device = Device::flex();
    let (_, model, _) = BitAxonModel::load(dir, &device).unwrap();
    for prompt in prompts {
        let expected = argmax_by_full_forward(&model, prompt, n, &device);
        let mut session = Session::new(&model, &device);
        let mut sampler = Sampler::new(SamplingConfig::default());
        let cfg = GenerationConfig { max_new_tokens: n, stop_ids: vec![] };
        let out = session.generate(prompt, &cfg, &mut sampler, |_| true);
        assert_eq!(out.stop, StopReason::MaxTokens);
        assert_eq!(out.tokens, expected, "prompt of {} tokens", prompt.len());
        assert_eq!(session.processed() + 1, prompt.len() + n, "last token waits in pending");
    }
}

#[test]
fn greedy_equals_full_forward_argmax_tiny_windowed() {
    // window 8, scan chunk 8: prompts of 3 and 13 tokens, 14 new tokens cross both.
    let short = vec![5, 17, 99];
    let long: Vec<u32> = (0..13).map(|i| (i * 29 + 3) % 128).collect();
    check_greedy(&fixture("tiny_windowed"), &[short, long], 14);
}

#[test]
fn greedy_equals_full_forward_argmax_small_when_shared_present() {
    let Some(root) = std::env::var_os("BIT_AXON_SHARED") else {
        eprintln!("skipped: set BIT_AXON_SHARED=../shared");
        return;
    };
    let dir = std::path::PathBuf::from(root).join("fixtures/upstream/small");
    // window 64: prompts of 10 and 70 tokens.
    let long: Vec<u32> = (0..70).map(|i| (i * 131 + 7) % 1024).collect();
    check_greedy(&dir, &[vec![1, 42, 100, 200, 500, 3, 9, 27, 81, 243], long], 12);
}

#[test]
fn stop_ids_end_generation_and_are_not_emitted() {
    let device = Device::flex();
    let (_, model, _) = BitAxonModel::load(&fixture("tiny_windowed"), &device).unwrap();
    let prompt = vec![5, 17, 99];
    let greedy = argmax_by_full_forward(&model, &prompt, 6, &device);
    let stop = greedy[3];
    let first = greedy.iter().position(|&t| t == stop).unwrap();
    let mut session = Session::new(&model, &device);
    let mut sampler = Sampler::new(SamplingConfig::default());
    let out =
        session
            .generate(&prompt, &GenerationConfig { max_new_tokens: 6, stop_ids: vec![stop] }, &mut sampler, |_| true);
    assert_eq!(out.stop, StopReason::StopToken(stop));
    assert_eq!(out.tokens, greedy[..first].to_vec());
}
