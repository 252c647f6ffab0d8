//! Time for the scheduler: real (`std::thread::sleep` + `Instant`) or simulated (advances the
//! simulated laptop), so the policies and tests run without waiting.

use std::time::{Duration, Instant};

use crate::sim::SharedLaptop;

/// The scheduler's view of time.
pub trait Clock: Send {
    /// Seconds since the clock was created.
    fn now_s(&self) -> f64;
    /// Accounts for `busy_s` seconds of work the training loop just did. A real clock has already
    /// seen that time pass and does nothing; a simulated one advances its model at full load.
    fn account_work(&mut self, busy_s: f64);
    /// Waits `seconds` (idle).
    fn sleep(&mut self, seconds: f64);
}

/// Wall-clock time.
#[derive(Debug, Clone)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self { start: Instant::now() }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn account_work(&mut self, _busy_s: f64) {}

    fn sleep(&mut self, seconds: f64) {
        if seconds > 0.0 && seconds.is_finite() {
            std::thread::sleep(Duration::from_secs_f64(seconds));
        }
    }
}

/// Simulated time: work heats the shared [`crate::LaptopModel`], sleep cools it. Instantaneous
/// ([`SimClock::new`], for tests and experiments) or in real time ([`SimClock::real_time`]: sleeps
/// really wait, so a training run with the simulated source behaves like a laptop would).
#[derive(Debug, Clone)]
pub struct SimClock {
    laptop: SharedLaptop,
    real_time: bool,
}

impl SimClock {
    /// An instantaneous clock driving `laptop`: nothing waits.
    pub fn new(laptop: SharedLaptop) -> Self {
        Self { laptop, real_time: false }
    }

    /// A clock driving `laptop` that also really sleeps.
    pub fn real_time(laptop: SharedLaptop) -> Self {
        Self { laptop, real_time: true }
    }
}

impl Clock for SimClock {
    fn now_s(&self) -> f64 {
        self.laptop.lock().map(|m| m.time_s).unwrap_or(0.0)
    }

    fn account_work(&mut self, busy_s: f64) {
        if let Ok(mut m) = self.laptop.lock() {
            m.work(busy_s);
        }
    }

    fn sleep(&mut self, seconds: f64) {
        if self.real_time && seconds > 0.0 && seconds.is_finite() {
            std::thread::sleep(Duration::from_secs_f64(seconds));
        }
        if let Ok(mut m) = self.laptop.lock() {
            m.idle(seconds);
        }
    }
}

/// A clock that only counts (no model, no waiting), for tests driven by a scripted sensor.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    /// Seconds elapsed.
    pub time_s: f64,
    /// Seconds spent sleeping.
    pub slept_s: f64,
}

impl Clock for ManualClock {
    fn now_s(&self) -> f64 {
        self.time_s
    }

    fn account_work(&mut self, busy_s: f64) {
        self.time_s += busy_s.max(0.0);
    }

    fn sleep(&mut self, seconds: f64) {
        let s = seconds.max(0.0);
        self.time_s += s;
        self.slept_s += s;
    }
}
