//! The `[thermal]` TOML table, missing sensors, and the file sensor driving a pause and resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bit_axon_thermal::{
    Enabled, FileSource, Gate, Policy, SourceSpec, TemperatureSource, ThermalConfig, ThermalScheduler, ThermalState,
};

#[derive(serde::Deserialize)]
struct TrainToml {
    thermal: ThermalConfig,
}

#[test]
fn thermal_table_parses_with_defaults_and_rejects_unknown_fields() {
    let t: TrainToml = toml::from_str(
        "[thermal]\nenabled = \"on\"\nsource = \"file:/tmp/t\"\npolicy = \"throttle\"\npause_c = 88\n\
         [thermal.simulated]\nk_cool = 0.01\n",
    )
    .unwrap();
    let c = t.thermal;
    assert_eq!(c.enabled, Enabled::On);
    assert_eq!(c.policy, Policy::Throttle);
    assert_eq!(c.pause_c, 88.0);
    assert_eq!(c.resume_c, ThermalConfig::default().resume_c);
    assert_eq!(c.simulated.k_cool, 0.01);
    assert_eq!(c.simulated.ambient_c, 25.0);
    assert_eq!(c.validate().unwrap(), SourceSpec::File("/tmp/t".into()));

    let err = toml::from_str::<TrainToml>("[thermal]\npause = 80\n").err().unwrap().to_string();
    assert!(err.contains("pause"), "{err}");
    let err = toml::from_str::<TrainToml>("[thermal]\npolicy = \"pid\"\n").err().unwrap().to_string();
    assert!(err.contains("pid"), "{err}");
    // Defaults round-trip through TOML.
    let text = toml::to_string(&ThermalConfig::default()).unwrap();
    assert_eq!(toml::from_str::<ThermalConfig>(&text).unwrap(), ThermalConfig::default());
}

#[test]
fn validation_errors_name_the_field() {
    let cases: Vec<(ThermalConfig, &str)> = vec![
        (ThermalConfig { resume_c: 95.0, ..Default::default() }, "resume_c"),
        (ThermalConfig { critical_c: 85.0, ..Default::default() }, "critical_c"),
        (ThermalConfig { setpoint_c: 92.0, ..Default::default() }, "setpoint_c"),
        (ThermalConfig { policy: Policy::Throttle, throttle_start_c: 95.0, ..Default::default() }, "throttle_start_c"),
        (ThermalConfig { poll_interval_s: 0.0, ..Default::default() }, "poll_interval_s"),
        (ThermalConfig { min_duty: 0.0, ..Default::default() }, "min_duty"),
        (ThermalConfig { kp: f64::NAN, ..Default::default() }, "kp"),
        (ThermalConfig { source: "gpu".into(), ..Default::default() }, "source"),
        (ThermalConfig { source: "file:".into(), ..Default::default() }, "source"),
    ];
    for (cfg, field) in cases {
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.starts_with(&format!("[thermal] {field}:")), "{field}: {err}");
        assert!(ThermalScheduler::from_config(&cfg).is_err());
    }
    let mut cfg = ThermalConfig::default();
    cfg.simulated.k_cool = -1.0;
    assert!(cfg.validate().unwrap_err().to_string().contains("simulated.k_cool"));
}

#[test]
fn missing_sensors_warn_and_run_unmanaged() {
    let cfg =
        ThermalConfig { enabled: Enabled::On, source: "file:/nonexistent/bit-axon-temp".into(), ..Default::default() };
    let (mut s, warnings) = ThermalScheduler::from_config(&cfg).unwrap();
    assert!(!s.is_managed());
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("/nonexistent/bit-axon-temp") && warnings[0].contains("without thermal"),
        "{warnings:?}"
    );
    assert_eq!(s.gate(1, 0.5), Gate::Proceed);
    assert_eq!(s.status().state, ThermalState::Unmanaged);
    assert_eq!(s.status().limits, None);

    // Whatever this machine has (a CI runner may have no sensor and no NVIDIA driver), opening
    // the OS sensors or NVML never panics: either managed, or unmanaged with a warning.
    for source in ["auto", "sysinfo", "nvml"] {
        let cfg = ThermalConfig { source: source.into(), ..Default::default() };
        let (s, warnings) = ThermalScheduler::from_config(&cfg).unwrap();
        assert_eq!(s.is_managed(), warnings.is_empty(), "{source}: {warnings:?}");
    }
    // Off opens nothing and warns about nothing.
    let cfg = ThermalConfig { enabled: Enabled::Off, source: "file:/nonexistent".into(), ..Default::default() };
    let (s, warnings) = ThermalScheduler::from_config(&cfg).unwrap();
    assert!(!s.is_managed() && warnings.is_empty());
}

#[test]
fn file_source_reads_text_and_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("temp");
    let mut src = FileSource::new(&path);
    assert!(src.read_celsius().unwrap_err().to_string().contains("temp"));
    std::fs::write(&path, " 83.5\n").unwrap();
    assert_eq!(src.read_celsius().unwrap(), Some(83.5));
    std::fs::write(&path, "").unwrap();
    assert_eq!(src.read_celsius().unwrap(), None);
    std::fs::write(&path, "hot").unwrap();
    let err = src.read_celsius().unwrap_err().to_string();
    assert!(err.contains("\"hot\"") && err.contains(&path.display().to_string()), "{err}");
}

fn write_temp(path: &std::path::Path, t: f64) {
    // Write-and-rename so a reader never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{t}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn file_sensor_set_hot_pauses_at_the_next_gate_and_resumes_when_cooled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("temp_c");
    write_temp(&path, 60.0);
    let cfg = ThermalConfig {
        enabled: Enabled::On,
        source: format!("file:{}", path.display()),
        policy: Policy::Hysteresis,
        poll_interval_s: 0.01,
        ..Default::default()
    };
    let (s, warnings) = ThermalScheduler::from_config(&cfg).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let mut s = s.with_stop_flag(stop.clone());

    assert_eq!(s.gate(1, 0.0), Gate::Proceed);
    assert_eq!(s.totals().paused_s, 0.0);

    // Set hot; a thread cools it again after 150 ms.
    write_temp(&path, 95.0);
    let cooler = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            write_temp(&path, 70.0);
        })
    };
    // Safety net: if the resume never came the test fails instead of hanging.
    let guard = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            stop.store(true, Ordering::Relaxed);
        })
    };
    // The live handle shows the pause while the gate blocks (what the dashboard polls).
    let live = s.live();
    let watcher = std::thread::spawn(move || {
        let mut saw_pause = false;
        for _ in 0..100 {
            let snap = live.snapshot();
            if snap.status.state == ThermalState::Paused && snap.status.temp_c == Some(95.0) {
                saw_pause = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        saw_pause
    });
    let start = std::time::Instant::now();
    assert_eq!(s.gate(2, 0.0), Gate::Proceed);
    let waited = start.elapsed().as_secs_f64();
    cooler.join().unwrap();
    assert!(watcher.join().unwrap(), "the live handle never showed the pause");
    assert!(!stop.load(Ordering::Relaxed), "the pause did not end when the file cooled");
    assert!((0.1..5.0).contains(&waited), "waited {waited} s");
    let events = s.drain_events();
    let pause = events.iter().find(|e| e.state == ThermalState::Paused).expect("pause event");
    assert_eq!((pause.step, pause.temp_c), (2, Some(95.0)));
    let resume = events.iter().find(|e| e.action.starts_with("resume")).expect("resume event");
    assert_eq!((resume.step, resume.temp_c), (2, Some(70.0)));
    assert!(s.totals().paused_s >= 0.1);
    assert_eq!(s.status().state, ThermalState::Running);
    drop(guard);
}
