//! A synthetic training run through the real dashboard and thermal scheduler, wired as the
//! `train` loop does it (a reference for the integration and for checking the terminal path
//! under tmux; no model is trained: the loss is a formula).
//!
//! ```text
//! cargo run -p bit-axon-dashboard --example dashboard_demo -- RUN_DIR [STEPS] [STEP_MS] [SOURCE]
//! cargo run -p bit-axon-dashboard --example dashboard_demo -- --watch RUN_DIR
//! ```
//!
//! `DEMO_PANIC_AT=N` panics at step N (the terminal must come back with the panic message).
//! SOURCE is a `[thermal] source` string (default `simulated`: a simulated laptop with a 10 s
//! thermal time constant, in real time, so it heats up and throttles within seconds). Keys: p, s, q.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bit_axon_dashboard::{
    MetricsRecord, MetricsWriter, RecordKind, TrainControls, names, renderer_for_stdout_with_thermal,
};
use bit_axon_thermal::{
    Enabled, Gate, Policy, ThermalConfig, ThermalEvent, ThermalLimits, ThermalScheduler, ThermalTotals,
};
use burn::train::metric::{
    MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericAttributes, NumericEntry, SerializedEntry,
};
use burn::train::renderer::{MetricState, MetricsRenderer};

fn id(name: &str) -> MetricId {
    MetricId::new(Arc::new(name.to_string()))
}

fn definition(name: &str, numeric: bool) -> MetricDefinition {
    MetricDefinition {
        metric_id: id(name),
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
    MetricState::Numeric(
        MetricEntry::new(id(name), SerializedEntry::new(format!("{name}: {v}"), v.to_string())),
        Some(NumericEntry::Value(v)),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--watch") {
        let dir = args.get(1).ok_or("usage: dashboard_demo --watch RUN_DIR")?;
        bit_axon_dashboard::watch(&PathBuf::from(dir))?;
        return Ok(());
    }
    let run_dir = PathBuf::from(args.first().ok_or("usage: dashboard_demo RUN_DIR [STEPS] [STEP_MS] [SOURCE]")?);
    let steps: u64 = args.get(1).map_or(Ok(600), |s| s.parse()).map_err(|e| format!("STEPS: {e}"))?;
    let step_ms: u64 = args.get(2).map_or(Ok(50), |s| s.parse()).map_err(|e| format!("STEP_MS: {e}"))?;
    let source = args.get(3).cloned().unwrap_or_else(|| "simulated".to_string());
    std::fs::create_dir_all(&run_dir)?;
    let mut metrics = MetricsWriter::create(&run_dir)?;

    // Thermal scheduler, honouring the dashboard's pause and stop keys.
    let mut config = ThermalConfig {
        enabled: Enabled::On,
        source: source.clone(),
        policy: Policy::Setpoint,
        // A fast laptop: full load settles at 105 °C with a 10 s time constant.
        kp: 0.15,
        ki: 0.015,
        poll_interval_s: 0.25,
        ..ThermalConfig::default()
    };
    config.simulated.k_cool = 0.1;
    config.simulated.k_heat = 8.0;
    let (scheduler, warnings) = ThermalScheduler::from_config(&config)?;
    let controls = TrainControls::new();
    // Thermal records go to the metrics file as they happen (also during a pause), for `watch`.
    let mut thermal_writer = MetricsWriter::create(&run_dir)?;
    let start = Instant::now();
    let observer = Box::new(move |ev: &ThermalEvent, totals: &ThermalTotals, limits: Option<&ThermalLimits>| {
        let rec = MetricsRecord::thermal(ev.step, steps, 1, start.elapsed().as_secs_f64(), ev, totals, limits);
        let _ = thermal_writer.write(&rec);
    });
    let mut scheduler =
        scheduler.with_pause_flag(controls.pause_flag()).with_stop_flag(controls.stop_flag()).with_observer(observer);
    let live = scheduler.live();

    let mut renderer: Box<dyn MetricsRenderer> = renderer_for_stdout_with_thermal(controls.clone(), Some(live));
    for (n, is_numeric) in [
        (names::LOSS, true),
        (names::LEARNING_RATE, true),
        (names::TOKENS_PER_SECOND, true),
        (names::GRAD_NORM, true),
        (names::TEMPERATURE, true),
        (names::COOLING_TIME, true),
        (names::MEMORY, true),
        (names::THERMAL_STATE, false),
    ] {
        renderer.register_metric(definition(n, is_numeric));
    }
    for w in &warnings {
        renderer.log_event_training(format!("warning: {w}"));
    }
    renderer.start(1, 0, Some(steps as usize), Some("dashboard demo"));
    renderer.start_split("train", steps as usize);

    let tokens_per_step = 4096.0;
    let mut stop_reason = "finished".to_string();
    for step in 1..=steps {
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(step_ms)); // the "optimizer step"
        let x = step as f64;
        let loss = 2.2 + 2.0 * (-x / 150.0).exp() + 0.05 * (x * 0.7).sin();
        let lr = 3e-4 * (x / 50.0).min(1.0) * (1.0 - 0.9 * x / steps as f64);
        let gate = scheduler.gate(step, t0.elapsed().as_secs_f64());
        // DEMO_PANIC_AT=N: panic at step N, to check that the panic hook restores the terminal.
        if std::env::var("DEMO_PANIC_AT").ok().and_then(|s| s.parse::<u64>().ok()) == Some(step) {
            panic!("demo panic at step {step}");
        }
        let elapsed = start.elapsed().as_secs_f64();
        let tps = tokens_per_step * step as f64 / elapsed;
        for (n, v) in [
            (names::LOSS, loss),
            (names::LEARNING_RATE, lr),
            (names::TOKENS_PER_SECOND, tps),
            (names::GRAD_NORM, 0.8 + 0.2 * (x * 0.3).cos()),
            (names::MEMORY, 2.5e9),
        ] {
            renderer.update_train(numeric(n, v));
        }
        // (Without the live handle, the loop would report the thermal metrics here instead:
        // names::TEMPERATURE, names::COOLING_TIME and the text metric names::THERMAL_STATE.)
        renderer.update_split(step as usize);

        let rec = MetricsRecord::new(RecordKind::Train, step, steps, 1, elapsed)
            .metric(names::LOSS, loss)
            .metric(names::LEARNING_RATE, lr)
            .metric(names::TOKENS_PER_SECOND, tps)
            .metric(names::MEMORY, 2.5e9);
        metrics.write(&rec)?;
        // Every decision is in the metrics file through the observer; the loop only empties the log.
        let _ = scheduler.drain_events();
        if step % 100 == 0 {
            renderer.update_valid(numeric(names::LOSS, loss + 0.15));
            metrics.write(
                &MetricsRecord::new(RecordKind::Eval, step, steps, 1, elapsed).metric(names::LOSS, loss + 0.15),
            )?;
        }
        if controls.take_save() {
            renderer.log_event_training(format!("checkpoint saved at step {step} (demo: nothing written)"));
        }
        if let Gate::CriticalStop { temp_c } = gate {
            stop_reason = format!("critical temperature {temp_c:.1} °C: checkpoint, stop");
            break;
        }
        if controls.stop_requested() {
            stop_reason = format!("stopped by the user at step {step}: checkpoint, exit");
            break;
        }
    }
    renderer.end_split();
    let _ = renderer.on_train_end(None);
    metrics.write(
        &MetricsRecord::new(RecordKind::End, scheduler.totals().steps, steps, 1, start.elapsed().as_secs_f64())
            .text("Stop", stop_reason.clone()),
    )?;
    drop(renderer); // restores the terminal
    println!("{stop_reason}");
    println!("{}", scheduler.totals());
    Ok(())
}
