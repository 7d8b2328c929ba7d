//! The wrapper layer over the OpenFX C API: the only module with `unsafe`.
//! Everything above it sees typed values, never raw host pointers.

pub mod action;
pub mod effect;
pub mod error;
pub mod exports;
pub mod host;
pub mod message;
pub mod param;
pub mod progress;
pub mod props;
pub mod threads;

pub use action::Action;
pub use effect::{Clip, Effect, Image};
pub use error::{OfxError, OfxResult, Status};
pub use host::Host;
pub use props::PropSet;
