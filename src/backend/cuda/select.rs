//! Choosing where a job runs: a fresh CUDA backend (own stream and
//! allocator) on the GPU when one can be used, else the CPU, said once per
//! process in the log so that a user without an NVIDIA driver is told why
//! generation is slow, without one line per frame.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use super::backend::CudaBackend;
use super::device::GpuDevice;
use super::error::CudaError;
use crate::backend::Device;

static CPU_NOTICE: Once = Once::new();
static CPU_NOTICES: AtomicUsize = AtomicUsize::new(0);

/// A device for one job: CUDA on `ordinal` (or the default GPU), else the
/// CPU. Errors that mean "no usable GPU" fall back; the first fallback of the
/// process is logged at `warn` with the reason, later ones at `debug`.
pub fn job_device(ordinal: Option<usize>) -> Device {
    match GpuDevice::get(ordinal).and_then(CudaBackend::new) {
        Ok(backend) => Device::new(Arc::new(backend)),
        Err(e) => {
            note_cpu_fallback(&e);
            Device::cpu()
        }
    }
}

fn note_cpu_fallback(reason: &CudaError) {
    let mut first = false;
    CPU_NOTICE.call_once(|| {
        first = true;
        CPU_NOTICES.fetch_add(1, Ordering::SeqCst);
        log::warn!(
            "GenFX runs on the CPU: {reason}. Generation will be much slower than on a GPU."
        );
    });
    if !first {
        log::debug!("job on the CPU ({reason})");
    }
}

/// How many times the CPU fallback was announced (0 or 1), for tests.
pub fn cpu_fallback_notices() -> usize {
    CPU_NOTICES.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cuda::probe::Libraries;

    #[test]
    fn without_a_driver_jobs_run_on_the_cpu_and_it_is_said_once() {
        if Libraries::detect().require_driver().is_ok() {
            // a GPU machine: the CUDA path is covered by the GPU tests
            let d = job_device(None);
            assert!(d.is_cpu() || d.name().starts_with("cuda:"));
            return;
        }
        for _ in 0..3 {
            assert!(job_device(None).is_cpu());
        }
        assert_eq!(cpu_fallback_notices(), 1);
    }
}
