/// Errors from quantizing or assembling quantized tensors; each names the tensor and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("`{name}`: {reason}")]
    Shape { name: String, reason: String },
    #[error("unknown quantization format `{0}`; expected nf4 or affine4")]
    Format(String),
}

pub type Result<T> = std::result::Result<T, QuantError>;

pub(crate) fn shape_err(name: &str, reason: impl Into<String>) -> QuantError {
    QuantError::Shape { name: name.to_string(), reason: reason.into() }
}
