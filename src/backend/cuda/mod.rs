//! The CUDA backend: our kernels and cuBLAS, run through cudarc.
//!
//! Nothing here links against CUDA. cudarc loads the driver, NVRTC and
//! cuBLAS with dlopen when first used, and [`probe`] checks that each library
//! exists before that happens, so the plugin loads and runs on the CPU where
//! no NVIDIA driver is installed.
//!
//! - [`probe`]: which CUDA libraries exist; panics at the FFI edge become errors.
//! - [`device`]: the process-wide GPU (context, modules, weights).
//! - [`alloc`]: size-class caching allocator for activations, one per job.
//! - [`kernel_cache`] and [`nvrtc`]: run-time compilation for the device's
//!   architecture, cached on disk.
//! - [`dtype`]: bf16/f16 storage and host-side conversions.
//! - [`CudaBackend`]: the engine's backend interface on one job's stream,
//!   from cuBLAS ([`blas`]), cuBLASLt for biased GEMMs ([`blaslt`]) and our
//!   kernels; [`CudaStorage`] its buffers.

pub mod alloc;
mod backend;
pub mod blas;
pub mod blaslt;
pub mod device;
pub mod dtype;
pub mod error;
pub mod kernel_cache;
pub mod modules;
pub mod nvrtc;
pub mod probe;
mod select;
mod storage;
pub mod tensor_ops;

pub use backend::CudaBackend;
pub use device::GpuDevice;
pub use dtype::Half;
pub use error::CudaError;
pub use select::{cpu_fallback_notices, job_device};
pub use storage::CudaStorage;
