//! The OS sensors through `sysinfo`'s components: Linux hwmon / thermal zones, macOS SoC sensors
//! (no sudo), Windows WMI. Reads the hottest CPU / SoC / package sensor.

use sysinfo::Components;

use crate::error::{Result, ThermalError};
use crate::source::TemperatureSource;

/// Label fragments (lower case) of CPU / SoC / package sensors across platforms:
/// Linux `coretemp` ("Package id 0", "Core 3"), `k10temp` ("Tctl", "Tdie", "Tccd1"),
/// `x86_pkg_temp`, `cpu_thermal` (ARM boards), `acpitz`; macOS ("PMU tdie", "SOC MTR Temp",
/// "CPU ... die"); Windows ("CPU").
const CPU_LABELS: &[&str] = &[
    "cpu", "package", "core", "tctl", "tdie", "tccd", "k10temp", "coretemp", "x86_pkg", "soc", "pmu", "die", "acpitz",
];

/// Label fragments of sensors that are not the compute chip and must not drive the scheduler.
const EXCLUDED_LABELS: &[&str] = &["battery", "nvme", "ssd", "wifi", "iwlwifi", "ambient", "pch", "gpu", "ddr", "dimm"];

fn is_cpu_label(label: &str) -> bool {
    let l = label.to_lowercase();
    CPU_LABELS.iter().any(|p| l.contains(p)) && !EXCLUDED_LABELS.iter().any(|p| l.contains(p))
}

/// The hottest CPU / SoC sensor reported by `sysinfo`.
pub struct SysinfoSource {
    components: Components,
    /// Indices into `components.list()` of the CPU-like sensors.
    selected: Vec<usize>,
    labels: Vec<String>,
}

impl std::fmt::Debug for SysinfoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysinfoSource").field("labels", &self.labels).finish()
    }
}

impl SysinfoSource {
    /// Lists the components; `Err` when the machine exposes no CPU / SoC temperature sensor.
    pub fn open() -> Result<Self> {
        let components = Components::new_with_refreshed_list();
        let mut selected = Vec::new();
        let mut labels = Vec::new();
        for (i, c) in components.list().iter().enumerate() {
            if is_cpu_label(c.label()) && c.temperature().is_some_and(|t| t.is_finite()) {
                selected.push(i);
                labels.push(c.label().to_string());
            }
        }
        if selected.is_empty() {
            let all: Vec<&str> = components.list().iter().map(|c| c.label()).collect();
            return Err(ThermalError::Sensor {
                source_name: "sysinfo".to_string(),
                message: if all.is_empty() {
                    "the OS exposes no temperature sensor (no hwmon / thermal zone / SoC sensor)".to_string()
                } else {
                    format!("no CPU / SoC temperature sensor among {all:?}")
                },
            });
        }
        Ok(Self { components, selected, labels })
    }

    /// Labels of the sensors whose maximum is read.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

impl TemperatureSource for SysinfoSource {
    fn name(&self) -> String {
        let shown: Vec<&str> = self.labels.iter().take(3).map(String::as_str).collect();
        let more = self.labels.len().saturating_sub(shown.len());
        if more > 0 {
            format!("sysinfo ({} and {more} more)", shown.join(", "))
        } else {
            format!("sysinfo ({})", shown.join(", "))
        }
    }

    fn read_celsius(&mut self) -> Result<Option<f64>> {
        let list = self.components.list_mut();
        let mut hottest: Option<f64> = None;
        for &i in &self.selected {
            if let Some(c) = list.get_mut(i) {
                c.refresh();
                if let Some(t) = c.temperature().map(f64::from).filter(|t| t.is_finite()) {
                    hottest = Some(hottest.map_or(t, |h| h.max(t)));
                }
            }
        }
        Ok(hottest)
    }
}
