//! Errors of tensor operations.

use super::DType;

/// Why a tensor operation could not run. Shapes are given as dimension lists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("{op}: shape mismatch, {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },
    #[error("{op}: expected dtype {expected}, got {got}")]
    DTypeMismatch {
        op: &'static str,
        expected: DType,
        got: DType,
    },
    #[error("{op}: tensors live on different devices ({lhs} and {rhs})")]
    DeviceMismatch {
        op: &'static str,
        lhs: String,
        rhs: String,
    },
    #[error("{op} is not supported on {device} for {dtype}")]
    Unsupported {
        op: &'static str,
        device: String,
        dtype: DType,
    },
    #[error("out of memory on {device}: {msg}")]
    OutOfMemory { device: String, msg: String },
    /// A failure inside a backend (driver error, kernel launch, ...).
    #[error("{device}: {msg}")]
    Backend { device: String, msg: String },
}

impl TensorError {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        TensorError::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, TensorError>;
