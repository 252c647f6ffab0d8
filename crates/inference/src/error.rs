use std::path::PathBuf;

/// Errors of tokenisation and generation; each names the file or value involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot load tokenizer: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{}: special token `{name}` is not in the vocabulary; the chat template needs it", path.display())]
    MissingSpecialToken { path: PathBuf, name: String },
    #[error("tokenizer error: {0}")]
    Encode(String),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, Error>;
