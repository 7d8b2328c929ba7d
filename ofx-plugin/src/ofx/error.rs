//! Errors of the wrapper layer and the OFX status each one answers with.

use ofx_sys as sys;

/// An OFX status code.
pub type Status = sys::OfxStatus;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfxError {
    /// A suite function answered something other than success.
    #[error("host call {call} answered status {status}")]
    Host { call: &'static str, status: Status },
    /// A suite or a function the plug-in needs is not provided by the host.
    #[error("the host does not provide {0}")]
    Missing(&'static str),
    /// A handle the host passed is null or not one of ours.
    #[error("bad handle: {0}")]
    BadHandle(&'static str),
    /// An image whose depth, components or layout cannot be handled.
    #[error("unsupported image: {0}")]
    ImageFormat(String),
    /// A value that cannot be passed to or taken from the host.
    #[error("{0}")]
    Value(String),
}

impl OfxError {
    /// The status an action answers when it fails with this error.
    pub fn status(&self) -> Status {
        match self {
            OfxError::Host { status, .. } if *status != sys::kOfxStatOK => *status,
            OfxError::Host { .. } => sys::kOfxStatFailed,
            OfxError::Missing(_) => sys::kOfxStatErrMissingHostFeature,
            OfxError::BadHandle(_) => sys::kOfxStatErrBadHandle,
            OfxError::ImageFormat(_) => sys::kOfxStatErrImageFormat,
            OfxError::Value(_) => sys::kOfxStatErrValue,
        }
    }
}

pub type OfxResult<T> = Result<T, OfxError>;

/// Turns a suite call's status into a result.
pub(crate) fn check(call: &'static str, status: Status) -> OfxResult<()> {
    if status == sys::kOfxStatOK {
        Ok(())
    } else {
        Err(OfxError::Host { call, status })
    }
}
