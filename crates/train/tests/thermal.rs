//! The thermal scheduler inside a real training run: a file sensor set hot pauses the run within
//! one step, and setting it cool resumes it; the pause is in `metrics.jsonl` with its temperature.

mod common;

use std::time::{Duration, Instant};

use bit_axon_train::metrics::{MetricsFile, RecordKind};
use common::*;

fn records(run: &std::path::Path) -> Vec<bit_axon_train::metrics::MetricsRecord> {
    MetricsFile::read(&run.join("metrics.jsonl")).unwrap_or_default()
}

fn last_train_step(run: &std::path::Path) -> u64 {
    records(run).iter().filter(|r| r.kind == RecordKind::Train).map(|r| r.step).max().unwrap_or(0)
}

/// Sets the sensor file as a real sensor driver does, atomically (a new file renamed over the old).
/// `std::fs::write` truncates first, and a poll between the truncation and the write reads no value:
/// the scheduler then logs that poll without a temperature (CI saw a paused record without one).
fn set_sensor(path: &std::path::Path, celsius: &str) {
    bit_axon::checkpoint::write_text_atomic(path, &format!("{celsius}\n")).unwrap();
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn file_sensor_set_hot_pauses_within_a_step_and_cool_resumes() {
    let run = tmp("thermal");
    let sensor = run.join("temp_c");
    set_sensor(&sensor, "50");
    let sets = [
        "thermal.enabled=\"on\"".to_string(),
        format!("thermal.source=\"file:{}\"", sensor.display()),
        "thermal.policy=\"hysteresis\"".into(),
        "thermal.pause_c=90.0".into(),
        "thermal.resume_c=80.0".into(),
        "thermal.critical_c=120.0".into(),
        "thermal.poll_interval_s=0.05".into(),
        "train.max_steps=10".into(),
    ];
    let extra: Vec<String> = sets.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut child = train(&run, &extra, &[("BIT_AXON_TRAIN_STEP_SLEEP_MS", "100")]).spawn().unwrap();
    wait_for("two steps", || last_train_step(&run) >= 2);
    set_sensor(&sensor, "95");
    let hot_at = last_train_step(&run);
    wait_for("the pause", || {
        records(&run)
            .iter()
            .any(|r| r.kind == RecordKind::Thermal && r.text.get("Thermal State").is_some_and(|s| s == "paused"))
    });
    std::thread::sleep(Duration::from_millis(600));
    let paused_at = last_train_step(&run);
    assert!(paused_at <= hot_at + 2, "paused at step {paused_at}, set hot after step {hot_at}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(last_train_step(&run), paused_at, "no step runs while hot");
    assert!(child.try_wait().unwrap().is_none(), "the run waits, it does not exit");
    set_sensor(&sensor, "60");
    let status = child.wait().unwrap();
    assert!(status.success(), "the run finishes after cooling");
    assert_eq!(last_train_step(&run), 10);
    let paused: Vec<_> = records(&run)
        .into_iter()
        .filter(|r| r.kind == RecordKind::Thermal && r.text.get("Thermal State").is_some_and(|s| s == "paused"))
        .collect();
    println!("set hot after step {hot_at}; paused at step {paused_at}; {} paused records", paused.len());
    assert!(paused.iter().all(|r| r.metrics.get("Temperature").is_some_and(|t| *t >= 90.0)));
}
