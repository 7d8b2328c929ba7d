//! What went wrong in an action that draws frames, and whether a person
//! should be told.

use crate::ofx::{OfxError, Status};

/// What went wrong in a render, and whether a person should be told.
pub(crate) enum Problem {
    /// Shown to the user (persistent where the host can) and logged.
    Tell(String, Status),
    /// Only logged (aborts, host protocol errors).
    Quiet(String, Status),
}

impl From<OfxError> for Problem {
    fn from(e: OfxError) -> Self {
        match e {
            OfxError::ImageFormat(_) => {
                Problem::Tell(format!("GenFX cannot use this image: {e}"), e.status())
            }
            _ => Problem::Quiet(e.to_string(), e.status()),
        }
    }
}
