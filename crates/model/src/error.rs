//! One error type for everything a user can get wrong: configs, checkpoints, inputs.

use std::path::PathBuf;

/// Errors from configuration, checkpoint and input handling.
///
/// Every variant names the file, field or tensor involved, so a message can be acted on
/// without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent with another.
    #[error("invalid config field `{field}`: {reason}")]
    Config { field: String, reason: String },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file was read but its content is not what was expected (bad JSON, TOML, safetensors header...).
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },

    /// A tensor the model needs is absent from the checkpoint.
    #[error("checkpoint {}: missing tensor `{name}` (expected shape {expected:?})", dir.display())]
    MissingTensor { dir: PathBuf, name: String, expected: Vec<usize> },

    /// A tensor exists but has the wrong shape.
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected:?}", file.display())]
    Shape { file: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },

    /// A tensor exists but its dtype cannot be used.
    #[error("{}: tensor `{name}` has dtype {found}, expected {expected}", file.display())]
    Dtype { file: PathBuf, name: String, expected: String, found: String },

    /// A runtime input (token ids, device name...) is invalid.
    #[error("{0}")]
    Input(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format { path: path.into(), reason: reason.into() }
    }
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        Error::Config { field: field.to_string(), reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
