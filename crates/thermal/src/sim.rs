//! The simulated laptop: a first-order (lumped-capacitance) thermal model.
//!
//! ```text
//! dT/dt = k_heat * P - k_cool * (T - T_ambient)
//! ```
//!
//! `P` is the power drawn as a fraction of full load: `1` while a training step runs, `idle_power`
//! while the scheduler sleeps or pauses. Over an interval of constant `P` the equation has the
//! exact solution
//!
//! ```text
//! T(t + dt) = T_eq + (T(t) - T_eq) * exp(-k_cool * dt),   T_eq = T_ambient + k_heat * P / k_cool
//! ```
//!
//! which [`LaptopModel::advance`] applies, so any step size is exact (no Euler drift). At a duty
//! cycle `d` the laptop settles at `T_ambient + (k_heat / k_cool) * (idle + (1 - idle) * d)`.
//! A consequence used by the thermal-policies experiment: in steady state the heat removed,
//! `k_cool * (mean T - T_ambient)`, equals the mean power, so throughput is proportional to the
//! mean temperature excess, and the best policy under a peak limit is the one whose mean
//! temperature stays closest to that limit.
//!
//! The model's clock is simulated: it advances only by the work and sleep reported to it (see
//! [`crate::SimClock`]), so an hour of training simulates in microseconds.

use std::sync::{Arc, Mutex};

use crate::config::SimulatedLaptopConfig;

/// State and parameters of the simulated laptop.
#[derive(Debug, Clone)]
pub struct LaptopModel {
    /// Parameters (see [`SimulatedLaptopConfig`]).
    pub params: SimulatedLaptopConfig,
    /// Current temperature (°C).
    pub temp_c: f64,
    /// Simulated seconds since the start.
    pub time_s: f64,
    /// Simulated seconds spent at full load.
    pub busy_s: f64,
    /// Integral of the temperature over simulated time (°C·s), for the time-weighted mean.
    pub temp_integral: f64,
    /// Highest temperature reached (°C).
    pub peak_c: f64,
}

impl LaptopModel {
    /// A laptop at `params.initial_c`, time 0.
    pub fn new(params: SimulatedLaptopConfig) -> Self {
        let t0 = params.initial_c;
        Self { params, temp_c: t0, time_s: 0.0, busy_s: 0.0, temp_integral: 0.0, peak_c: t0 }
    }

    /// Equilibrium temperature at constant power `power` (fraction of full load).
    pub fn equilibrium_c(&self, power: f64) -> f64 {
        self.params.ambient_c + self.params.k_heat * power / self.params.k_cool
    }

    /// Advances `dt` seconds at constant `power` with the exact solution (see module docs).
    pub fn advance(&mut self, dt: f64, power: f64) {
        if dt <= 0.0 || !dt.is_finite() {
            return;
        }
        let k = self.params.k_cool;
        let eq = self.equilibrium_c(power);
        let t0 = self.temp_c;
        let decay = (-k * dt).exp();
        let t1 = eq + (t0 - eq) * decay;
        // Exact integral of T over the interval: eq * dt + (t0 - eq) * (1 - e^{-k dt}) / k.
        self.temp_integral += eq * dt + (t0 - eq) * (1.0 - decay) / k;
        // T is monotone on the interval, so the peak is at one end.
        self.peak_c = self.peak_c.max(t1);
        self.temp_c = t1;
        self.time_s += dt;
        if power >= 1.0 {
            self.busy_s += dt;
        }
    }

    /// Runs at full load for `dt` seconds.
    pub fn work(&mut self, dt: f64) {
        self.advance(dt, 1.0);
    }

    /// Idles (sleeps / pauses) for `dt` seconds.
    pub fn idle(&mut self, dt: f64) {
        let p = self.params.idle_power;
        self.advance(dt, p);
    }

    /// Time-weighted mean temperature so far (the initial temperature before any time passed).
    pub fn mean_c(&self) -> f64 {
        if self.time_s > 0.0 { self.temp_integral / self.time_s } else { self.temp_c }
    }
}

/// A [`LaptopModel`] shared by the [`crate::SimulatedLaptop`] source and the [`crate::SimClock`].
pub type SharedLaptop = Arc<Mutex<LaptopModel>>;
