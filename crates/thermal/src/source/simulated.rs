//! The simulated laptop as a sensor (see [`crate::sim`] for the model).

use crate::config::SimulatedLaptopConfig;
use crate::error::{Result, ThermalError};
use crate::sim::{LaptopModel, SharedLaptop};
use crate::source::TemperatureSource;

/// Reads the temperature of a shared [`LaptopModel`], which a [`crate::SimClock`] advances.
#[derive(Debug, Clone)]
pub struct SimulatedLaptop {
    laptop: SharedLaptop,
}

impl SimulatedLaptop {
    /// A new laptop with these parameters; pair it with `SimClock::new(source.laptop())`.
    pub fn new(params: SimulatedLaptopConfig) -> Self {
        Self { laptop: std::sync::Arc::new(std::sync::Mutex::new(LaptopModel::new(params))) }
    }

    /// The shared model (for the clock, and to inspect peak / mean / busy time).
    pub fn laptop(&self) -> SharedLaptop {
        self.laptop.clone()
    }
}

impl TemperatureSource for SimulatedLaptop {
    fn name(&self) -> String {
        "simulated laptop".to_string()
    }

    fn read_celsius(&mut self) -> Result<Option<f64>> {
        let m = self.laptop.lock().map_err(|_| ThermalError::Sensor {
            source_name: self.name(),
            message: "the model's lock was poisoned by a panic".to_string(),
        })?;
        Ok(Some(m.temp_c))
    }
}
