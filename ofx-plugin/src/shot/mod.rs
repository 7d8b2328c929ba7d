//! Shots: building a request and its key, running its job, serving its
//! frames; the in-memory single-flight cache and the disk cache.

pub mod cache;
pub mod disk;
pub mod frames;
pub(crate) mod job;
pub mod key;
pub mod notes;
pub(crate) mod request;
pub(crate) mod serve;
mod stand_in;
pub(crate) mod status;

pub use key::{KeyHasher, ShotKey};
pub use request::shot_key;
