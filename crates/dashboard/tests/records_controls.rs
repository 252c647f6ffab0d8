//! metrics.jsonl records (parsing, tailing a growing file), the state they build, the key
//! controls, and the plain renderer driven through burn-train's renderer traits.

mod common;

use std::io::Write;
use std::sync::Arc;

use bit_axon_dashboard::{
    DashboardState, KeyAction, MetricsRecord, MetricsTail, MetricsWriter, PlainRenderer, RecordKind, Split,
    TrainControls, names, plain_line, tail_records,
};
use burn::train::logger::TrainingProgressLogger;
use burn::train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry, SerializedEntry,
};
use burn::train::renderer::{MetricState, MetricsRenderer, MetricsRendererTraining};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[test]
fn record_json_shape_and_parse() {
    let line = r#"{"kind":"train","step":120,"total_steps":5000,"epoch":1,"time_s":61.5,
        "metrics":{"Loss":3.25,"Learning Rate":0.0002,"Tokens/s":1830.0,"Chosen Reward":-0.5},"text":{}}"#;
    let r = MetricsRecord::from_json(&line.replace('\n', "")).unwrap();
    assert_eq!((r.kind, r.step, r.total_steps, r.epoch), (RecordKind::Train, 120, 5000, 1));
    assert_eq!(r.metrics["Loss"], 3.25);
    // text may be omitted; an unknown kind is an error.
    let r2 = MetricsRecord::from_json(r#"{"kind":"end","step":5,"total_steps":5,"epoch":1,"time_s":1.0,"metrics":{}}"#)
        .unwrap();
    assert!(r2.text.is_empty());
    assert!(MetricsRecord::from_json(r#"{"kind":"bogus","step":1,"total_steps":1,"epoch":1,"time_s":0}"#).is_err());
    // Round trip; NaN is dropped (JSON has none).
    let r3 = MetricsRecord::new(RecordKind::Eval, 3, 9, 2, 4.5).metric(names::LOSS, 1.5).metric("x", f64::NAN);
    let back = MetricsRecord::from_json(&r3.to_json()).unwrap();
    assert_eq!(back, r3);
    assert!(!back.metrics.contains_key("x"));
    assert!(r3.to_json().starts_with(r#"{"kind":"eval","step":3,"total_steps":9,"epoch":2,"time_s":4.5,"#));

    let mut s = DashboardState::new("x");
    s.apply_record(&r);
    assert_eq!(s.latest(Split::Train, names::LOSS), Some(3.25));
    assert_eq!(s.latest(Split::Train, "Chosen Reward"), Some(-0.5));
    assert!(s.metric_names().contains(&"Chosen Reward".to_string()));
}

#[test]
fn state_from_records_routes_thermal_memory_eval_and_eta() {
    let mut s = DashboardState::new("x");
    for r in common::run_records() {
        s.apply_record(&r);
    }
    assert_eq!((s.step, s.total_steps, s.epoch), (60, 200, 1));
    assert_eq!(s.points(Split::Train, names::LOSS).len(), 60);
    assert_eq!(s.points(Split::Eval, names::LOSS).len(), 2);
    assert_eq!(s.points(Split::Eval, names::LOSS)[1].0, 60.0);
    assert_eq!(s.temperature.len(), 60);
    assert_eq!(s.temperature[59].0, 120.0);
    assert_eq!(s.thermal_state.as_deref(), Some("throttled"));
    assert_eq!(s.cooling_s, 10.5);
    assert_eq!(s.memory_bytes, Some(3.5 * 1024.0 * 1024.0 * 1024.0));
    assert_eq!(s.limits.as_ref(), Some(&common::limits()));
    // 59 steps in 118 s since the first record: 0.5 step/s, 140 steps left.
    assert!((s.steps_per_s().unwrap() - 0.5).abs() < 1e-12);
    assert!((s.eta_s().unwrap() - 280.0).abs() < 1e-9);
    // Thermal names never become series.
    assert!(!s.metric_names().iter().any(|n| n == names::TEMPERATURE || n == names::PAUSE_LIMIT));
    // Series are capped: history kept at lower resolution, newest point kept.
    let mut s = DashboardState::new("cap");
    s.max_points = 100;
    for step in 1..=1000u64 {
        s.apply_record(
            &MetricsRecord::new(RecordKind::Train, step, 1000, 1, step as f64).metric(names::LOSS, step as f64),
        );
    }
    let p = s.points(Split::Train, names::LOSS);
    assert!(p.len() <= 101 && p.len() >= 50, "{}", p.len());
    assert_eq!(p.last(), Some(&(1000.0, 1000.0)));
    assert_eq!(p[0], (1.0, 1.0));
}

#[test]
fn tail_reads_only_complete_lines_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MetricsWriter::FILE_NAME);
    let (mut off, mut line) = (0u64, 0usize);
    // Missing file: nothing yet.
    assert!(tail_records(&path, &mut off, &mut line).unwrap().0.is_empty());
    let mut w = MetricsWriter::create(dir.path()).unwrap();
    let recs = common::run_records();
    w.write(&recs[0]).unwrap();
    w.write(&recs[1]).unwrap();
    // A line being written (no newline yet) waits for the next call.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let partial = recs[2].to_json();
    f.write_all(&partial.as_bytes()[..10]).unwrap();
    f.flush().unwrap();
    let (got, errs) = tail_records(&path, &mut off, &mut line).unwrap();
    assert_eq!(got, recs[..2]);
    assert!(errs.is_empty());
    f.write_all(format!("{}\nnot json\n", &partial[10..]).as_bytes()).unwrap();
    f.flush().unwrap();
    let (got, errs) = tail_records(&path, &mut off, &mut line).unwrap();
    assert_eq!(got, recs[2..3]);
    assert_eq!(errs.len(), 1);
    let e = errs[0].to_string();
    assert!(e.contains("metrics.jsonl:4:"), "{e}");
    assert!(tail_records(&path, &mut off, &mut line).unwrap().0.is_empty());

    // MetricsTail (what `watch` draws) follows the same file.
    let mut tail = MetricsTail::new(dir.path());
    assert_eq!(tail.poll().unwrap(), 3);
    assert!(tail.state.status.as_deref().unwrap_or("").contains("metrics.jsonl:4"));
    w.write(&MetricsRecord::new(RecordKind::End, 2, 200, 1, 5.0).text("Stop", "critical 101.0 °C")).unwrap();
    assert_eq!(tail.poll().unwrap(), 1);
    assert_eq!(tail.state.finished.as_deref(), Some("critical 101.0 °C"));
}

fn key(c: char, mods: KeyModifiers) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), mods)
}

#[test]
fn controls_keys_set_shared_flags() {
    let c = TrainControls::new();
    let loop_side = c.clone();
    let pause_flag = c.pause_flag();
    assert_eq!(c.handle_key(key('p', KeyModifiers::NONE)), KeyAction::Pause(true));
    assert!(loop_side.paused() && pause_flag.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(c.handle_key(key('P', KeyModifiers::SHIFT)), KeyAction::Pause(false));
    assert!(!loop_side.paused());
    assert!(!loop_side.take_save());
    assert_eq!(c.handle_key(key('s', KeyModifiers::NONE)), KeyAction::Save);
    assert!(loop_side.take_save());
    assert!(!loop_side.take_save(), "a save request is taken once");
    let mut release = key('s', KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(c.handle_key(release), KeyAction::None);
    assert_eq!(c.handle_key(key('x', KeyModifiers::NONE)), KeyAction::None);
    assert!(!loop_side.stop_requested());
    assert_eq!(c.handle_key(key('q', KeyModifiers::NONE)), KeyAction::Stop);
    assert!(loop_side.stop_requested() && c.stop_flag().load(std::sync::atomic::Ordering::SeqCst));
    // Raw mode swallows SIGINT: Ctrl-C stops gracefully, a second one forces.
    let c = TrainControls::new();
    assert_eq!(c.handle_key(key('c', KeyModifiers::CONTROL)), KeyAction::Stop);
    assert!(c.stop_requested());
    assert_eq!(c.handle_key(key('c', KeyModifiers::CONTROL)), KeyAction::ForceQuit);
}

fn definition(name: &str, numeric: bool) -> MetricDefinition {
    MetricDefinition {
        metric_id: MetricId::new(Arc::new(name.to_string())),
        name: Arc::new(name.to_string()),
        description: None,
        attributes: if numeric {
            MetricAttributes::Numeric(NumericAttributes::default())
        } else {
            MetricAttributes::None
        },
    }
}

fn numeric(name: &str, v: f64) -> MetricState {
    let e = MetricEntry::new(
        MetricId::new(Arc::new(name.to_string())),
        SerializedEntry::new(format!("{v}"), format!("{v}")),
    );
    MetricState::Numeric(e, Some(NumericEntry::Value(v)))
}

#[test]
fn plain_renderer_through_burn_train_traits() {
    let mut r = PlainRenderer::with_interval(std::time::Duration::ZERO);
    for (n, num) in [(names::LOSS, true), (names::TEMPERATURE, true), (names::THERMAL_STATE, false), ("Margin", true)] {
        MetricsRenderer::register_metric(&mut r, definition(n, num));
    }
    TrainingProgressLogger::start(&mut r, 2, 0, Some(100), Some("sft"));
    r.start_split("train", 50);
    r.update_split(10);
    r.update_train(numeric(names::LOSS, 3.5));
    r.update_train(numeric(names::TEMPERATURE, 84.25));
    r.update_train(numeric("Margin", 0.5));
    let text = MetricEntry::new(
        MetricId::new(Arc::new(names::THERMAL_STATE.to_string())),
        SerializedEntry::new("Thermal State: paused".into(), "paused".into()),
    );
    r.update_train(MetricState::Generic(text));
    // Epoch-final aggregates are not plotted twice.
    let fin = MetricEntry::new(MetricId::new(Arc::new(names::LOSS.into())), SerializedEntry::new("".into(), "".into()));
    r.update_train(MetricState::Numeric(fin, Some(NumericEntry::Final(9.0))));
    r.update_valid(numeric(names::LOSS, 3.75));
    r.update_split(11);
    let s = r.state();
    assert_eq!((s.step, s.total_steps, s.epoch, s.total_epochs), (11, 100, 1, 2));
    assert_eq!(s.label, "sft");
    assert_eq!(s.points(Split::Train, names::LOSS), &[(10.0, 3.5)]);
    assert_eq!(s.latest(Split::Eval, names::LOSS), Some(3.75));
    assert_eq!(s.latest(Split::Train, "Margin"), Some(0.5));
    assert_eq!(s.temperature.last().map(|p| p.1), Some(84.25));
    assert_eq!(s.thermal_state.as_deref(), Some("paused"));
    let line = plain_line(s);
    assert!(line.starts_with("[sft] step 11/100 (11.0 %) · epoch 1/2 · loss 3.500 · eval loss 3.750"), "{line}");
    assert!(line.contains("84.2 °C paused"), "{line}");
    // A second train split continues the step count.
    r.end_split();
    r.start_split("valid", 5);
    r.update_split(5);
    r.end_split();
    r.update_epoch(1);
    r.start_split("train", 50);
    r.update_split(3);
    assert_eq!((r.state().step, r.state().epoch), (14, 2));
}

#[test]
fn live_thermal_snapshot_feeds_the_state_and_masks_reported_thermal_metrics() {
    use bit_axon_thermal::{ManualClock, Policy, ScriptedSource, ThermalConfig, ThermalScheduler};
    let cfg = ThermalConfig { policy: Policy::Throttle, poll_interval_s: 1.0, ..ThermalConfig::default() };
    let mut sched =
        ThermalScheduler::new(&cfg, Some(Box::new(ScriptedSource::new([84.0]))), Box::new(ManualClock::default()))
            .unwrap();
    let live = sched.live();
    let mut s = DashboardState::new("live");
    s.time_s = 3.0;
    assert!(s.apply_thermal_snapshot(&live.snapshot()));
    assert_eq!(s.thermal_state.as_deref(), Some("running"));
    assert!(s.temperature.is_empty(), "no reading yet");
    sched.gate(1, 2.0); // 84 °C, 4 °C into the throttle zone: 2 * 0.25 * 4 = 2 s of cooling
    s.time_s = 5.0;
    assert!(s.apply_thermal_snapshot(&live.snapshot()));
    assert!(!s.apply_thermal_snapshot(&live.snapshot()), "unchanged snapshot");
    assert_eq!(s.temperature, [(5.0, 84.0)]);
    assert_eq!(s.thermal_state.as_deref(), Some("throttled"));
    assert_eq!(s.cooling_s, 2.0);
    let l = s.limits.clone().unwrap();
    assert_eq!((l.pause_c, l.throttle_start_c, l.setpoint_c), (90.0, Some(80.0), None));
    // Thermal metrics reported by the loop as well are ignored (the live feed is authoritative).
    s.apply_record(&MetricsRecord::new(RecordKind::Train, 2, 10, 1, 6.0).metric(names::TEMPERATURE, 50.0));
    assert_eq!(s.temperature.len(), 1);
}
