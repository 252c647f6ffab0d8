//! The cooling-time rules of the throttle and set-point policies (pure arithmetic, no I/O).
//!
//! Every policy shares two guards applied by [`crate::ThermalScheduler`] first: at or above
//! `critical_c` the run stops; at or above `pause_c` it pauses until the sensor reads below
//! `resume_c` (hysteresis). The policies differ below `pause_c`:
//!
//! - **hysteresis**: nothing; the step proceeds.
//! - **throttle**: after a step of `busy_s` seconds, sleep
//!   `busy_s * throttle_gain * max(0, T - throttle_start_c)` (a proportional controller on the
//!   cooling time; it settles above `throttle_start_c` by a load-dependent offset).
//! - **setpoint**: a PI controller on the duty cycle `d = busy / (busy + sleep)`, see [`PiDuty`].

/// Cooling seconds the throttle policy inserts after a step of `busy_s` seconds at `temp_c`.
pub fn throttle_sleep_s(busy_s: f64, temp_c: f64, throttle_start_c: f64, throttle_gain: f64) -> f64 {
    (busy_s.max(0.0) * throttle_gain * (temp_c - throttle_start_c).max(0.0)).max(0.0)
}

/// Cooling seconds that bring a step of `busy_s` seconds to duty cycle `duty`:
/// `busy / (busy + sleep) = duty  =>  sleep = busy * (1 / duty - 1)`.
pub fn sleep_for_duty(busy_s: f64, duty: f64) -> f64 {
    if duty >= 1.0 || busy_s <= 0.0 { 0.0 } else { busy_s * (1.0 / duty.max(f64::MIN_POSITIVE) - 1.0) }
}

/// PI controller choosing the duty cycle that holds a set-point temperature.
///
/// With the error `e = T - setpoint_c` (positive when too hot) and its running integral
/// `I = ki * ∫ e dt`:
///
/// ```text
/// duty = clamp(1 - kp * e - I, min_duty, 1)
/// ```
///
/// Anti-windup: the integral term is clamped to `[0, 1 - min_duty]` (it can never ask for more
/// than full speed or less than `min_duty` on its own), and it is not integrated further while the
/// output is saturated in the direction the error pushes (conditional integration). So after a
/// long cool phase at full speed the controller reacts at once when the laptop heats up, and
/// after a hot phase at `min_duty` it recovers without overshooting for long.
#[derive(Debug, Clone)]
pub struct PiDuty {
    /// Set-point (°C).
    pub setpoint_c: f64,
    /// Proportional gain (duty per °C).
    pub kp: f64,
    /// Integral gain (duty per °C·s).
    pub ki: f64,
    /// Lowest duty cycle.
    pub min_duty: f64,
    /// Integral term `ki * ∫ e dt`, clamped to `[0, 1 - min_duty]`.
    pub integral: f64,
    /// Last duty cycle chosen.
    pub duty: f64,
}

impl PiDuty {
    /// A controller at full duty with an empty integral.
    pub fn new(setpoint_c: f64, kp: f64, ki: f64, min_duty: f64) -> Self {
        Self { setpoint_c, kp, ki, min_duty, integral: 0.0, duty: 1.0 }
    }

    /// Updates with a reading `temp_c` taken `dt_s` seconds after the previous one; returns the
    /// duty cycle for the next step.
    pub fn update(&mut self, temp_c: f64, dt_s: f64) -> f64 {
        let e = temp_c - self.setpoint_c;
        let max_i = 1.0 - self.min_duty;
        let candidate = (self.integral + self.ki * e * dt_s.max(0.0)).clamp(0.0, max_i);
        let unsat = 1.0 - self.kp * e - candidate;
        // Conditional integration: keep the old integral if the output saturates and the error
        // pushes further into saturation.
        let saturating_low = unsat < self.min_duty && e > 0.0;
        let saturating_high = unsat > 1.0 && e < 0.0;
        if !(saturating_low || saturating_high) {
            self.integral = candidate;
        }
        self.duty = (1.0 - self.kp * e - self.integral).clamp(self.min_duty, 1.0);
        self.duty
    }
}
