//! Run-time compilation of the embedded kernel sources with NVRTC, for the
//! exact architecture of the device in use, through the on-disk cache.
//!
//! This is the path when build.rs found no nvcc (no PTX was embedded) or when
//! the driver is too old for the embedded PTX: compiling a cubin for the
//! device's own `sm_XY` needs no PTX JIT in the driver.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

use cudarc::nvrtc::{result as nvrtc, sys};

use super::error::CudaError;
use super::kernel_cache::{CacheKey, KernelCache};
use super::probe::{guard, Libraries, NVRTC_LIB_ENV};

/// Folder with `cuda_bf16.h` and friends, when not found next to NVRTC.
pub const CUDA_INCLUDE_ENV: &str = "GENFX_CUDA_INCLUDE";

/// A compiled module image as `cuModuleLoadData` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// Machine code for one architecture.
    Cubin(Vec<u8>),
    /// PTX text, NUL-terminated.
    Ptx(Vec<u8>),
}

impl Image {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Image::Cubin(b) | Image::Ptx(b) => b,
        }
    }
}

/// The NVRTC version, `(major, minor)`.
pub fn version() -> Result<(i32, i32), CudaError> {
    require_nvrtc()?;
    guard("nvrtcVersion", || {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both out-pointers are valid for the call.
        let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
        status
            .result()
            .map_err(|e| CudaError::Nvrtc(format!("nvrtcVersion: {e:?}")))?;
        Ok((major, minor))
    })
}

fn require_nvrtc() -> Result<(), CudaError> {
    if Libraries::detect().nvrtc {
        Ok(())
    } else {
        Err(CudaError::Nvrtc(format!(
            "libnvrtc is not installed (set {NVRTC_LIB_ENV} to its full path)"
        )))
    }
}

/// Include folders to pass: `$GENFX_CUDA_INCLUDE`, the `include/` beside a
/// pip wheel's `lib/` (`.../nvidia/cu13/{lib,include}`), `$CUDA_PATH/include`.
pub fn include_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(CUDA_INCLUDE_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(lib) = std::env::var_os(NVRTC_LIB_ENV) {
        if let Some(root) = PathBuf::from(lib).parent().and_then(|p| p.parent()) {
            dirs.push(root.join("include"));
        }
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(root) = std::env::var_os(var) {
            dirs.push(PathBuf::from(root).join("include"));
        }
    }
    dirs.retain(|d| d.join("cuda_bf16.h").exists() || d.join("cuda_runtime.h").exists());
    dirs.dedup();
    dirs
}

/// Compiles `source` (module `name`) to a cubin for `arch` (e.g. `sm_90`),
/// reusing a cached image when one exists for the same inputs.
pub fn compile_cached(
    cache: &KernelCache,
    name: &str,
    source: &str,
    arch: &str,
    extra_options: &[String],
) -> Result<Image, CudaError> {
    let nvrtc_version = version()?;
    let mut options = base_options(arch);
    options.extend(extra_options.iter().cloned());
    let key = CacheKey {
        module: name,
        source,
        arch,
        nvrtc_version,
        options: &options,
    };
    if let Some(bytes) = cache.load(&key, "cubin") {
        log::debug!("kernel module {name} for {arch}: from cache");
        return Ok(Image::Cubin(bytes));
    }
    log::info!("compiling kernel module {name} for {arch} with NVRTC {nvrtc_version:?}");
    let (cubin, log) = compile(name, source, &options)?;
    if !log.trim().is_empty() {
        log::warn!("NVRTC said, compiling {name}:\n{log}");
    }
    if let Err(e) = cache.store(&key, "cubin", &cubin) {
        log::warn!(
            "could not cache compiled kernels in {}: {e}",
            cache.dir().display()
        );
    }
    Ok(Image::Cubin(cubin))
}

/// The options every compile gets for `arch`. No fast-math: build.rs's
/// nvcc PTX is made without it, and the run-time fallback must give the
/// same numbers (the noise generator's log/sin/cos above all).
pub fn base_options(arch: &str) -> Vec<String> {
    let mut options: Vec<String> = vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()];
    options.extend(
        include_dirs()
            .into_iter()
            .map(|d| format!("--include-path={}", d.display())),
    );
    options
}

/// One NVRTC compilation to a cubin, with NVRTC's log (warnings); the log
/// is part of any error.
pub fn compile(
    name: &str,
    source: &str,
    options: &[String],
) -> Result<(Vec<u8>, String), CudaError> {
    require_nvrtc()?;
    let src = CString::new(source)
        .map_err(|_| CudaError::Nvrtc(format!("source of {name} contains a NUL byte")))?;
    let cname = CString::new(name)
        .map_err(|_| CudaError::Nvrtc(format!("module name {name:?} contains a NUL byte")))?;
    let nvrtc_err = |what: &str, e: nvrtc::NvrtcError| CudaError::Nvrtc(format!("{what}: {e:?}"));
    guard("nvrtcCompileProgram", || {
        let prog = nvrtc::create_program(&src, Some(&cname))
            .map_err(|e| nvrtc_err("nvrtcCreateProgram", e))?;
        let program = Program(prog);
        // SAFETY: `prog` is a live program; options are valid C strings.
        let compiled = unsafe { nvrtc::compile_program(program.0, options) };
        // SAFETY: as above; the log exists whether or not compilation worked.
        let log = unsafe { nvrtc::get_program_log(program.0) }
            .map(|raw| {
                // SAFETY: NVRTC NUL-terminates the log it returns.
                unsafe { CStr::from_ptr(raw.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        if let Err(e) = compiled {
            return Err(CudaError::Nvrtc(format!(
                "compiling {name} failed ({e:?}) with {options:?}:\n{log}"
            )));
        }
        let mut size = 0usize;
        // SAFETY: `prog` compiled; `size` is a valid out-pointer.
        unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) }
            .result()
            .map_err(|e| nvrtc_err("nvrtcGetCUBINSize", e))?;
        let mut cubin = vec![0u8; size];
        // SAFETY: `cubin` has the `size` bytes NVRTC asked for.
        unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast()) }
            .result()
            .map_err(|e| nvrtc_err("nvrtcGetCUBIN", e))?;
        if cubin.is_empty() {
            return Err(CudaError::Nvrtc(format!(
                "NVRTC produced no cubin for {name}: was a real architecture (sm_XY) given?"
            )));
        }
        Ok((cubin, log))
    })
}

/// Destroys the NVRTC program on every path out of [`compile`].
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is
        // destroyed exactly once, here.
        if let Err(e) = unsafe { nvrtc::destroy_program(self.0) } {
            log::warn!("nvrtcDestroyProgram: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exercises the real NVRTC when this machine has it (CI installs the
    /// wheel and sets GENFX_NVRTC_LIB); elsewhere it checks the typed error.
    #[test]
    fn compiles_to_a_cached_cubin_or_says_nvrtc_is_missing() {
        let dir = std::env::temp_dir().join(format!("genfx-nvrtc-{}", std::process::id()));
        let cache = KernelCache::new(&dir);
        let src = "extern \"C\" __global__ void twice(float* x, int n) {\n\
                   int i = blockIdx.x * blockDim.x + threadIdx.x;\n\
                   if (i < n) x[i] *= 2.0f; }\n";
        match compile_cached(&cache, "twice", src, "sm_80", &[]) {
            Ok(Image::Cubin(bytes)) => {
                assert_eq!(&bytes[..4], b"\x7fELF", "a cubin is an ELF image");
                let again = compile_cached(&cache, "twice", src, "sm_80", &[]).unwrap();
                assert_eq!(
                    again,
                    Image::Cubin(bytes),
                    "second compile comes from the cache"
                );
                let err =
                    compile_cached(&cache, "broken", "this is not C++", "sm_80", &[]).unwrap_err();
                assert!(matches!(err, CudaError::Nvrtc(ref m) if m.contains("broken")));
            }
            Ok(Image::Ptx(_)) => panic!("asked for a cubin"),
            Err(CudaError::Nvrtc(msg)) => {
                assert!(
                    !Libraries::detect().nvrtc,
                    "NVRTC present but failed: {msg}"
                );
                eprintln!("NVRTC not installed here; checked the typed error only: {msg}");
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
