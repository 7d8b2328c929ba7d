//! The cuBLASLt library of GenFX's emulated CUDA device.
//!
//! Like `genfx-cublas-emu`: the matmuls must share the emulated driver's
//! memory table and streams, so the work lives in `genfx-cuda-emu`
//! (`blaslt.rs`) and every function here forwards to the one of the same
//! name there, found through the driver's soname `libcuda.so`. A library of
//! its own because cudarc loads cuBLASLt by its own name (`libcublasLt.so`),
//! and a machine may have cuBLAS without it.

// Every exported function follows cuBLASLt's documented contract.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

/// CUBLAS_STATUS_NOT_INITIALIZED: what every call answers when the emulated
/// driver cannot be found.
const NOT_INITIALIZED: c_int = 1;

fn driver() -> Option<&'static libloading::Library> {
    static LIB: OnceLock<Option<libloading::Library>> = OnceLock::new();
    LIB.get_or_init(|| {
        // SAFETY: loading the emulated driver runs no initialiser of
        // consequence; it is normally mapped already.
        let lib = unsafe { libloading::Library::new("libcuda.so") }.ok()?;
        // a real driver has no cuBLASLt in it: refuse it rather than fail later
        // SAFETY: only looks the symbol up.
        unsafe { lib.get::<unsafe extern "C" fn()>(b"genfx_emu_counters") }.ok()?;
        Some(lib)
    })
    .as_ref()
}

macro_rules! forward {
    ($( fn $name:ident($($arg:ident: $ty:ty),* $(,)?); )*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
                type F = unsafe extern "C" fn($($ty),*) -> c_int;
                let Some(lib) = driver() else { return NOT_INITIALIZED };
                // SAFETY: the emulated driver exports this name with exactly
                // this signature (kernels/cuda-emu/src/blaslt.rs).
                match unsafe { lib.get::<F>(concat!(stringify!($name), "\0").as_bytes()) } {
                    // SAFETY: forwarding the caller's arguments under the same contract.
                    Ok(f) => unsafe { f($($arg),*) },
                    Err(_) => NOT_INITIALIZED,
                }
            }
        )*
    };
}

forward! {
    fn cublasLtCreate(handle: *mut *mut c_void);
    fn cublasLtDestroy(handle: *mut c_void);
    fn cublasLtMatmulDescCreate(desc: *mut *mut c_void, compute: c_int, scale: c_int);
    fn cublasLtMatmulDescDestroy(desc: *mut c_void);
    fn cublasLtMatmulDescSetAttribute(desc: *mut c_void, attr: c_int, buf: *const c_void, size: usize);
    fn cublasLtMatrixLayoutCreate(layout: *mut *mut c_void, elem: c_int, rows: u64, cols: u64, ld: i64);
    fn cublasLtMatrixLayoutDestroy(layout: *mut c_void);
    fn cublasLtMatrixLayoutSetAttribute(layout: *mut c_void, attr: c_int, buf: *const c_void, size: usize);
    fn cublasLtMatmulPreferenceCreate(pref: *mut *mut c_void);
    fn cublasLtMatmulPreferenceDestroy(pref: *mut c_void);
    fn cublasLtMatmulPreferenceSetAttribute(pref: *mut c_void, attr: c_int, buf: *const c_void, size: usize);
    fn cublasLtMatmulAlgoGetHeuristic(
        handle: *mut c_void, desc: *mut c_void, a: *mut c_void, b: *mut c_void, c: *mut c_void,
        d: *mut c_void, pref: *mut c_void, requested: c_int, results: *mut c_void, count: *mut c_int,
    );
    fn cublasLtMatmul(
        handle: *mut c_void, desc: *mut c_void, alpha: *const c_void, a: *const c_void,
        a_layout: *mut c_void, b: *const c_void, b_layout: *mut c_void, beta: *const c_void,
        c: *const c_void, c_layout: *mut c_void, d: *mut c_void, d_layout: *mut c_void,
        algo: *const c_void, workspace: *mut c_void, workspace_bytes: usize, stream: *mut c_void,
    );
}
