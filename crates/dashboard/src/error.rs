//! Dashboard errors; each names the file concerned.

use std::path::PathBuf;

/// An I/O or parse error of the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a metrics file is not a valid record.
    #[error("{path}:{line}: not a metrics record: {message}")]
    Parse {
        /// The metrics file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde said.
        message: String,
    },
    /// The terminal could not be set up or drawn.
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

/// Result with a [`DashboardError`].
pub type Result<T> = std::result::Result<T, DashboardError>;
