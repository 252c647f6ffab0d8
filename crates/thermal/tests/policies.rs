//! Each policy on scripted temperature traces (the oracle is the trace itself and the policy's
//! documented formula), the critical stop, the user pause and the stop flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bit_axon_thermal::policy::PiDuty;
use bit_axon_thermal::{
    Gate, ManualClock, Policy, RealClock, ScriptedSource, ThermalConfig, ThermalScheduler, ThermalState,
};

fn config(policy: Policy) -> ThermalConfig {
    ThermalConfig {
        policy,
        pause_c: 90.0,
        resume_c: 80.0,
        throttle_start_c: 80.0,
        throttle_gain: 0.25,
        setpoint_c: 85.0,
        critical_c: 100.0,
        poll_interval_s: 1.0,
        ..ThermalConfig::default()
    }
}

fn scripted(policy: Policy, trace: &[f64]) -> ThermalScheduler {
    ThermalScheduler::new(
        &config(policy),
        Some(Box::new(ScriptedSource::new(trace.iter().copied()))),
        Box::new(ManualClock::default()),
    )
    .unwrap()
}

#[test]
fn hysteresis_pauses_at_limit_and_resumes_below_resume() {
    // Reads: 70, 89.9 (just below: runs), 90 (at the limit: pauses), polls 88, 82, 80 (not below
    // resume_c: still paused), 79.9 (resumes), then 75.
    let mut s = scripted(Policy::Hysteresis, &[70.0, 89.9, 90.0, 88.0, 82.0, 80.0, 79.9, 75.0]);
    assert_eq!(s.gate(1, 1.0), Gate::Proceed);
    assert_eq!(s.status().state, ThermalState::Running);
    assert_eq!(s.gate(2, 1.0), Gate::Proceed);
    assert_eq!(s.status().state, ThermalState::Running);
    assert_eq!(s.totals().paused_s, 0.0);

    assert_eq!(s.gate(3, 1.0), Gate::Proceed);
    // Four polls of 1 s each: 88, 82, 80, 79.9.
    assert_eq!(s.totals().paused_s, 4.0);
    assert_eq!(s.status().state, ThermalState::Running);
    assert_eq!(s.status().temp_c, Some(79.9));
    let events = s.drain_events();
    let pause = events.iter().find(|e| e.state == ThermalState::Paused).expect("a pause event");
    assert_eq!((pause.step, pause.temp_c), (3, Some(90.0)));
    assert!(pause.action.starts_with("pause"), "{}", pause.action);
    let resume = events.iter().find(|e| e.action.starts_with("resume")).expect("a resume event");
    assert_eq!((resume.step, resume.temp_c, resume.sleep_s), (3, Some(79.9), 4.0));

    assert_eq!(s.gate(4, 1.0), Gate::Proceed);
    let t = s.totals();
    assert_eq!(t.busy_s, 4.0);
    assert!((t.mean_duty_cycle - 4.0 / 8.0).abs() < 1e-12, "{t:?}");
    assert_eq!(t.peak_c, Some(90.0));
    assert_eq!(t.throttled_s, 0.0);
}

#[test]
fn throttle_sleep_grows_with_the_excess() {
    // busy 2 s, gain 0.25 /°C above 80 °C: sleep = 2 * 0.25 * (T - 80).
    let trace = [79.0, 80.0, 82.0, 84.0, 88.0];
    let expected = [0.0, 0.0, 1.0, 2.0, 4.0];
    let mut s = scripted(Policy::Throttle, &trace);
    let mut throttled_before = 0.0;
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(s.gate(i as u64, 2.0), Gate::Proceed);
        let t = s.totals();
        let slept = t.throttled_s - throttled_before;
        throttled_before = t.throttled_s;
        assert!((slept - want).abs() < 1e-12, "step {i} at {} °C: slept {slept}, want {want}", trace[i]);
        let state = s.status().state;
        assert_eq!(state, if *want > 0.0 { ThermalState::Throttled } else { ThermalState::Running });
    }
    let t = s.totals();
    assert!((t.throttled_s - 7.0).abs() < 1e-12);
    assert!((t.mean_duty_cycle - 10.0 / 17.0).abs() < 1e-12, "{t:?}");
    let events = s.drain_events();
    assert_eq!(events.len(), 5);
    assert!((events[4].sleep_s - 4.0).abs() < 1e-12 && events[4].temp_c == Some(88.0));
    // The pause at pause_c still applies under the throttle policy.
    let mut s = scripted(Policy::Throttle, &[91.0, 79.0]);
    s.gate(0, 1.0);
    assert_eq!(s.totals().paused_s, 1.0);
}

#[test]
fn critical_stop_on_step_and_during_pause() {
    for policy in [Policy::Hysteresis, Policy::Throttle, Policy::Setpoint] {
        let mut s = scripted(policy, &[70.0, 100.0]);
        assert_eq!(s.gate(1, 1.0), Gate::Proceed);
        assert_eq!(s.gate(2, 1.0), Gate::CriticalStop { temp_c: 100.0 }, "{policy:?}");
        assert_eq!(s.status().state, ThermalState::Critical);
        let last = s.drain_events().pop().unwrap();
        assert!(last.action.starts_with("critical stop"), "{}", last.action);

        // Hot, pauses, keeps heating (e.g. another process): the pause ends in a critical stop.
        let mut s = scripted(policy, &[95.0, 97.0, 101.5]);
        assert_eq!(s.gate(1, 1.0), Gate::CriticalStop { temp_c: 101.5 });
        assert_eq!(s.totals().paused_s, 2.0);
    }
}

#[test]
fn pi_controller_anti_windup_bounds_the_integral() {
    let mut pi = PiDuty::new(85.0, 0.05, 0.0005, 0.05);
    // A long cool phase at full speed: the integral stays at 0 (no negative windup).
    for _ in 0..10_000 {
        assert_eq!(pi.update(40.0, 1.0), 1.0);
    }
    assert_eq!(pi.integral, 0.0);
    // A long hot phase: output at min_duty, integral bounded by 1 - min_duty (an unbounded one
    // would reach 0.0005 * 35 * 10000 = 175).
    for _ in 0..10_000 {
        assert_eq!(pi.update(120.0, 1.0), 0.05);
    }
    assert!(pi.integral <= 0.95 + 1e-12, "{}", pi.integral);
    // Back at the set-point the controller leaves saturation at once: duty = 1 - I.
    let d = pi.update(85.0, 1.0);
    assert!((d - (1.0 - pi.integral)).abs() < 1e-12);
    // Proportional response: 1 °C above a zero integral lowers the duty by kp.
    let mut pi = PiDuty::new(85.0, 0.05, 0.0, 0.05);
    assert!((pi.update(86.0, 1.0) - 0.95).abs() < 1e-12);
}

#[test]
fn user_pause_waits_until_released_and_stop_aborts_waits() {
    let mut cfg = config(Policy::Hysteresis);
    cfg.poll_interval_s = 0.01;
    let pause = Arc::new(AtomicBool::new(true));
    let mut s = ThermalScheduler::new(&cfg, None, Box::new(RealClock::new())).unwrap().with_pause_flag(pause.clone());
    let releaser = {
        let pause = pause.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(80));
            pause.store(false, Ordering::Relaxed);
        })
    };
    // Unmanaged (no sensor) but the pause key still works.
    assert_eq!(s.gate(1, 0.0), Gate::Proceed);
    releaser.join().unwrap();
    let paused = s.totals().paused_s;
    assert!(paused >= 0.07, "paused {paused} s");
    let actions: Vec<String> = s.drain_events().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["pause: requested by the user", "resume: user"]);

    // A stop request ends a thermal pause that would otherwise never end.
    let stop = Arc::new(AtomicBool::new(false));
    let mut s = ThermalScheduler::new(&cfg, Some(Box::new(ScriptedSource::new([95.0]))), Box::new(RealClock::new()))
        .unwrap()
        .with_stop_flag(stop.clone());
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
        })
    };
    assert_eq!(s.gate(1, 0.0), Gate::Proceed);
    stopper.join().unwrap();
    assert!(s.drain_events().iter().any(|e| e.action == "stop requested during pause"));
}

#[test]
fn sensor_gaps_proceed_unmanaged_and_are_logged() {
    let src = ScriptedSource::with_gaps([Some(70.0), None, Some(71.0)]);
    let mut s = ThermalScheduler::new(&config(Policy::Setpoint), Some(Box::new(src)), Box::new(ManualClock::default()))
        .unwrap();
    for step in 0..3 {
        assert_eq!(s.gate(step, 1.0), Gate::Proceed);
    }
    let events = s.drain_events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].temp_c, None);
    assert!(events[1].action.contains("no reading"), "{}", events[1].action);
}

#[test]
fn a_sensor_gap_during_a_pause_keeps_waiting_and_says_so() {
    // 95 pauses; the next poll has no reading (logged without a temperature, the pause goes on),
    // 85 is still above resume_c, 79 resumes.
    let src = ScriptedSource::with_gaps([Some(95.0), None, Some(85.0), Some(79.0)]);
    let mut s = ThermalScheduler::new(&config(Policy::Hysteresis), Some(Box::new(src)), Box::new(ManualClock::default()))
        .unwrap();
    assert_eq!(s.gate(0, 1.0), Gate::Proceed);
    let events = s.drain_events();
    let gap = events.iter().find(|e| e.temp_c.is_none()).expect("the gap is logged");
    assert_eq!(gap.state, ThermalState::Paused);
    assert!(gap.action.contains("no reading; the pause goes on"), "{}", gap.action);
    assert!(events.last().is_some_and(|e| e.action.starts_with("resume") && e.temp_c == Some(79.0)));
}

#[test]
fn observer_and_live_handle_see_every_decision_as_it_happens() {
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<(String, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    // 95 pauses; polls read 92 and 85 (still paused, logged), 79 resumes.
    let s = scripted(Policy::Hysteresis, &[95.0, 92.0, 85.0, 79.0]);
    let live = s.live();
    assert_eq!(live.snapshot().status.state, ThermalState::Running);
    let mut s = s.with_observer(Box::new(move |ev, totals, limits| {
        assert_eq!(limits.map(|l| l.pause_c), Some(90.0));
        sink.lock().unwrap().push((ev.action.clone(), totals.paused_s));
    }));
    assert_eq!(s.gate(7, 1.0), Gate::Proceed);
    let seen = seen.lock().unwrap().clone();
    let actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "pause: 95.0 °C >= pause_c 90.0",
            "paused: 92.0 °C, resume below 80.0",
            "paused: 85.0 °C, resume below 80.0",
            "resume: 79.0 °C < resume_c 80.0"
        ]
    );
    // Totals are current at each call: paused time grows poll by poll.
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [0.0, 1.0, 2.0, 3.0]);
    let snap = live.snapshot();
    assert_eq!(snap.seq, 4);
    assert_eq!(snap.status.temp_c, Some(79.0));
    assert_eq!(snap.status.state, ThermalState::Running);
    assert_eq!(snap.totals.paused_s, 3.0);
    assert_eq!(snap.last_event.unwrap().step, 7);
    assert_eq!(s.drain_events().len(), 4);
}
