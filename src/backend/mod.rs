//! Compute backends: `cpu` is the f32 reference, `cuda` runs our kernels.
pub mod cuda;
