//! Thermal-aware training scheduler for Bit-Axon.
//!
//! Users train on fanless laptops: a run must hold the machine under a temperature limit instead
//! of letting the firmware throttle it or letting it overheat. The training loop calls
//! [`ThermalScheduler::gate`] after every optimizer step with the seconds the step took; the
//! scheduler reads a [`TemperatureSource`], applies the configured [`Policy`] and does the waiting
//! itself (through a [`Clock`], so tests and the simulated laptop run instantly).
//!
//! - Sources: [`SysinfoSource`] (OS sensors: Linux hwmon / thermal zones, macOS SoC sensors,
//!   no sudo), [`NvmlSource`] (NVIDIA GPUs, `libnvidia-ml` loaded at run time), [`FileSource`]
//!   (`file:PATH`, the file holds °C as text), [`SimulatedLaptop`] (a documented first-order
//!   thermal model, see [`sim`]) and [`ScriptedSource`] (a fixed trace, for tests).
//! - Policies: hysteresis pause/resume, a throttle zone with cooling time proportional to the
//!   excess, and a set-point PI controller on the duty cycle (see [`policy`]). Every policy stops
//!   the run at `critical_c` ([`Gate::CriticalStop`]) so the loop can checkpoint and exit.
//! - Missing sensors never crash a run: [`ThermalScheduler::from_config`] returns warnings and an
//!   unmanaged scheduler that always proceeds (it still honours the user's pause key).

pub mod clock;
pub mod config;
pub mod error;
pub mod policy;
pub mod scheduler;
pub mod sim;
pub mod source;

pub use clock::{Clock, ManualClock, RealClock, SimClock};
pub use config::{Enabled, Policy, SimulatedLaptopConfig, SourceSpec, ThermalConfig};
pub use error::{Result, ThermalError};
pub use scheduler::{
    Gate, LiveSnapshot, LiveThermal, ThermalEvent, ThermalLimits, ThermalObserver, ThermalScheduler, ThermalState,
    ThermalStatus, ThermalTotals,
};
pub use sim::{LaptopModel, SharedLaptop};
pub use source::{FileSource, NvmlSource, ScriptedSource, SimulatedLaptop, SysinfoSource, TemperatureSource};
