//! The `[thermal]` table of a training TOML.
//!
//! ```toml
//! [thermal]
//! enabled = "auto"        # "auto" (on only if a sensor answers) | "on" | "off"
//! source = "auto"         # "auto" | "sysinfo" | "nvml" | "file:/path/to/temp" | "simulated"
//! policy = "setpoint"     # "hysteresis" | "throttle" | "setpoint"
//! pause_c = 90.0          # pause at or above (every policy)
//! resume_c = 80.0         # resume below, after a pause
//! throttle_start_c = 80.0 # "throttle": cooling time starts above this
//! throttle_gain = 0.25    # "throttle": cooling seconds per busy second per °C above throttle_start_c
//! setpoint_c = 85.0       # "setpoint": temperature the PI controller holds
//! kp = 0.15               # "setpoint": duty-cycle change per °C of error
//! ki = 0.001              # "setpoint": duty-cycle change per °C·s of integrated error
//! min_duty = 0.05         # "setpoint": lowest duty cycle (largest cooling time = busy * (1/min_duty - 1))
//! critical_c = 100.0      # checkpoint and stop at or above (every policy)
//! poll_interval_s = 2.0   # sensor polling period while paused
//!
//! [thermal.simulated]     # used by source = "simulated" only; see `sim::LaptopModel`
//! ambient_c = 25.0
//! initial_c = 35.0
//! k_heat = 0.5333         # °C/s of heating at full load
//! k_cool = 0.006667       # 1/s (time constant 150 s)
//! idle_power = 0.05       # power while sleeping, as a fraction of full load
//! real_time = true        # cooling waits really sleep (false: instantaneous, for experiments)
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Whether thermal management runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Enabled {
    /// On only if a sensor answers at start-up (the default: off on machines without sensors).
    #[default]
    Auto,
    /// On; a missing sensor still only warns (the run goes on unmanaged).
    On,
    /// Off: no sensor is opened; only the user's pause key is honoured.
    Off,
}

/// The scheduling policy (every policy also pauses at `pause_c` and stops at `critical_c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Pause at or above `pause_c`, resume below `resume_c`.
    Hysteresis,
    /// Above `throttle_start_c`, sleep `busy_s * throttle_gain * (T - throttle_start_c)` after a step.
    Throttle,
    /// PI controller on the duty cycle holding `setpoint_c` (with anti-windup).
    #[default]
    Setpoint,
}

impl Policy {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Hysteresis => "hysteresis",
            Policy::Throttle => "throttle",
            Policy::Setpoint => "setpoint",
        }
    }
}

/// A parsed `source` string.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// Try the OS sensors (sysinfo), then NVML.
    Auto,
    /// OS sensors through `sysinfo`.
    Sysinfo,
    /// NVIDIA GPUs through NVML.
    Nvml,
    /// A file holding the temperature in °C as text.
    File(PathBuf),
    /// The simulated laptop of [`crate::sim`] (with a simulated clock).
    Simulated,
}

impl SourceSpec {
    /// Parses `"auto" | "sysinfo" | "nvml" | "file:PATH" | "simulated"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "auto" => Ok(SourceSpec::Auto),
            "sysinfo" => Ok(SourceSpec::Sysinfo),
            "nvml" => Ok(SourceSpec::Nvml),
            "simulated" => Ok(SourceSpec::Simulated),
            other => match other.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SourceSpec::File(PathBuf::from(path))),
                _ => Err(invalid(
                    "source",
                    format!("expected \"auto\", \"sysinfo\", \"nvml\", \"file:PATH\" or \"simulated\", got {other:?}"),
                )),
            },
        }
    }
}

/// Parameters of the simulated laptop (`[thermal.simulated]`), see [`crate::sim::LaptopModel`].
///
/// Defaults model a fanless laptop: full load settles at `25 + 0.5333 / 0.006667 = 105 °C`
/// with a 150 s time constant; idle settles at `25 + 0.05 * 80 = 29 °C`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedLaptopConfig {
    /// Ambient temperature (°C) the chassis cools towards.
    pub ambient_c: f64,
    /// Temperature at the start of the run (°C).
    pub initial_c: f64,
    /// Heating rate at full load (°C/s): `dT/dt = k_heat * power - k_cool * (T - ambient_c)`.
    pub k_heat: f64,
    /// Cooling coefficient (1/s); `1 / k_cool` is the thermal time constant.
    pub k_cool: f64,
    /// Power while sleeping or paused, as a fraction of full load (0..1).
    pub idle_power: f64,
    /// `true` (default): cooling waits really sleep, so a training run with the simulated source
    /// paces itself like a laptop; `false`: nothing waits (experiments and tests).
    pub real_time: bool,
}

impl Default for SimulatedLaptopConfig {
    fn default() -> Self {
        Self {
            ambient_c: 25.0,
            initial_c: 35.0,
            k_heat: 80.0 / 150.0,
            k_cool: 1.0 / 150.0,
            idle_power: 0.05,
            real_time: true,
        }
    }
}

/// The `[thermal]` table. Every field has a default, unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalConfig {
    /// `"auto"` (default) | `"on"` | `"off"`.
    pub enabled: Enabled,
    /// `"auto"` (default) | `"sysinfo"` | `"nvml"` | `"file:PATH"` | `"simulated"`.
    pub source: String,
    /// `"setpoint"` (default) | `"hysteresis"` | `"throttle"`.
    pub policy: Policy,
    /// Pause at or above this temperature (°C, default 90), whatever the policy.
    pub pause_c: f64,
    /// After a pause, resume once below this temperature (°C, default 80).
    pub resume_c: f64,
    /// Throttle policy: cooling time is inserted above this temperature (°C, default 80).
    pub throttle_start_c: f64,
    /// Throttle policy: cooling seconds per busy second per °C above `throttle_start_c` (default 0.25).
    pub throttle_gain: f64,
    /// Set-point policy: the temperature held (°C, default 85).
    pub setpoint_c: f64,
    /// Set-point policy: proportional gain, duty-cycle change per °C of error (default 0.15).
    pub kp: f64,
    /// Set-point policy: integral gain, duty-cycle change per °C·s of error (default 0.001).
    pub ki: f64,
    /// Set-point policy: the smallest duty cycle the controller may choose (default 0.05).
    pub min_duty: f64,
    /// Checkpoint and stop at or above this temperature (°C, default 100).
    pub critical_c: f64,
    /// Sensor polling period while paused (s, default 2).
    pub poll_interval_s: f64,
    /// Simulated-laptop parameters (`source = "simulated"` only).
    pub simulated: SimulatedLaptopConfig,
}

impl Default for ThermalConfig {
    fn default() -> Self {
        Self {
            enabled: Enabled::Auto,
            source: "auto".to_string(),
            policy: Policy::Setpoint,
            pause_c: 90.0,
            resume_c: 80.0,
            throttle_start_c: 80.0,
            throttle_gain: 0.25,
            setpoint_c: 85.0,
            kp: 0.15,
            ki: 0.001,
            min_duty: 0.05,
            critical_c: 100.0,
            poll_interval_s: 2.0,
            simulated: SimulatedLaptopConfig::default(),
        }
    }
}

fn finite(field: &'static str, v: f64) -> Result<()> {
    if v.is_finite() { Ok(()) } else { Err(invalid(field, format!("must be a finite number, got {v}"))) }
}

impl ThermalConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<SourceSpec> {
        let spec = SourceSpec::parse(&self.source)?;
        for (field, v) in [
            ("pause_c", self.pause_c),
            ("resume_c", self.resume_c),
            ("throttle_start_c", self.throttle_start_c),
            ("throttle_gain", self.throttle_gain),
            ("setpoint_c", self.setpoint_c),
            ("kp", self.kp),
            ("ki", self.ki),
            ("min_duty", self.min_duty),
            ("critical_c", self.critical_c),
            ("poll_interval_s", self.poll_interval_s),
        ] {
            finite(field, v)?;
        }
        if self.resume_c >= self.pause_c {
            return Err(invalid(
                "resume_c",
                format!("must be below pause_c ({}), got {}", self.pause_c, self.resume_c),
            ));
        }
        if self.critical_c <= self.pause_c {
            return Err(invalid(
                "critical_c",
                format!("must be above pause_c ({}), got {}", self.pause_c, self.critical_c),
            ));
        }
        if self.policy == Policy::Throttle && self.throttle_start_c >= self.pause_c {
            return Err(invalid(
                "throttle_start_c",
                format!("must be below pause_c ({}), got {}", self.pause_c, self.throttle_start_c),
            ));
        }
        if self.policy == Policy::Setpoint && self.setpoint_c >= self.pause_c {
            return Err(invalid(
                "setpoint_c",
                format!("must be below pause_c ({}), got {}", self.pause_c, self.setpoint_c),
            ));
        }
        if self.throttle_gain < 0.0 {
            return Err(invalid("throttle_gain", format!("must be >= 0, got {}", self.throttle_gain)));
        }
        if self.kp < 0.0 {
            return Err(invalid("kp", format!("must be >= 0, got {}", self.kp)));
        }
        if self.ki < 0.0 {
            return Err(invalid("ki", format!("must be >= 0, got {}", self.ki)));
        }
        if !(self.min_duty > 0.0 && self.min_duty <= 1.0) {
            return Err(invalid("min_duty", format!("must be in (0, 1], got {}", self.min_duty)));
        }
        if self.poll_interval_s <= 0.0 {
            return Err(invalid("poll_interval_s", format!("must be > 0, got {}", self.poll_interval_s)));
        }
        let s = &self.simulated;
        for (field, v) in [
            ("simulated.ambient_c", s.ambient_c),
            ("simulated.initial_c", s.initial_c),
            ("simulated.k_heat", s.k_heat),
            ("simulated.k_cool", s.k_cool),
            ("simulated.idle_power", s.idle_power),
        ] {
            finite(field, v)?;
        }
        if s.k_heat < 0.0 {
            return Err(invalid("simulated.k_heat", format!("must be >= 0, got {}", s.k_heat)));
        }
        if s.k_cool <= 0.0 {
            return Err(invalid("simulated.k_cool", format!("must be > 0, got {}", s.k_cool)));
        }
        if !(0.0..=1.0).contains(&s.idle_power) {
            return Err(invalid("simulated.idle_power", format!("must be in [0, 1], got {}", s.idle_power)));
        }
        Ok(spec)
    }
}
