//! What can go wrong on the GPU, as values the engine can act on: fall back
//! to the CPU, tell the user how much memory was missing, or name the kernel
//! that failed.

use std::fmt;

/// Errors of the CUDA backend. None of them is raised by a panic: the driver
/// library is probed before first use and every FFI entry is guarded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// No NVIDIA driver library (`libcuda.so` / `nvcuda.dll`) could be loaded,
    /// or it loaded but reports no usable device.
    #[error("no CUDA driver/GPU: {0}")]
    NoDriver(String),
    /// The driver is older than the CUDA version the embedded PTX was made
    /// for, and no NVRTC was available to compile for this device instead.
    #[error("the NVIDIA driver is too old for kernel '{kernel}' ({detail})")]
    DriverTooOld { kernel: String, detail: String },
    /// NVRTC is needed (no usable embedded PTX) but missing or failed.
    #[error("NVRTC: {0}")]
    Nvrtc(String),
    /// An allocation did not fit, even after the allocator returned every
    /// cached block to the driver.
    #[error(
        "out of GPU memory: asked for {} but only {} of {} are free",
        Bytes(*asked),
        Bytes(*free),
        Bytes(*total)
    )]
    OutOfMemory {
        asked: usize,
        free: usize,
        total: usize,
    },
    /// A kernel launch was refused or the kernel faulted.
    #[error("kernel '{kernel}' failed: {detail}")]
    Launch { kernel: String, detail: String },
    /// A cuBLAS call failed.
    #[error("cuBLAS {op} failed: {detail}")]
    Blas { op: &'static str, detail: String },
    /// Tensor contents that must be finite were not.
    #[error("{what} holds a non-finite value ({value}) at element {index}")]
    NonFinite {
        what: String,
        index: usize,
        value: f32,
    },
    /// Shapes, lengths or dtypes that an op cannot take.
    #[error("invalid arguments to {op}: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// Any other driver error, with the call that returned it.
    #[error("CUDA driver call {call} failed: {detail}")]
    Driver { call: &'static str, detail: String },
    /// A panic inside cudarc or the driver bindings, caught at the FFI edge.
    #[error("CUDA bindings panicked in {call}: {detail}")]
    Panicked { call: &'static str, detail: String },
}

impl CudaError {
    /// True where running the job on the CPU is what the user would want:
    /// the GPU cannot be used at all, as opposed to a bug or bad input.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CudaError::NoDriver(_) | CudaError::DriverTooOld { .. } | CudaError::Nvrtc(_)
        )
    }
}

/// Byte counts written the way people read them.
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: f64 = 1024.0 * 1024.0;
        let b = self.0 as f64;
        if b >= 1024.0 * MIB {
            write!(f, "{:.2} GiB ({} bytes)", b / (1024.0 * MIB), self.0)
        } else if b >= MIB {
            write!(f, "{:.1} MiB ({} bytes)", b / MIB, self.0)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_names_asked_and_free_bytes() {
        let e = CudaError::OutOfMemory {
            asked: 3 << 30,
            free: 512 << 20,
            total: 80 << 30,
        };
        let text = e.to_string();
        assert!(text.contains("3.00 GiB (3221225472 bytes)"), "{text}");
        assert!(text.contains("512.0 MiB (536870912 bytes)"), "{text}");
        assert!(text.contains("80.00 GiB"), "{text}");
        assert!(!e.is_unavailable());
    }

    #[test]
    fn missing_driver_means_fall_back() {
        assert!(CudaError::NoDriver("x".into()).is_unavailable());
        assert!(CudaError::DriverTooOld {
            kernel: "k".into(),
            detail: "d".into()
        }
        .is_unavailable());
        assert!(!CudaError::Launch {
            kernel: "k".into(),
            detail: "d".into()
        }
        .is_unavailable());
    }
}
