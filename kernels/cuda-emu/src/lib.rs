//! An emulated CUDA device: a shared library that exports the CUDA driver API
//! functions cudarc calls (and, through `genfx-cublas-emu`, the cuBLAS ones
//! GenFX uses), so that the whole CUDA backend runs on a machine with no GPU.
//!
//! How it stands in for the GPU (the approach of GPGPU-Sim's `libcuda`, much
//! smaller: only the entry points our code reaches, and only our kernels):
//! - **Memory** is host memory, one aligned heap block per allocation, kept
//!   in a table by address ([`memory`]). Every kernel argument and every GEMM
//!   operand is checked against that table: an address outside every live
//!   allocation is refused with a message naming the argument.
//! - **Modules.** `cuModuleLoadData` reads the kernel names out of the image
//!   the real NVRTC (or nvcc) produced — `.entry` lines of PTX, function
//!   symbols of a cubin — and binds the module to the source file whose
//!   kernels the SIMT emulator (`genfx-kernels-emu`) compiled from the same
//!   `kernels/*.cu` ([`image`]).
//! - **Launches** unpack `kernelParams` by that kernel's C++ signature and
//!   run it on the SIMT emulator with its bounds, alignment and shared-memory
//!   race checks on.
//! - **Streams are asynchronous**: work is queued per stream and runs only
//!   when the host waits for it (stream, event or context synchronisation, a
//!   synchronous copy, a free), in stream order ([`queue`]). A host read that
//!   forgot to wait sees the poison pattern the driver wrote over its buffer,
//!   not the data.
//! - **cuBLAS** GEMMs compute on the CPU with f32 accumulation, rounding the
//!   output to its type ([`blas`]); so do **cuBLASLt** matmuls, with the bias
//!   epilogue (through `genfx-cublaslt-emu`, [`blaslt`]).
//! - **Counters** (allocations, peak bytes, copies, launches, syncs, GEMM
//!   FLOPs), **fault injection** (out of memory at the Nth allocation, a
//!   failed launch, a NaN from a GEMM, no device, an old card or driver) and
//!   a **dry run** (everything checked and counted, nothing computed, memory
//!   never backed) are driven by `GENFX_EMU_*` variables and the
//!   `genfx_emu_*` control functions ([`control`]).
//!
//! Not modelled: timing, concurrency between streams (each stream's work runs
//! at its synchronisation point), memory ordering between streams beyond
//! stream order and events, real tensor-core rounding (the emulated MMA
//! computes in f32), occupancy, register and cache limits.

// Every exported function follows the CUDA driver or cuBLAS documentation's
// contract for its pointers; there is no Rust caller to document it for.
#![allow(clippy::missing_safety_doc)]

mod blas;
mod blaslt;
mod config;
mod control;
mod driver;
mod image;
mod memory;
mod queue;
mod state;
mod unsupported;
