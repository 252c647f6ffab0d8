//! Errors of the thermal crate. Each names the config field, file or sensor concerned.

/// A thermal-configuration or sensor error.
#[derive(Debug, thiserror::Error)]
pub enum ThermalError {
    /// A `[thermal]` field has a value outside its valid range.
    #[error("[thermal] {field}: {message}")]
    InvalidConfig {
        /// The offending field, e.g. `resume_c` or `simulated.k_cool`.
        field: &'static str,
        /// What was expected.
        message: String,
    },
    /// A sensor could not be read.
    #[error("temperature source {source_name}: {message}")]
    Sensor {
        /// The source's [`crate::TemperatureSource::name`].
        source_name: String,
        /// What went wrong.
        message: String,
    },
}

/// Result with a [`ThermalError`].
pub type Result<T> = std::result::Result<T, ThermalError>;

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ThermalError {
    ThermalError::InvalidConfig { field, message: message.into() }
}
