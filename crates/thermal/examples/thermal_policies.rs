//! The thermal-policies experiment: every policy on the simulated laptop for one simulated hour
//! of a fixed work model (1 s optimizer steps of 4096 tokens), plus a sweep of each policy's
//! knob (tokens/hour against peak temperature) and a hot-room scenario.
//!
//! `cargo run -p bit-axon-thermal --example thermal_policies -- OUT_DIR` writes
//! `OUT_DIR/results.md` (tables), `OUT_DIR/traces.csv` (first 20 simulated minutes, 25 °C room) and `OUT_DIR/sweep.csv` (for plot.py).

use std::fmt::Write as _;
use std::path::PathBuf;

use bit_axon_thermal::{
    Gate, Policy, SimClock, SimulatedLaptop, SimulatedLaptopConfig, ThermalConfig, ThermalScheduler,
};

const HOUR_S: f64 = 3600.0;
const STEP_S: f64 = 1.0;
const TOKENS_PER_STEP: f64 = 4096.0;

#[derive(Debug, Clone)]
struct Outcome {
    tokens_per_hour: f64,
    peak_c: f64,
    mean_c: f64,
    duty: f64,
    paused_s: f64,
    throttled_s: f64,
    trace: Vec<(f64, f64)>,
}

/// One simulated hour. `policy: None` runs the laptop unmanaged (steps back to back).
fn run(policy: Option<&ThermalConfig>, laptop: &SimulatedLaptopConfig) -> Outcome {
    let sim = SimulatedLaptop::new(laptop.clone());
    let model = sim.laptop();
    let mut trace = vec![(0.0, laptop.initial_c)];
    let mut steps = 0u64;
    let (mut paused_s, mut throttled_s) = (0.0, 0.0);
    match policy {
        None => loop {
            let mut m = model.lock().unwrap();
            if m.time_s + STEP_S > HOUR_S {
                break;
            }
            m.work(STEP_S);
            steps += 1;
            trace.push((m.time_s, m.temp_c));
        },
        Some(cfg) => {
            let mut s = ThermalScheduler::new(cfg, Some(Box::new(sim)), Box::new(SimClock::new(model.clone())))
                .expect("valid experiment config");
            loop {
                if s.now_s() + STEP_S > HOUR_S {
                    break;
                }
                steps += 1;
                let gate = s.gate(steps, STEP_S);
                let m = model.lock().unwrap();
                trace.push((m.time_s, m.temp_c));
                if let Gate::CriticalStop { temp_c } = gate {
                    eprintln!("critical stop at {temp_c:.1} °C, {:.0} s", m.time_s);
                    break;
                }
            }
            let t = s.totals();
            paused_s = t.paused_s;
            throttled_s = t.throttled_s;
        }
    }
    let m = model.lock().unwrap();
    Outcome {
        tokens_per_hour: steps as f64 * TOKENS_PER_STEP * HOUR_S / m.time_s.max(HOUR_S),
        peak_c: m.peak_c,
        mean_c: m.mean_c(),
        duty: m.busy_s / m.time_s,
        paused_s,
        throttled_s,
        trace,
    }
}

fn policy_config(policy: Policy) -> ThermalConfig {
    ThermalConfig { policy, source: "simulated".into(), ..ThermalConfig::default() }
}

fn table(out: &mut String, title: &str, laptop: &SimulatedLaptopConfig, traces: &mut Vec<(String, Outcome)>) {
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "| policy | tokens/hour | vs unmanaged | peak °C | mean °C | duty cycle | paused s | cooling s |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let none = run(None, laptop);
    let base = none.tokens_per_hour;
    let mut rows = vec![("unmanaged".to_string(), none)];
    for p in [Policy::Hysteresis, Policy::Throttle, Policy::Setpoint] {
        let mut cfg = policy_config(p);
        cfg.simulated = laptop.clone();
        rows.push((p.as_str().to_string(), run(Some(&cfg), laptop)));
    }
    // The set-point moved up to 2 °C under the pause limit.
    let mut cfg = policy_config(Policy::Setpoint);
    cfg.setpoint_c = 88.0;
    cfg.simulated = laptop.clone();
    rows.push(("setpoint 88".to_string(), run(Some(&cfg), laptop)));
    for (name, o) in &rows {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.1} % | {:.1} | {:.1} | {:.3} | {:.0} | {:.0} |",
            o.tokens_per_hour,
            100.0 * o.tokens_per_hour / base,
            o.peak_c,
            o.mean_c,
            o.duty,
            o.paused_s,
            o.throttled_s
        );
    }
    let _ = writeln!(out);
    traces.extend(rows.into_iter().map(|(n, o)| (format!("{title}|{n}"), o)));
}

fn main() {
    let out_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "experiments/thermal-policies".into()));
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", out_dir.display()));
    let defaults = ThermalConfig::default();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Work model: {STEP_S} s optimizer steps of {TOKENS_PER_STEP} tokens, one simulated hour, laptop starting at \
         {} °C. Limits (defaults): pause {} / resume {} °C, throttle above {} °C with gain {} s/s/°C, set-point {} °C \
         (kp {}, ki {}), critical {} °C.\n",
        defaults.simulated.initial_c,
        defaults.pause_c,
        defaults.resume_c,
        defaults.throttle_start_c,
        defaults.throttle_gain,
        defaults.setpoint_c,
        defaults.kp,
        defaults.ki,
        defaults.critical_c
    );
    let mut traces = Vec::new();
    let room = SimulatedLaptopConfig::default();
    table(&mut md, "Room at 25 °C (default laptop)", &room, &mut traces);
    let hot = SimulatedLaptopConfig { ambient_c: 35.0, initial_c: 45.0, ..room.clone() };
    table(&mut md, "Hot room at 35 °C", &hot, &mut traces);
    let heavy = SimulatedLaptopConfig { k_heat: room.k_heat * 1.25, ..room.clone() };
    table(&mut md, "Heavier load (full load settles at 125 °C), room at 25 °C", &heavy, &mut traces);

    // Sweep: each policy's knob, tokens/hour against the peak temperature it allows.
    let mut sweep = String::from("policy,knob_c,peak_c,mean_c,tokens_per_hour\n");
    let _ = writeln!(
        md,
        "### Sweep (room at 25 °C): tokens/hour at each policy's knob\n\n\
         hysteresis: pause_c = knob, resume_c = knob - 10; throttle: throttle_start_c = knob (pause_c = knob + 10); \
         setpoint: setpoint_c = knob (pause_c = knob + 5).\n\n\
         | policy | knob °C | peak °C | mean °C | tokens/hour |\n|---|---:|---:|---:|---:|"
    );
    for p in [Policy::Hysteresis, Policy::Throttle, Policy::Setpoint] {
        for knob in (70..=95).step_by(5).map(f64::from) {
            let mut cfg = policy_config(p);
            cfg.critical_c = 200.0;
            match p {
                Policy::Hysteresis => {
                    cfg.pause_c = knob;
                    cfg.resume_c = knob - 10.0;
                }
                Policy::Throttle => {
                    cfg.throttle_start_c = knob;
                    cfg.pause_c = knob + 10.0;
                    cfg.resume_c = knob;
                }
                Policy::Setpoint => {
                    cfg.setpoint_c = knob;
                    cfg.pause_c = knob + 5.0;
                    cfg.resume_c = knob - 5.0;
                }
            }
            let o = run(Some(&cfg), &room);
            let _ = writeln!(sweep, "{},{knob},{:.3},{:.3},{:.1}", p.as_str(), o.peak_c, o.mean_c, o.tokens_per_hour);
            let _ = writeln!(
                md,
                "| {} | {knob:.0} | {:.1} | {:.1} | {:.0} |",
                p.as_str(),
                o.peak_c,
                o.mean_c,
                o.tokens_per_hour
            );
        }
    }
    let mut csv = String::from("scenario,policy,time_s,temp_c\n");
    for (name, o) in &traces {
        let (scenario, policy) = name.split_once('|').unwrap_or(("", name));
        // The plot shows the first 20 minutes of the first scenario.
        if !scenario.starts_with("Room at 25") {
            continue;
        }
        for (t, temp) in o.trace.iter().filter(|(t, _)| *t <= 1200.0) {
            let _ = writeln!(csv, "{scenario},{policy},{t:.2},{temp:.3}");
        }
    }
    for (file, text) in [("results.md", &md), ("sweep.csv", &sweep), ("traces.csv", &csv)] {
        let path = out_dir.join(file);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    print!("{md}");
}
