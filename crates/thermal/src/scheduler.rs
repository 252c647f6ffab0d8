//! The scheduler the training loop consults after every optimizer step.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, RealClock, SimClock};
use crate::config::{Enabled, Policy, SourceSpec, ThermalConfig};
use crate::error::Result;
use crate::policy::{PiDuty, sleep_for_duty, throttle_sleep_s};
use crate::source::{FileSource, NvmlSource, SimulatedLaptop, SysinfoSource, TemperatureSource};

/// What the training loop does after [`ThermalScheduler::gate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// Go on with the next step (any cooling wait has already happened).
    Proceed,
    /// The sensor read at or above `critical_c`: save a checkpoint and stop cleanly.
    CriticalStop {
        /// The reading that triggered the stop (°C).
        temp_c: f64,
    },
}

/// The scheduler's state, as shown on the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThermalState {
    /// Steps run back to back.
    Running,
    /// Cooling time is inserted after steps (throttle or set-point policy).
    Throttled,
    /// Training waits (too hot, or the user pressed pause).
    Paused,
    /// At or above `critical_c`: the run stops.
    Critical,
    /// No sensor: the run is not managed.
    Unmanaged,
}

impl ThermalState {
    /// Display text (`"running"`, `"throttled"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ThermalState::Running => "running",
            ThermalState::Throttled => "throttled",
            ThermalState::Paused => "paused",
            ThermalState::Critical => "critical",
            ThermalState::Unmanaged => "unmanaged",
        }
    }
}

impl fmt::Display for ThermalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scheduling decision, with the temperature it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalEvent {
    /// Scheduler-clock seconds since the start.
    pub time_s: f64,
    /// Optimizer step after which the decision was taken.
    pub step: u64,
    /// The reading (°C); `None` when the sensor gave none.
    pub temp_c: Option<f64>,
    /// State after the decision.
    pub state: ThermalState,
    /// What was done and why, e.g. `"pause: 91.2 °C >= pause_c 90.0"`.
    pub action: String,
    /// Seconds waited because of this decision (for a resume: the whole pause).
    pub sleep_s: f64,
}

/// The configured limits, for the dashboard's temperature chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalLimits {
    /// Policy name.
    pub policy: String,
    /// Pause at or above (°C).
    pub pause_c: f64,
    /// Resume below (°C).
    pub resume_c: f64,
    /// Throttle zone start (°C), throttle policy only.
    pub throttle_start_c: Option<f64>,
    /// Set-point (°C), set-point policy only.
    pub setpoint_c: Option<f64>,
    /// Critical stop (°C).
    pub critical_c: f64,
}

impl ThermalLimits {
    fn from_config(c: &ThermalConfig) -> Self {
        Self {
            policy: c.policy.as_str().to_string(),
            pause_c: c.pause_c,
            resume_c: c.resume_c,
            throttle_start_c: (c.policy == Policy::Throttle).then_some(c.throttle_start_c),
            setpoint_c: (c.policy == Policy::Setpoint).then_some(c.setpoint_c),
            critical_c: c.critical_c,
        }
    }
}

/// Current reading and state, for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalStatus {
    /// Last reading (°C).
    pub temp_c: Option<f64>,
    /// Current state.
    pub state: ThermalState,
    /// Limits; `None` when unmanaged.
    pub limits: Option<ThermalLimits>,
}

/// Run totals, for the run summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThermalTotals {
    /// Seconds of training work reported to [`ThermalScheduler::gate`].
    pub busy_s: f64,
    /// Seconds paused (too hot, or by the user).
    pub paused_s: f64,
    /// Seconds of cooling time inserted by the throttle / set-point policies.
    pub throttled_s: f64,
    /// `busy / (busy + paused + throttled)`; 1 when nothing ran.
    pub mean_duty_cycle: f64,
    /// Highest reading (°C).
    pub peak_c: Option<f64>,
    /// Time-weighted mean of the readings (°C).
    pub mean_c: Option<f64>,
    /// Number of gate calls.
    pub steps: u64,
}

impl fmt::Display for ThermalTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.1} °C"));
        write!(
            f,
            "thermal: paused {:.1} s, throttled {:.1} s, mean duty cycle {:.1} %, peak {}, mean {}",
            self.paused_s,
            self.throttled_s,
            100.0 * self.mean_duty_cycle,
            t(self.peak_c),
            t(self.mean_c)
        )
    }
}

/// Called with every [`ThermalEvent`], the totals so far and the limits (when managed).
pub type ThermalObserver = Box<dyn FnMut(&ThermalEvent, &ThermalTotals, Option<&ThermalLimits>) + Send>;

/// What [`LiveThermal::snapshot`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    /// Increments with every event; unchanged means nothing new.
    pub seq: u64,
    /// Current reading, state and limits.
    pub status: ThermalStatus,
    /// Totals so far.
    pub totals: ThermalTotals,
    /// The latest event.
    pub last_event: Option<ThermalEvent>,
}

/// A shared, always-current view of a [`ThermalScheduler`] (see [`ThermalScheduler::live`]).
#[derive(Debug, Clone)]
pub struct LiveThermal {
    inner: Arc<Mutex<LiveSnapshot>>,
}

impl Default for LiveThermal {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(LiveSnapshot {
                seq: 0,
                status: ThermalStatus { temp_c: None, state: ThermalState::Unmanaged, limits: None },
                totals: ThermalTotals { mean_duty_cycle: 1.0, ..Default::default() },
                last_event: None,
            })),
        }
    }
}

impl LiveThermal {
    /// The latest status, totals and event.
    pub fn snapshot(&self) -> LiveSnapshot {
        match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn publish(&self, status: &ThermalStatus, totals: &ThermalTotals, event: &ThermalEvent) {
        if let Ok(mut g) = self.inner.lock() {
            g.seq += 1;
            g.status = status.clone();
            g.totals = totals.clone();
            g.last_event = Some(event.clone());
        }
    }

    fn publish_status(&self, status: &ThermalStatus, totals: &ThermalTotals) {
        if let Ok(mut g) = self.inner.lock() {
            g.status = status.clone();
            g.totals = totals.clone();
        }
    }
}

/// Reads a sensor after every optimizer step and waits as the policy says.
///
/// Built by [`ThermalScheduler::from_config`] (sensors opened as configured; missing ones give a
/// warning and an unmanaged scheduler) or [`ThermalScheduler::new`] (any source and clock, for
/// tests and the simulated laptop).
pub struct ThermalScheduler {
    config: ThermalConfig,
    source: Option<Box<dyn TemperatureSource>>,
    clock: Box<dyn Clock>,
    pause_requested: Option<Arc<AtomicBool>>,
    stop_requested: Option<Arc<AtomicBool>>,
    live: LiveThermal,
    observer: Option<ThermalObserver>,
    pi: PiDuty,
    last_pi_time: Option<f64>,
    state: ThermalState,
    last_temp: Option<f64>,
    events: Vec<ThermalEvent>,
    totals: ThermalTotals,
    // Time-weighted mean of the readings.
    last_sample: Option<(f64, f64)>,
    temp_integral: f64,
    temp_duration: f64,
}

impl fmt::Debug for ThermalScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThermalScheduler")
            .field("source", &self.source.as_ref().map(|s| s.name()))
            .field("policy", &self.config.policy)
            .field("state", &self.state)
            .finish()
    }
}

impl ThermalScheduler {
    /// A scheduler with an explicit source (`None`: unmanaged) and clock. The config must be valid.
    pub fn new(
        config: &ThermalConfig,
        source: Option<Box<dyn TemperatureSource>>,
        clock: Box<dyn Clock>,
    ) -> Result<Self> {
        config.validate()?;
        let state = if source.is_some() { ThermalState::Running } else { ThermalState::Unmanaged };
        Ok(Self {
            pi: PiDuty::new(config.setpoint_c, config.kp, config.ki, config.min_duty),
            config: config.clone(),
            source,
            clock,
            pause_requested: None,
            stop_requested: None,
            live: LiveThermal::default(),
            observer: None,
            last_pi_time: None,
            state,
            last_temp: None,
            events: Vec::new(),
            totals: ThermalTotals { mean_duty_cycle: 1.0, ..Default::default() },
            last_sample: None,
            temp_integral: 0.0,
            temp_duration: 0.0,
        })
    }

    /// An unmanaged scheduler (always proceeds; still honours the pause flag).
    pub fn unmanaged() -> Self {
        Self::new(&ThermalConfig::default(), None, Box::new(RealClock::new()))
            .expect("the default thermal config is valid")
    }

    /// Opens the configured sensor. `Err` only for an invalid config (the error names the
    /// field); a missing sensor gives a warning and an unmanaged scheduler.
    pub fn from_config(config: &ThermalConfig) -> Result<(Self, Vec<String>)> {
        let spec = config.validate()?;
        let mut warnings = Vec::new();
        if config.enabled == Enabled::Off {
            return Ok((Self::new(config, None, Box::new(RealClock::new()))?, warnings));
        }
        let mut clock: Box<dyn Clock> = Box::new(RealClock::new());
        let opened: std::result::Result<Box<dyn TemperatureSource>, String> = match &spec {
            SourceSpec::Simulated => {
                let sim = SimulatedLaptop::new(config.simulated.clone());
                clock = Box::new(if config.simulated.real_time {
                    SimClock::real_time(sim.laptop())
                } else {
                    SimClock::new(sim.laptop())
                });
                Ok(Box::new(sim))
            }
            SourceSpec::Sysinfo => SysinfoSource::open().map(|s| Box::new(s) as _).map_err(|e| e.to_string()),
            SourceSpec::Nvml => NvmlSource::open().map(|s| Box::new(s) as _).map_err(|e| e.to_string()),
            SourceSpec::File(path) => Ok(Box::new(FileSource::new(path))),
            SourceSpec::Auto => match SysinfoSource::open() {
                Ok(s) => Ok(Box::new(s) as _),
                Err(e1) => match NvmlSource::open() {
                    Ok(s) => Ok(Box::new(s) as _),
                    Err(e2) => Err(format!("{e1}; {e2}")),
                },
            },
        };
        // Probe once: a source that cannot give a reading now leaves the run unmanaged.
        let source = match opened {
            Ok(mut s) => match s.read_celsius() {
                Ok(Some(_)) => Some(s),
                Ok(None) => {
                    warnings.push(format!("{}: no reading at start-up", s.name()));
                    None
                }
                Err(e) => {
                    warnings.push(e.to_string());
                    None
                }
            },
            Err(e) => {
                warnings.push(e);
                None
            }
        };
        if source.is_none() {
            let why = match config.enabled {
                Enabled::On => "[thermal] enabled = \"on\" but no temperature sensor answered",
                _ => "[thermal] no temperature sensor found",
            };
            let detail = warnings.join("; ");
            warnings.clear();
            warnings.push(format!("{why} ({detail}); training runs without thermal management"));
        }
        Ok((Self::new(config, source, clock)?, warnings))
    }

    /// Honour this flag as a user pause request (the dashboard's `p` key): while it is set,
    /// `gate` waits, polling every `poll_interval_s`.
    pub fn with_pause_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.pause_requested = Some(flag);
        self
    }

    /// Abort any wait (cooling time, pause) as soon as this flag is set (the dashboard's `q`
    /// key), so the loop can checkpoint and exit promptly.
    pub fn with_stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop_requested = Some(flag);
        self
    }

    /// Calls `observer` on every event as it happens (also during a pause, when the training loop
    /// is blocked in [`Self::gate`]), e.g. to append `"thermal"` records to the metrics file so
    /// `train watch` sees a pause while it lasts.
    pub fn with_observer(mut self, observer: ThermalObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A handle on the scheduler's latest status, totals and event, updated as they happen:
    /// the dashboard polls it so a pause shows (and its temperature moves) while the training
    /// thread waits inside [`Self::gate`].
    pub fn live(&self) -> LiveThermal {
        let handle = self.live.clone();
        handle.publish_status(&self.status(), &self.totals);
        handle
    }

    /// Whether a sensor drives this scheduler.
    pub fn is_managed(&self) -> bool {
        self.source.is_some()
    }

    /// The sensor's name, if any.
    pub fn source_name(&self) -> Option<String> {
        self.source.as_ref().map(|s| s.name())
    }

    /// The configuration.
    pub fn config(&self) -> &ThermalConfig {
        &self.config
    }

    /// Called after every optimizer step with the seconds that step took: reads the sensor,
    /// applies the policy and performs any wait. Returns [`Gate::CriticalStop`] at or above
    /// `critical_c`.
    pub fn gate(&mut self, step: u64, busy_s: f64) -> Gate {
        let busy_s = if busy_s.is_finite() { busy_s.max(0.0) } else { 0.0 };
        self.clock.account_work(busy_s);
        self.totals.busy_s += busy_s;
        self.totals.steps += 1;
        let gate = self.gate_inner(step, busy_s);
        if gate == Gate::Proceed
            && let Some(stop) = self.user_pause(step)
        {
            return stop;
        }
        self.update_duty();
        gate
    }

    fn gate_inner(&mut self, step: u64, busy_s: f64) -> Gate {
        if self.source.is_none() {
            self.state = ThermalState::Unmanaged;
            return Gate::Proceed;
        }
        let Some(t) = self.read(step, "step proceeds unmanaged") else {
            return Gate::Proceed;
        };
        if let Some(stop) = self.check_critical(step, t) {
            return stop;
        }
        let c = &self.config;
        if t >= c.pause_c {
            return self.thermal_pause(step, t);
        }
        let (sleep_s, action) = match c.policy {
            Policy::Hysteresis => (0.0, String::new()),
            Policy::Throttle => {
                let s = throttle_sleep_s(busy_s, t, c.throttle_start_c, c.throttle_gain);
                (s, format!("throttle: {t:.1} °C > throttle_start_c {:.1}", c.throttle_start_c))
            }
            Policy::Setpoint => {
                let now = self.clock.now_s();
                let dt = self.last_pi_time.map_or(0.0, |p| now - p);
                self.last_pi_time = Some(now);
                let duty = self.pi.update(t, dt);
                (sleep_for_duty(busy_s, duty), format!("setpoint {:.1} °C: duty {:.3}", c.setpoint_c, duty))
            }
        };
        if sleep_s > 0.0 {
            self.state = ThermalState::Throttled;
            let waited = self.wait(sleep_s);
            self.totals.throttled_s += waited;
            self.push(step, Some(t), action, waited);
        } else {
            self.state = ThermalState::Running;
            self.push(step, Some(t), "run".to_string(), 0.0);
        }
        Gate::Proceed
    }

    /// Pause: poll until below `resume_c` (or critical, or stop requested).
    fn thermal_pause(&mut self, step: u64, t: f64) -> Gate {
        let (pause_c, resume_c) = (self.config.pause_c, self.config.resume_c);
        self.state = ThermalState::Paused;
        self.push(step, Some(t), format!("pause: {t:.1} °C >= pause_c {pause_c:.1}"), 0.0);
        let mut waited = 0.0;
        loop {
            if self.stop_flag() {
                self.push(step, self.last_temp, "stop requested during pause".to_string(), waited);
                break;
            }
            let w = self.wait(self.config.poll_interval_s);
            waited += w;
            self.totals.paused_s += w;
            // A failed read keeps waiting: the last reading was hot.
            if let Some(t) = self.read(step, "the pause goes on (the last reading was hot)") {
                if let Some(stop) = self.check_critical(step, t) {
                    return stop;
                }
                if t < resume_c {
                    self.state = ThermalState::Running;
                    self.push(step, Some(t), format!("resume: {t:.1} °C < resume_c {resume_c:.1}"), waited);
                    // A pause resets the set-point controller's clock (the pause was not its doing).
                    self.last_pi_time = Some(self.clock.now_s());
                    break;
                }
                self.push(step, Some(t), format!("paused: {t:.1} °C, resume below {resume_c:.1}"), w);
            }
        }
        Gate::Proceed
    }

    /// The user's pause key: wait while the flag is set (temperature still watched).
    fn user_pause(&mut self, step: u64) -> Option<Gate> {
        let flag = self.pause_requested.clone()?;
        if !flag.load(Ordering::Relaxed) {
            return None;
        }
        let before = self.state;
        self.state = ThermalState::Paused;
        self.push(step, self.last_temp, "pause: requested by the user".to_string(), 0.0);
        let mut waited = 0.0;
        while flag.load(Ordering::Relaxed) && !self.stop_flag() {
            let w = self.wait(self.config.poll_interval_s);
            waited += w;
            self.totals.paused_s += w;
            if self.source.is_some()
                && let Some(t) = self.read(step, "the user's pause goes on")
            {
                if let Some(stop) = self.check_critical(step, t) {
                    return Some(stop);
                }
                self.push(step, Some(t), format!("paused by the user: {t:.1} °C"), w);
            }
        }
        self.state = if self.source.is_some() { ThermalState::Running } else { before };
        self.push(step, self.last_temp, "resume: user".to_string(), waited);
        self.last_pi_time = Some(self.clock.now_s());
        None
    }

    fn check_critical(&mut self, step: u64, t: f64) -> Option<Gate> {
        if t >= self.config.critical_c {
            self.state = ThermalState::Critical;
            self.push(
                step,
                Some(t),
                format!("critical stop: {t:.1} °C >= critical_c {:.1}", self.config.critical_c),
                0.0,
            );
            Some(Gate::CriticalStop { temp_c: t })
        } else {
            None
        }
    }

    /// Reads the sensor and updates the statistics; a failure is logged as an event, saying what
    /// happens next (`then`: the step proceeds unmanaged, or a pause keeps waiting).
    fn read(&mut self, step: u64, then: &str) -> Option<f64> {
        let source = self.source.as_mut()?;
        let now = self.clock.now_s();
        match source.read_celsius() {
            Ok(Some(t)) => {
                if let Some((t_prev, temp_prev)) = self.last_sample {
                    let dt = (now - t_prev).max(0.0);
                    self.temp_integral += temp_prev * dt;
                    self.temp_duration += dt;
                }
                self.last_sample = Some((now, t));
                self.last_temp = Some(t);
                self.totals.peak_c = Some(self.totals.peak_c.map_or(t, |p| p.max(t)));
                self.totals.mean_c =
                    Some(if self.temp_duration > 0.0 { self.temp_integral / self.temp_duration } else { t });
                Some(t)
            }
            Ok(None) => {
                let name = source.name();
                self.push(step, None, format!("{name}: no reading; {then}"), 0.0);
                None
            }
            Err(e) => {
                self.push(step, None, format!("{e}; {then}"), 0.0);
                None
            }
        }
    }

    /// Sleeps `seconds` in chunks of at most `poll_interval_s`, stopping early if a stop is
    /// requested; returns the seconds waited, as measured on the clock.
    fn wait(&mut self, seconds: f64) -> f64 {
        let start = self.clock.now_s();
        let mut left = seconds;
        while left > 1e-12 {
            if self.stop_flag() {
                break;
            }
            let chunk = left.min(self.config.poll_interval_s);
            self.clock.sleep(chunk);
            left -= chunk;
        }
        // Measured on the clock: a real sleep that overruns counts as the time it took.
        (self.clock.now_s() - start).max(0.0)
    }

    fn stop_flag(&self) -> bool {
        self.stop_requested.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn push(&mut self, step: u64, temp_c: Option<f64>, action: String, sleep_s: f64) {
        let event = ThermalEvent { time_s: self.clock.now_s(), step, temp_c, state: self.state, action, sleep_s };
        self.update_duty();
        let status = self.status();
        self.live.publish(&status, &self.totals, &event);
        if let Some(observer) = self.observer.as_mut() {
            observer(&event, &self.totals, status.limits.as_ref());
        }
        self.events.push(event);
    }

    fn update_duty(&mut self) {
        let t = &mut self.totals;
        let total = t.busy_s + t.paused_s + t.throttled_s;
        t.mean_duty_cycle = if total > 0.0 { t.busy_s / total } else { 1.0 };
    }

    /// Takes the events logged since the last call.
    pub fn drain_events(&mut self) -> Vec<ThermalEvent> {
        std::mem::take(&mut self.events)
    }

    /// Run totals so far.
    pub fn totals(&self) -> ThermalTotals {
        self.totals.clone()
    }

    /// Current reading, state and limits.
    pub fn status(&self) -> ThermalStatus {
        ThermalStatus {
            temp_c: self.last_temp,
            state: self.state,
            limits: self.source.is_some().then(|| ThermalLimits::from_config(&self.config)),
        }
    }

    /// Seconds on the scheduler's clock (simulated seconds for the simulated laptop).
    pub fn now_s(&self) -> f64 {
        self.clock.now_s()
    }
}
