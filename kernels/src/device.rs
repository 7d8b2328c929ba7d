//! The emulated CUDA device (`kernels/cuda-emu`, `kernels/cublas-emu`,
//! `kernels/cublaslt-emu`) from the side of a test or benchmark: finding the
//! three libraries, loading them
//! before cudarc looks for a driver, and steering the emulator (faults, dry
//! run, counters) through its `genfx_emu_*` functions.
//!
//! Loading by path is enough for cudarc to use them: each library's soname
//! is the first name cudarc asks the dynamic loader for (`libcuda.so`,
//! `libcublas.so`, `libcublasLt.so`), and the loader answers a request for a name with the
//! already loaded library of that soname. So [`EmulatedDevice::install`] must
//! run before anything in the process probes for CUDA.

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Full path of the emulated driver library, when not built on demand.
pub const DRIVER_LIB_ENV: &str = "GENFX_CUDA_DRIVER_LIB";
/// Full path of the emulated cuBLAS library, when not built on demand.
pub const CUBLAS_LIB_ENV: &str = "GENFX_CUBLAS_LIB";
/// Full path of the emulated cuBLASLt library; when unset, the file of that
/// name next to the emulated cuBLAS.
pub const CUBLASLT_LIB_ENV: &str = "GENFX_CUBLASLT_LIB";

/// The emulator's counters, in the order `genfx_emu_counters` writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub allocs: u64,
    pub frees: u64,
    pub live_bytes: u64,
    pub peak_bytes: u64,
    pub h2d_bytes: u64,
    pub d2h_bytes: u64,
    pub d2d_bytes: u64,
    pub launches: u64,
    pub gemms: u64,
    pub gemm_flops: u64,
    /// Host waits: stream, event and context synchronisations, synchronous
    /// copies.
    pub syncs: u64,
    /// Launches, copies or GEMMs that faulted or were refused.
    pub faults: u64,
}

impl Counters {
    /// What happened between `earlier` and `self` (the peak and live bytes
    /// are `self`'s).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            allocs: self.allocs - earlier.allocs,
            frees: self.frees - earlier.frees,
            live_bytes: self.live_bytes,
            peak_bytes: self.peak_bytes,
            h2d_bytes: self.h2d_bytes - earlier.h2d_bytes,
            d2h_bytes: self.d2h_bytes - earlier.d2h_bytes,
            d2d_bytes: self.d2d_bytes - earlier.d2d_bytes,
            launches: self.launches - earlier.launches,
            gemms: self.gemms - earlier.gemms,
            gemm_flops: self.gemm_flops - earlier.gemm_flops,
            syncs: self.syncs - earlier.syncs,
            faults: self.faults - earlier.faults,
        }
    }
}

type SetFn = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type CountersFn = unsafe extern "C" fn(*mut u64) -> c_int;
type ResetFn = unsafe extern "C" fn();
type KernelLaunchesFn = unsafe extern "C" fn(*const c_char) -> u64;
type LastErrorFn = unsafe extern "C" fn(*mut c_char, usize) -> usize;

/// The loaded emulated device. The libraries stay loaded for the life of
/// the process, as cudarc keeps its handles to them.
pub struct EmulatedDevice {
    driver: libloading::Library,
    _cublas: libloading::Library,
    _cublaslt: libloading::Library,
    pub driver_path: PathBuf,
    pub cublas_path: PathBuf,
    pub cublaslt_path: PathBuf,
}

impl EmulatedDevice {
    /// Loads the emulated driver, cuBLAS and cuBLASLt once per process: from
    /// `$GENFX_CUDA_DRIVER_LIB` and `$GENFX_CUBLAS_LIB` when set (cuBLASLt
    /// from `$GENFX_CUBLASLT_LIB`, else next to cuBLAS), else built with
    /// cargo next to the running executable (`target/<profile>/`).
    pub fn install() -> Result<&'static EmulatedDevice, String> {
        static DEVICE: OnceLock<Result<EmulatedDevice, String>> = OnceLock::new();
        DEVICE
            .get_or_init(|| {
                let (driver, cublas) = match (
                    std::env::var_os(DRIVER_LIB_ENV),
                    std::env::var_os(CUBLAS_LIB_ENV),
                ) {
                    (Some(d), Some(c)) => (PathBuf::from(d), PathBuf::from(c)),
                    (None, None) => build()?,
                    _ => {
                        return Err(format!(
                            "set both {DRIVER_LIB_ENV} and {CUBLAS_LIB_ENV}, or neither"
                        ))
                    }
                };
                let cublaslt = std::env::var_os(CUBLASLT_LIB_ENV)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| cublas.with_file_name(lib_name("genfx_cublaslt_emu")));
                preload_nvrtc();
                Self::load(&driver, &cublas, &cublaslt)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn load(
        driver_path: &Path,
        cublas_path: &Path,
        cublaslt_path: &Path,
    ) -> Result<EmulatedDevice, String> {
        // SAFETY: the emulated driver's initialisers only set up Rust
        // statics; nothing else runs on load.
        let driver = unsafe { libloading::Library::new(driver_path) }
            .map_err(|e| format!("loading {}: {e}", driver_path.display()))?;
        // SAFETY: only looks the symbol up, proving it is our emulator and
        // not a real driver at that path.
        unsafe { driver.get::<CountersFn>(b"genfx_emu_counters") }.map_err(|_| {
            format!(
                "{} is not GenFX's emulated driver (no genfx_emu_counters)",
                driver_path.display()
            )
        })?;
        // SAFETY: as above; the forwarding cuBLAS has no initialisers.
        let cublas = unsafe { libloading::Library::new(cublas_path) }
            .map_err(|e| format!("loading {}: {e}", cublas_path.display()))?;
        // SAFETY: as above.
        let cublaslt = unsafe { libloading::Library::new(cublaslt_path) }.map_err(|e| {
            format!(
                "loading {}: {e} (build it with `cargo build -p genfx-cublaslt-emu` or name it \
                 in {CUBLASLT_LIB_ENV})",
                cublaslt_path.display()
            )
        })?;
        Ok(EmulatedDevice {
            driver,
            _cublas: cublas,
            _cublaslt: cublaslt,
            driver_path: driver_path.to_path_buf(),
            cublas_path: cublas_path.to_path_buf(),
            cublaslt_path: cublaslt_path.to_path_buf(),
        })
    }

    /// Changes one emulator setting: `devices`, `cc` ("7.5"), `memory`
    /// (bytes), `driver_version` (12040), `dry_run` ("1"/"0"),
    /// `fail_alloc_at` (every allocation from the Nth from now fails),
    /// `fail_launch_at`, `nan_gemm_at` (the Nth from now), each also "off",
    /// `cublaslt` ("0": `cublasLtCreate` fails, as where cuBLASLt cannot be
    /// used),
    /// or `reset` (back to the `GENFX_EMU_*` settings, faults off,
    /// counters zero).
    pub fn set(&self, key: &str, value: &str) -> Result<(), String> {
        let (k, v) = (
            CString::new(key).map_err(|e| e.to_string())?,
            CString::new(value).map_err(|e| e.to_string())?,
        );
        // SAFETY: the symbol has this signature (kernels/cuda-emu/src/control.rs).
        let f = unsafe { self.driver.get::<SetFn>(b"genfx_emu_set") }.map_err(|e| e.to_string())?;
        // SAFETY: two NUL-terminated strings alive for the call.
        match unsafe { f(k.as_ptr(), v.as_ptr()) } {
            0 => Ok(()),
            _ => Err(format!("the emulator refused {key}={value:?}")),
        }
    }

    pub fn counters(&self) -> Counters {
        let mut raw = [0u64; 12];
        // SAFETY: the symbol has this signature and writes 12 u64s.
        unsafe {
            if let Ok(f) = self.driver.get::<CountersFn>(b"genfx_emu_counters") {
                f(raw.as_mut_ptr());
            }
        }
        let [allocs, frees, live_bytes, peak_bytes, h2d_bytes, d2h_bytes, d2d_bytes, launches, gemms, gemm_flops, syncs, faults] =
            raw;
        Counters {
            allocs,
            frees,
            live_bytes,
            peak_bytes,
            h2d_bytes,
            d2h_bytes,
            d2d_bytes,
            launches,
            gemms,
            gemm_flops,
            syncs,
            faults,
        }
    }

    /// Zeroes the counters; the peak restarts from the memory in use.
    pub fn reset_counters(&self) {
        // SAFETY: the symbol takes no arguments.
        unsafe {
            if let Ok(f) = self.driver.get::<ResetFn>(b"genfx_emu_reset_counters") {
                f();
            }
        }
    }

    /// Launches of the kernel called `name` since the counters were last
    /// zeroed (which of two kernels for one op the backend chose).
    pub fn kernel_launches(&self, name: &str) -> u64 {
        let Ok(n) = CString::new(name) else { return 0 };
        // SAFETY: the symbol has this signature (kernels/cuda-emu/src/control.rs).
        match unsafe {
            self.driver
                .get::<KernelLaunchesFn>(b"genfx_emu_kernel_launches")
        } {
            // SAFETY: a NUL-terminated string alive for the call.
            Ok(f) => unsafe { f(n.as_ptr()) },
            Err(_) => 0,
        }
    }

    /// The emulator's last fault or refusal, in words.
    pub fn last_error(&self) -> String {
        let mut buf = vec![0 as c_char; 4096];
        // SAFETY: the symbol has this signature; `buf` holds its capacity.
        unsafe {
            if let Ok(f) = self.driver.get::<LastErrorFn>(b"genfx_emu_last_error") {
                f(buf.as_mut_ptr(), buf.len());
            }
        }
        crate::message_of(&buf)
    }
}

/// The NVRTC library tests use: `$GENFX_NVRTC_LIB`, else the one the
/// `nvidia-cuda-nvrtc` wheel that `cargo xtask test` installs in the
/// workspace's `.tools/cuda` holds.
pub fn nvrtc_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GENFX_NVRTC_LIB") {
        return Some(PathBuf::from(p));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/cuda/nvidia/cu13/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc.so") && !n.contains("builtins"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// NVRTC stays the real one. Loaded by path unless `GENFX_NVRTC_LIB` names
/// it (then the engine loads it), so that a plain `cargo test` finds it
/// too; its soname `libnvrtc.so.13` is among the names cudarc tries.
fn preload_nvrtc() {
    if std::env::var_os("GENFX_NVRTC_LIB").is_some() {
        return;
    }
    if let Some(path) = nvrtc_library() {
        // SAFETY: NVRTC's initialisers have no side effects we depend on;
        // the handle is leaked so the library stays mapped for cudarc.
        if let Ok(l) = unsafe { libloading::Library::new(&path) } {
            std::mem::forget(l);
        }
    }
}

/// `target/<profile>/` of the running test or bench executable.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps/", exe.display()))
}

fn lib_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Builds the driver and cuBLAS libraries (and cuBLASLt, found next to
/// cuBLAS) with cargo in the profile of the running executable (a no-op when
/// fresh) and returns the first two's paths.
fn build() -> Result<(PathBuf, PathBuf), String> {
    let dir = profile_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "-p",
        "genfx-cuda-emu",
        "-p",
        "genfx-cublas-emu",
        "-p",
        "genfx-cublaslt-emu",
    ]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
        None => {}
    }
    let status = command
        .status()
        .map_err(|e| format!("running cargo to build the emulated CUDA driver: {e}"))?;
    if !status.success() {
        return Err(
            "cargo build -p genfx-cuda-emu -p genfx-cublas-emu -p genfx-cublaslt-emu failed".into(),
        );
    }
    Ok((
        dir.join(lib_name("genfx_cuda_emu")),
        dir.join(lib_name("genfx_cublas_emu")),
    ))
}
