//! Loading kernel modules onto a device: embedded PTX when build.rs made
//! some, else (or when the driver is too old for that PTX) a cubin compiled
//! by NVRTC for the device's own architecture, cached on disk.

use std::sync::Arc;

use cudarc::driver::{sys, CudaFunction, CudaModule, DriverError};
use cudarc::nvrtc::Ptx;

use super::device::{driver_err, GpuDevice};
use super::error::CudaError;
use super::kernel_cache::{default_dir, KernelCache};
use super::nvrtc::{self, Image};
use super::probe::guard;

/// One kernel module as the binary carries it.
#[derive(Clone, Copy, Debug)]
pub struct ModuleSource {
    /// Unique module name, also the cache file name.
    pub name: &'static str,
    /// CUDA C++ source, compiled by NVRTC when no PTX fits.
    pub source: &'static str,
    /// PTX made at build time, by target architecture (`("sm_80", ptx)`).
    pub ptx: &'static [(&'static str, &'static str)],
    /// Extra NVRTC options the source needs.
    pub options: &'static [&'static str],
}

/// Numeric part of `sm_XY`, for choosing the newest PTX a device can run.
fn arch_number(arch: &str) -> Option<u32> {
    arch.strip_prefix("sm_")
        .or_else(|| arch.strip_prefix("compute_"))?
        .trim_end_matches(['a', 'f'])
        .parse()
        .ok()
}

/// The embedded PTX of the newest architecture not above the device's.
/// Arch-specific PTX (`sm_90a`) only serves that exact architecture.
pub fn pick_ptx<'a>(
    ptx: &'a [(&'a str, &'a str)],
    device_arch: &str,
) -> Option<(&'a str, &'a str)> {
    let dev = arch_number(device_arch)?;
    ptx.iter()
        .filter(|(arch, _)| match arch_number(arch) {
            Some(n) if arch.ends_with('a') || arch.ends_with('f') => n == dev,
            Some(n) => n <= dev,
            None => false,
        })
        .max_by_key(|(arch, _)| arch_number(arch))
        .copied()
}

/// Driver answers meaning "this image is not for this driver or GPU".
fn needs_recompile(e: &DriverError) -> bool {
    use sys::cudaError_enum as E;
    matches!(
        e.0,
        E::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
            | E::CUDA_ERROR_INVALID_PTX
            | E::CUDA_ERROR_NO_BINARY_FOR_GPU
            | E::CUDA_ERROR_INVALID_IMAGE
    )
}

impl GpuDevice {
    /// `func` of module `src`, loading the module on first use.
    pub fn function(&self, src: &ModuleSource, func: &str) -> Result<CudaFunction, CudaError> {
        let module = self.module(src)?;
        guard("cuModuleGetFunction", || {
            module
                .load_function(func)
                .map_err(|e| driver_err("cuModuleGetFunction", e))
        })
    }

    fn module(&self, src: &ModuleSource) -> Result<Arc<CudaModule>, CudaError> {
        if let Some(m) = self.modules.lock().get(src.name) {
            return Ok(m.clone());
        }
        let module = self.load(src)?;
        self.modules.lock().insert(src.name, module.clone());
        Ok(module)
    }

    fn load(&self, src: &ModuleSource) -> Result<Arc<CudaModule>, CudaError> {
        let arch = self.arch();
        if let Some((ptx_arch, ptx)) = pick_ptx(src.ptx, &arch) {
            let loaded = guard("cuModuleLoadData", || {
                Ok(self.context().load_module(Ptx::from_src(ptx)))
            })?;
            match loaded {
                Ok(m) => return Ok(m),
                Err(e) if needs_recompile(&e) => {
                    let reason = driver_err("cuModuleLoadData", e);
                    log::warn!(
                        "embedded {ptx_arch} PTX of {} does not load ({reason}); \
                         compiling for {arch} with NVRTC",
                        src.name
                    );
                    return self.compile_and_load(src, &arch).map_err(|e| {
                        if e.is_unavailable() {
                            CudaError::DriverTooOld {
                                kernel: src.name.into(),
                                detail: format!("{reason}; and no NVRTC fallback: {e}"),
                            }
                        } else {
                            e
                        }
                    });
                }
                Err(e) => return Err(driver_err("cuModuleLoadData", e)),
            }
        }
        self.compile_and_load(src, &arch)
    }

    fn compile_and_load(
        &self,
        src: &ModuleSource,
        arch: &str,
    ) -> Result<Arc<CudaModule>, CudaError> {
        let cache = KernelCache::new(default_dir());
        let options: Vec<String> = src.options.iter().map(|s| s.to_string()).collect();
        let image = nvrtc::compile_cached(&cache, src.name, src.source, arch, &options)?;
        let bytes = match image {
            Image::Cubin(b) | Image::Ptx(b) => b,
        };
        guard("cuModuleLoadData", || {
            self.context()
                .load_module(Ptx::from_binary(bytes))
                .map_err(|e| {
                    if needs_recompile(&e) {
                        self.too_old_for(src.name, driver_err("cuModuleLoadData", e))
                    } else {
                        driver_err("cuModuleLoadData", e)
                    }
                })
        })
    }

    /// The error for a driver that refuses what this process's NVRTC
    /// compiled: names both versions and what to do.
    fn too_old_for(&self, kernel: &str, reason: CudaError) -> CudaError {
        let driver = self
            .driver_version()
            .map_or("of unknown version".into(), |(a, b)| format!("{a}.{b}"));
        let nvrtc = nvrtc::version().map_or("?".into(), |(a, b)| format!("{a}.{b}"));
        let needed = nvrtc.split('.').next().unwrap_or("a newer").to_string();
        CudaError::DriverTooOld {
            kernel: kernel.into(),
            detail: format!(
                "driver {driver} cannot load kernels NVRTC {nvrtc} compiled ({reason}); \
                 update the NVIDIA driver to CUDA {needed} or newer"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_fitting_ptx_is_chosen() {
        let ptx = [
            ("sm_80", "a"),
            ("sm_89", "b"),
            ("sm_90a", "c"),
            ("sm_90", "d"),
        ];
        assert_eq!(pick_ptx(&ptx, "sm_86"), Some(("sm_80", "a")));
        assert_eq!(pick_ptx(&ptx, "sm_89"), Some(("sm_89", "b")));
        let h100 = pick_ptx(&ptx, "sm_90").unwrap();
        assert_eq!(arch_number(h100.0), Some(90));
        assert_eq!(
            pick_ptx(&ptx, "sm_120"),
            Some(("sm_90", "d")),
            "sm_90a is Hopper only"
        );
        assert_eq!(pick_ptx(&ptx, "sm_75"), None, "Turing needs NVRTC");
        assert_eq!(pick_ptx(&[], "sm_90"), None);
    }
}
