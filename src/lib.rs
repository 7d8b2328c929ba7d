//! GenFX engine: turns a [`engine::ShotRequest`] into frames.
//!
//! Dependencies point one way: the OpenFX plugin uses this crate; this crate
//! knows nothing of OpenFX. Inside, models use tensors, tensors run on a
//! backend, and the CUDA backend runs the kernels in `kernels/`.

pub mod backend;
pub mod engine;
pub mod kernels;
pub mod models;
pub mod pipeline;
pub mod provenance;
pub mod sampler;
pub mod tensor;
pub mod testing;
pub mod tokenizer;
pub mod weights;
