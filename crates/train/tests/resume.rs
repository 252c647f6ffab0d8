//! Checkpoints and exact resume, through the `train` binary on flex with a tiny model:
//! - a run killed with SIGKILL mid-way and continued with `--resume` logs bitwise the same
//!   per-step losses as an uninterrupted run, and ends with a bitwise identical adapter (SFT and
//!   ORPO);
//! - a crash in the middle of writing a checkpoint leaves the previous one complete and loadable,
//!   and resuming from it still reproduces the uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use bit_axon_train::checkpoint;
use bit_axon_train::metrics::{MetricsFile, RecordKind};
use common::*;

fn losses(run: &Path) -> Vec<(u64, RecordKind, u64)> {
    MetricsFile::read(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RecordKind::Train || r.kind == RecordKind::Eval)
        .map(|r| (r.step, r.kind, r.metrics["Loss"].to_bits()))
        .collect()
}

fn adapter_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("adapter/adapter_model.safetensors")).unwrap()
}

fn uninterrupted(name: &str) -> PathBuf {
    uninterrupted_for(Objective::Sft, name)
}

fn uninterrupted_for(objective: Objective, name: &str) -> PathBuf {
    let run = tmp(name);
    let out = train_for(objective, &run, &[], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run
}

/// Kills a run with SIGKILL after its step-4 checkpoint, resumes it, and compares it with an
/// uninterrupted run: per-step losses bitwise, final adapters byte for byte.
fn sigkill_and_resume(objective: Objective) {
    let tag = format!("{objective:?}").to_lowercase();
    let full = uninterrupted_for(objective, &format!("full-{tag}"));
    let run = tmp(&format!("killed-{tag}"));
    let mut child = train_for(objective, &run, &[], &[("BIT_AXON_TRAIN_STEP_SLEEP_MS", "150")]).spawn().unwrap();
    let marker = checkpoint::step_dir(&run, 4).join("state.json");
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint at step 4");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = losses(&run).iter().map(|l| l.0).max().unwrap();
    assert!(killed_at < 10, "the run was killed before its end (last logged step {killed_at})");
    let out = train_for(objective, &run, &["--resume"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, b) = (losses(&full), losses(&run));
    assert_eq!(a.iter().filter(|l| l.1 == RecordKind::Train).count(), 10);
    assert_eq!(a, b, "{objective:?}: per-step losses differ after resume");
    assert_eq!(adapter_bytes(&full), adapter_bytes(&run), "{objective:?}: final adapters differ");
    assert_eq!(checkpoint::list(&run).len(), 2, "keep_last = 2");
}

#[test]
fn sigkill_and_resume_reproduce_the_uninterrupted_run() {
    sigkill_and_resume(Objective::Sft);
}

#[test]
fn orpo_sigkill_and_resume_reproduce_the_uninterrupted_run() {
    sigkill_and_resume(Objective::Orpo);
}

#[test]
fn crash_during_save_keeps_the_previous_checkpoint() {
    let full = uninterrupted("full-b");
    let run = tmp("crash");
    let out = train(&run, &[], &[("BIT_AXON_TRAIN_CRASH_DURING_SAVE", "6")]).output().unwrap();
    assert!(!out.status.success(), "the injected crash should abort the run");
    assert!(checkpoint::tmp_dir(&run, 6).exists(), "the interrupted save left its staging directory");
    let (dir, state) = checkpoint::latest(&run).unwrap().expect("a complete checkpoint");
    assert_eq!(state.step, 4);
    assert_eq!(dir, checkpoint::step_dir(&run, 4));
    checkpoint::load_optimizer(&dir).unwrap();
    checkpoint::load_scheduler(&dir).unwrap();
    bit_axon_train::adapters::read_peft_config(&dir).unwrap();
    let out = train(&run, &["--resume"], &[]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!checkpoint::tmp_dir(&run, 6).exists(), "leftovers are cleaned on resume");
    assert_eq!(losses(&full), losses(&run));
    assert_eq!(adapter_bytes(&full), adapter_bytes(&run));
}

#[test]
fn a_second_run_into_a_used_directory_is_refused() {
    let run = tmp("twice");
    let mut a = args(&run);
    a.extend(["--set".into(), "train.max_steps=2".into()]);
    let ok = Command::new(env!("CARGO_BIN_EXE_train")).args(&a).current_dir(root()).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let again = Command::new(env!("CARGO_BIN_EXE_train")).args(&a).current_dir(root()).output().unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already holds checkpoints") && err.contains("--resume"), "{err}");
}
