//! Shared by the tests that run the `train` binary: a tiny configuration and process helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bit-axon-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `configs/sft.toml` shrunk to a model that trains in milliseconds per step.
pub fn args(run: &Path) -> Vec<String> {
    args_for(Objective::Sft, run)
}

/// Which shipped config [`args_for`] shrinks.
#[derive(Clone, Copy, Debug)]
pub enum Objective {
    /// `configs/sft.toml` on the SFT conversations.
    Sft,
    /// `configs/orpo.toml` on the preference pairs.
    Orpo,
}

/// The shipped config of `objective`, shrunk to a model that trains in milliseconds per step.
pub fn args_for(objective: Objective, run: &Path) -> Vec<String> {
    let r = root();
    let (config, train, eval) = match objective {
        Objective::Sft => {
            ("configs/sft.toml", "datasets/sft/chatterbot_train.jsonl", "datasets/sft/chatterbot_eval.jsonl")
        }
        Objective::Orpo => (
            "configs/orpo.toml",
            "datasets/preference/chatterbot_pref_train.jsonl",
            "datasets/preference/chatterbot_pref_eval.jsonl",
        ),
    };
    let sets = [
        "model.hidden_dim=32".to_string(),
        "model.num_layers=3".into(),
        "model.num_heads=2".into(),
        "model.d_source_model=32".into(),
        "model.moe_intermediate_dim=32".into(),
        "model.swa_window_size=16".into(),
        "model.vocab_size=260".into(),
        "adapter.rank=4".into(),
        "adapter.alpha=8.0".into(),
        "adapter.dropout=0.1".into(),
        "data.max_seq_len=64".into(),
        format!("data.train=[\"{}\"]", r.join(train).display()),
        format!("data.eval=[\"{}\"]", r.join(eval).display()),
        "train.batch_size=2".into(),
        "train.grad_accum=2".into(),
        "train.max_steps=10".into(),
        "train.warmup_steps=2".into(),
        "train.save_every=2".into(),
        "train.eval_every=5".into(),
        "train.eval_batches=2".into(),
        "train.keep_last=2".into(),
        format!("output.dir=\"{}\"", run.display()),
    ];
    let mut a = vec!["--config".to_string(), r.join(config).display().to_string()];
    for s in sets {
        a.push("--set".into());
        a.push(s);
    }
    a
}

pub fn train(run: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    train_for(Objective::Sft, run, extra, env)
}

pub fn train_for(objective: Objective, run: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    c.args(args_for(objective, run)).args(extra).current_dir(root()).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}
