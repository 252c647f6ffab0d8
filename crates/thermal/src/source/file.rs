//! `file:PATH`: the file holds the temperature in °C as text (e.g. `"83.5\n"`), for tests, demos
//! and external tools (a script reading `powermetrics`, a thermocouple logger, ...).

use std::path::{Path, PathBuf};

use crate::error::{Result, ThermalError};
use crate::source::TemperatureSource;

/// Reads a temperature from a text file on every call.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_path_buf() }
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TemperatureSource for FileSource {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn read_celsius(&mut self) -> Result<Option<f64>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| ThermalError::Sensor {
            source_name: self.name(),
            message: format!("cannot read the file: {e}"),
        })?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            // A writer may have truncated the file and not yet written the new value.
            return Ok(None);
        }
        let t: f64 = trimmed.parse().map_err(|_| ThermalError::Sensor {
            source_name: self.name(),
            message: format!("expected a temperature in °C as text, found {trimmed:?}"),
        })?;
        if !t.is_finite() {
            return Err(ThermalError::Sensor {
                source_name: self.name(),
                message: format!("temperature is not finite: {trimmed:?}"),
            });
        }
        Ok(Some(t))
    }
}
