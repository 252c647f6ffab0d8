//! NVIDIA GPUs through NVML (`libnvidia-ml`, loaded at run time by `nvml-wrapper`): the hottest GPU.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;

use crate::error::{Result, ThermalError};
use crate::source::TemperatureSource;

/// The hottest GPU die temperature over all NVIDIA devices.
pub struct NvmlSource {
    nvml: Nvml,
    devices: u32,
}

impl std::fmt::Debug for NvmlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSource").field("devices", &self.devices).finish()
    }
}

impl NvmlSource {
    /// Loads NVML; `Err` (never a panic) when the library or a GPU is absent.
    pub fn open() -> Result<Self> {
        let err = |message: String| ThermalError::Sensor { source_name: "nvml".to_string(), message };
        let nvml = Nvml::init().map_err(|e| err(format!("cannot load libnvidia-ml: {e}")))?;
        let devices = nvml.device_count().map_err(|e| err(format!("cannot count GPUs: {e}")))?;
        if devices == 0 {
            return Err(err("no NVIDIA GPU found".to_string()));
        }
        Ok(Self { nvml, devices })
    }
}

impl TemperatureSource for NvmlSource {
    fn name(&self) -> String {
        format!("nvml ({} GPU{})", self.devices, if self.devices == 1 { "" } else { "s" })
    }

    fn read_celsius(&mut self) -> Result<Option<f64>> {
        let mut hottest: Option<f64> = None;
        let mut last_err = None;
        for i in 0..self.devices {
            match self.nvml.device_by_index(i).and_then(|d| d.temperature(TemperatureSensor::Gpu)) {
                Ok(t) => hottest = Some(hottest.map_or(t as f64, |h| h.max(t as f64))),
                Err(e) => last_err = Some(format!("GPU {i}: {e}")),
            }
        }
        match (hottest, last_err) {
            (Some(t), _) => Ok(Some(t)),
            (None, Some(message)) => Err(ThermalError::Sensor { source_name: self.name(), message }),
            (None, None) => Ok(None),
        }
    }
}
