//! The simulated laptop against an independent reference (fine explicit Euler integration of the
//! ODE), and the set-point controller holding it near the set-point with the analytic duty cycle.

use bit_axon_thermal::{
    Gate, LaptopModel, Policy, SimClock, SimulatedLaptop, SimulatedLaptopConfig, ThermalConfig, ThermalScheduler,
};

#[test]
fn exact_solution_matches_fine_euler_integration() {
    let params = SimulatedLaptopConfig::default();
    let mut exact = LaptopModel::new(params.clone());
    // Reference: dT/dt = k_heat * P - k_cool * (T - ambient), Euler with dt = 1 ms.
    let mut t = params.initial_c;
    let mut integral = 0.0;
    let schedule = [(30.0, 1.0), (12.5, params.idle_power), (200.0, 1.0), (77.0, params.idle_power)];
    for (secs, power) in schedule {
        exact.advance(secs, power);
        let n = (secs / 1e-3_f64).round() as usize;
        for _ in 0..n {
            integral += t * 1e-3;
            t += 1e-3 * (params.k_heat * power - params.k_cool * (t - params.ambient_c));
        }
    }
    // Euler's global error is O(dt): about 1e-3 °C here.
    assert!((exact.temp_c - t).abs() < 5e-3, "exact {} vs euler {t}", exact.temp_c);
    let total: f64 = schedule.iter().map(|s| s.0).sum();
    assert!((exact.mean_c() - integral / total).abs() < 5e-3);
    assert!((exact.time_s - total).abs() < 1e-9);
    assert!((exact.busy_s - 230.0).abs() < 1e-9);
    // Equilibria of the defaults: 105 °C at full load, 29 °C idle.
    assert!((exact.equilibrium_c(1.0) - 105.0).abs() < 1e-9);
    assert!((exact.equilibrium_c(params.idle_power) - 29.0).abs() < 1e-9);
}

#[test]
fn setpoint_controller_holds_the_simulated_laptop_near_the_setpoint() {
    let cfg = ThermalConfig { policy: Policy::Setpoint, source: "simulated".into(), ..ThermalConfig::default() };
    let sim = SimulatedLaptop::new(cfg.simulated.clone());
    let laptop = sim.laptop();
    let mut s = ThermalScheduler::new(&cfg, Some(Box::new(sim)), Box::new(SimClock::new(laptop.clone()))).unwrap();
    let mut step = 0;
    let mut settled_temps = Vec::new();
    let (mut busy_at_1200, mut time_at_1200) = (None, 0.0);
    while s.now_s() < 3600.0 {
        step += 1;
        assert_eq!(s.gate(step, 1.0), Gate::Proceed);
        let m = laptop.lock().unwrap();
        assert!(m.temp_c < cfg.pause_c, "reached {} °C at {} s", m.temp_c, m.time_s);
        if m.time_s >= 1200.0 {
            settled_temps.push(m.temp_c);
            if busy_at_1200.is_none() {
                busy_at_1200 = Some(m.busy_s);
                time_at_1200 = m.time_s;
            }
        }
    }
    let (lo, hi) = settled_temps.iter().fold((f64::MAX, f64::MIN), |(l, h), &t| (l.min(t), h.max(t)));
    assert!(lo > cfg.setpoint_c - 1.0 && hi < cfg.setpoint_c + 1.0, "settled range {lo:.2}..{hi:.2} °C");
    // Analytic steady state: 25 + 80 * (0.05 + 0.95 d) = 85  =>  d = 0.7 / 0.95.
    let m = laptop.lock().unwrap();
    let duty = (m.busy_s - busy_at_1200.unwrap()) / (m.time_s - time_at_1200);
    let want = 0.7 / 0.95;
    assert!((duty - want).abs() < 0.01, "settled duty {duty:.4}, analytic {want:.4}");
    let t = s.totals();
    assert!(t.throttled_s > 0.0 && t.paused_s == 0.0, "{t:?}");
}

#[test]
fn from_config_simulated_uses_the_simulated_clock() {
    let mut cfg = ThermalConfig { source: "simulated".into(), policy: Policy::Hysteresis, ..ThermalConfig::default() };
    cfg.simulated.real_time = false;
    let (mut s, warnings) = ThermalScheduler::from_config(&cfg).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(s.is_managed());
    // 10 simulated minutes at full load run instantly and heat past the pause limit, which
    // then pauses (simulated) until below resume_c.
    let start = std::time::Instant::now();
    for step in 0..600 {
        s.gate(step, 1.0);
    }
    assert!(start.elapsed().as_secs_f64() < 5.0);
    let t = s.totals();
    assert!(t.paused_s > 0.0, "{t:?}");
    assert!(t.peak_c.unwrap() >= 90.0 && t.peak_c.unwrap() < 91.0, "{t:?}");
    assert!(s.now_s() > 600.0);
}
