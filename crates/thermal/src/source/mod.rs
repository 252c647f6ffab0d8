//! Temperature sources behind one trait.

mod file;
mod nvml;
mod scripted;
mod simulated;
mod sysinfo;

pub use file::FileSource;
pub use nvml::NvmlSource;
pub use scripted::ScriptedSource;
pub use simulated::SimulatedLaptop;
pub use sysinfo::SysinfoSource;

use crate::error::Result;

/// A temperature sensor.
pub trait TemperatureSource: Send {
    /// A human-readable name for logs and warnings (e.g. `sysinfo (coretemp Package id 0)`).
    fn name(&self) -> String;
    /// The current temperature in °C; `Ok(None)` when the sensor has no reading right now.
    fn read_celsius(&mut self) -> Result<Option<f64>>;
}
