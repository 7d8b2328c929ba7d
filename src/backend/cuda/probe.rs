//! Finding out whether CUDA can be used at all, without letting cudarc panic.
//!
//! cudarc resolves every driver, NVRTC and cuBLAS symbol lazily with dlopen
//! and panics when the library is missing. So: ask whether each library
//! loads before the first call, and run every call into the bindings inside
//! [`guard`] so that a panic that slips through becomes a [`CudaError`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::error::CudaError;

/// Set to `1` to behave as if no NVIDIA driver were installed, so that the
/// CPU fall-back can be exercised on a GPU machine.
pub const FORCE_NO_CUDA_ENV: &str = "GENFX_FORCE_NO_CUDA";
/// Full path of an NVRTC library to use when it is not on the loader path
/// (e.g. `.../site-packages/nvidia/cu13/lib/libnvrtc.so.13`).
pub const NVRTC_LIB_ENV: &str = "GENFX_NVRTC_LIB";

/// Which of the CUDA libraries this process can load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Libraries {
    pub driver: bool,
    pub nvrtc: bool,
    pub cublas: bool,
    /// cuBLASLt, for GEMMs with the bias in their epilogue; without it a
    /// bias is copied into the output before a plain cuBLAS GEMM.
    pub cublaslt: bool,
}

impl Libraries {
    /// Probes once per process; the answer cannot change while it runs.
    pub fn detect() -> Libraries {
        static DETECTED: OnceLock<Libraries> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if std::env::var(FORCE_NO_CUDA_ENV).is_ok_and(|v| v == "1") {
                return Libraries {
                    driver: false,
                    nvrtc: false,
                    cublas: false,
                    cublaslt: false,
                };
            }
            preload_nvrtc();
            Libraries {
                // SAFETY: each probe only dlopens the library by name and
                // drops the handle; no symbol is called.
                driver: probe("libcuda", || unsafe {
                    cudarc::driver::sys::is_culib_present()
                }),
                // SAFETY: as above.
                nvrtc: probe("libnvrtc", || unsafe {
                    cudarc::nvrtc::sys::is_culib_present()
                }),
                // SAFETY: as above.
                cublas: probe("libcublas", || unsafe {
                    cudarc::cublas::sys::is_culib_present()
                }),
                // SAFETY: as above.
                cublaslt: probe("libcublasLt", || unsafe {
                    cudarc::cublaslt::sys::is_culib_present()
                }),
            }
        })
    }

    /// The reason the driver cannot be used, or `Ok` when it can be tried.
    pub fn require_driver(&self) -> Result<(), CudaError> {
        if std::env::var(FORCE_NO_CUDA_ENV).is_ok_and(|v| v == "1") {
            return Err(CudaError::NoDriver(format!(
                "disabled by {FORCE_NO_CUDA_ENV}=1"
            )));
        }
        if self.driver {
            Ok(())
        } else {
            Err(CudaError::NoDriver(
                "the NVIDIA driver library (libcuda.so / nvcuda.dll) is not installed".into(),
            ))
        }
    }
}

fn probe(name: &str, f: impl FnOnce() -> bool) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(found) => found,
        Err(_) => {
            log::warn!("probing {name} panicked; treating it as absent");
            false
        }
    }
}

/// Loads NVRTC from an explicit path when one is given, so that cudarc's later
/// dlopen by soname finds the library already mapped. Pip wheels and
/// toolkits outside the loader path are found this way.
fn preload_nvrtc() {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os(NVRTC_LIB_ENV) {
        candidates.push(PathBuf::from(p));
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(root) = std::env::var_os(var) {
            let root = PathBuf::from(root);
            for lib in [
                "lib64/libnvrtc.so",
                "lib/libnvrtc.so",
                "bin/nvrtc64_130_0.dll",
            ] {
                candidates.push(root.join(lib));
            }
        }
    }
    for path in candidates.into_iter().filter(|p| p.exists()) {
        // SAFETY: loading NVRTC runs only its (side-effect free) initialisers.
        // The handle is leaked on purpose: the library must stay mapped for
        // the life of the process so cudarc's by-name lookup resolves to it.
        match unsafe { libloading::Library::new(&path) } {
            Ok(lib) => {
                log::info!("NVRTC preloaded from {}", path.display());
                std::mem::forget(lib);
                return;
            }
            Err(e) => log::warn!("could not load NVRTC from {}: {e}", path.display()),
        }
    }
}

/// Runs a call into the CUDA bindings, turning a panic into a typed error.
pub fn guard<T>(
    call: &'static str,
    f: impl FnOnce() -> Result<T, CudaError>,
) -> Result<T, CudaError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CudaError::Panicked { call, detail })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_a_typed_error() {
        let r: Result<(), _> = guard("cuTest", || panic!("library not found"));
        match r {
            Err(CudaError::Panicked { call, detail }) => {
                assert_eq!(call, "cuTest");
                assert!(detail.contains("library not found"));
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(guard("ok", || Ok(7)), Ok(7));
    }

    #[test]
    fn driver_requirement_matches_detection() {
        let libs = Libraries::detect();
        let forced = std::env::var(FORCE_NO_CUDA_ENV).is_ok_and(|v| v == "1");
        match libs.require_driver() {
            Ok(()) => assert!(libs.driver && !forced),
            Err(CudaError::NoDriver(reason)) => assert!(!reason.is_empty()),
            Err(other) => panic!("unexpected {other:?}"),
        }
        let absent = Libraries {
            driver: false,
            nvrtc: true,
            cublas: true,
            cublaslt: true,
        };
        assert!(matches!(
            absent.require_driver(),
            Err(CudaError::NoDriver(_))
        ));
    }
}
