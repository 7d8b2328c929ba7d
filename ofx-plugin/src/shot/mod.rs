//! Shots: keys, the in-memory single-flight cache and the disk cache.

pub mod cache;
pub mod disk;
pub mod key;
pub mod notes;

pub use key::{KeyHasher, ShotKey};
