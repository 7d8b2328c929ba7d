//! The CPU reference backend: f32, parallel with rayon.

pub mod channel_norm;
pub mod conv3d;
pub mod space_depth;
