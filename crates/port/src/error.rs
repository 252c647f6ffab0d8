//! One error type for porting: every message names the file, tensor or field involved.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// The source checkpoint cannot be ported to the requested target.
    #[error("{0}")]
    Incompatible(String),
    /// Errors from the model crate (checkpoint reading and writing).
    #[error(transparent)]
    Model(#[from] bit_axon::Error),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub fn format(path: &Path, reason: impl Into<String>) -> Self {
        Error::Format { path: path.to_path_buf(), reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
