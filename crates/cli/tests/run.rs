//! `bit-axon run`, `run --chat` and `benchmark` end to end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bit_axon::{BitAxonConfig, BitAxonModel, SaveOptions};
use bit_axon_inference::{TextTokenizer, byte_level_tokenizer_json};
use burn::prelude::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bit-axon"))
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/upstream/tiny_windowed")
}

/// A random model whose vocabulary covers the byte-level tokenizer (259 tokens), saved with it.
fn chat_model(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bit-axon-chat-{}-{name}", std::process::id()));
    let cfg = BitAxonConfig {
        vocab_size: 320,
        hidden_dim: 32,
        num_heads: 4,
        d_source_model: 16,
        swa_window_size: 8,
        ssm_scan_step: 8,
        moe_intermediate_dim: 32,
        ..BitAxonConfig::small()
    };
    let device = Device::flex();
    device.seed(9);
    cfg.init(&device).save(&cfg, &dir, SaveOptions::default()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), byte_level_tokenizer_json()).unwrap();
    dir
}

fn argmax_continuation(dir: &Path, prompt: &[i64], n: usize) -> Vec<i64> {
    let device = Device::flex();
    let (_, model, _) = BitAxonModel::load(dir, &device).unwrap();
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let len = seq.len();
        let logits = model.forward(Tensor::from_data(TensorData::new(seq.clone(), [1, len]), &device));
        let v = logits.dims()[2];
        seq.push(logits.narrow(1, len - 1, 1).reshape([v]).argmax(0).into_scalar::<i64>());
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn greedy_prompt_ids_match_full_forward_argmax() {
    // Prompt longer than the window (8); 12 new tokens.
    let prompt: Vec<i64> = (0..11).map(|i| (i * 13 + 1) % 128).collect();
    let ids: Vec<String> = prompt.iter().map(i64::to_string).collect();
    let out = bin()
        .args([
            "run",
            "--temperature",
            "0",
            "--max-tokens",
            "12",
            "--print-ids",
            "--prompt-ids",
            &ids.join(","),
            "--model",
        ])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let got: Vec<i64> = last.split(',').map(|s| s.parse().unwrap()).collect();
    assert_eq!(got, argmax_continuation(&tiny(), &prompt, 12));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let run = |seed: &str| {
        let out = bin()
            .args([
                "run",
                "--temperature",
                "1.0",
                "--top-k",
                "0",
                "--top-p",
                "1",
                "--seed",
                seed,
                "--max-tokens",
                "20",
                "--print-ids",
                "--prompt-ids",
                "1,2,3",
                "--model",
            ])
            .arg(tiny())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().lines().last().unwrap().to_string()
    };
    assert_eq!(run("5"), run("5"));
    assert_ne!(run("5"), run("6"));
}

#[test]
fn text_prompt_through_tokenizer_and_template() {
    let dir = chat_model("text");
    let out = bin()
        .args(["run", "Hello there", "--temperature", "0", "--max-tokens", "6", "--print-ids", "--model"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<i64> =
        stdout.lines().last().unwrap().split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let tok = TextTokenizer::from_model_dir(&dir).unwrap();
    let prompt = tok.encode("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n").unwrap();
    let prompt: Vec<i64> = prompt.into_iter().map(i64::from).collect();
    let expected = argmax_continuation(&dir, &prompt, 6);
    // Stops early only on <|endoftext|>/<|im_end|>.
    assert!(expected.starts_with(&ids), "{ids:?} vs {expected:?}");
    assert!(ids.len() == 6 || [256, 258].contains(&expected[ids.len()]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn chat_second_turn_prefills_only_new_tokens() {
    let dir = chat_model("chat");
    let mut child = bin()
        .args(["run", "--chat", "--temperature", "0", "--max-tokens", "5", "--model"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\nhow are you\n/reset\nagain\n/quit\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    // "[prefilled N new tokens (context M), generated G tokens, ...]" per turn.
    let turns: Vec<(usize, usize, usize)> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("[prefilled "))
        .map(|l| {
            let num = |after: &str| -> usize {
                l.split(after).nth(1).unwrap().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
            };
            let n: usize = l.split_whitespace().next().unwrap().parse().unwrap();
            (n, num("(context "), num("generated "))
        })
        .collect();
    assert_eq!(turns.len(), 3, "{stderr}");
    let tok = TextTokenizer::from_model_dir(&dir).unwrap();
    let first = tok.encode("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n").unwrap().len();
    assert_eq!(turns[0].0, first);
    // Turn 2 runs only the token left pending by turn 1 (its last sampled token) and the tokens
    // that close the answer and open the new turn; re-running the history would add turns[0].1.
    let closing = if turns[0].2 == 5 { "<|im_end|>\n" } else { "\n" };
    let new_turn = tok
        .encode(&format!("{closing}<|im_start|>user\nhow are you<|im_end|>\n<|im_start|>assistant\n"))
        .unwrap()
        .len();
    assert_eq!(turns[1].0, new_turn + 1, "{turns:?}");
    assert_eq!(turns[1].1, turns[0].1 + new_turn + turns[1].2 + usize::from(turns[1].2 < 5), "{turns:?}");
    // After /reset the conversation starts over.
    let again = tok.encode("<|im_start|>user\nagain<|im_end|>\n<|im_start|>assistant\n").unwrap().len();
    assert_eq!(turns[2].0, again);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tokenizer_larger_than_model_is_an_error() {
    let out = bin()
        .args(["run", "hi", "--max-tokens", "2", "--model"])
        .arg(tiny())
        .arg("--tokenizer")
        .arg({
            let p = std::env::temp_dir().join(format!("bit-axon-bytes-{}.json", std::process::id()));
            std::fs::write(&p, byte_level_tokenizer_json()).unwrap();
            p
        })
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("outside the model vocabulary [0, 128)"), "{err}");
}

#[test]
fn benchmark_reports_json() {
    let out = bin()
        .args(["benchmark", "--json", "--prompt-len", "16", "--gen-len", "4", "--batch", "2", "--model"])
        .arg(tiny())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "time_to_first_token_ms",
        "weight_read_gbps",
        "fraction_of_peak_bandwidth",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert_eq!(v["batch"], 2);
}
