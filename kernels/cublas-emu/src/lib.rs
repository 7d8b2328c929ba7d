//! The cuBLAS library of GenFX's emulated CUDA device.
//!
//! cudarc loads cuBLAS and the driver as two libraries; the emulated GEMMs
//! must share the driver's memory table and streams, so the work lives in
//! `genfx-cuda-emu` and every function here forwards to the one of the same
//! name there. The driver is found by its soname, `libcuda.so`, which
//! resolves to the emulated driver once that is loaded (cudarc loads it
//! first, and so do our tests).

// Every exported function follows cuBLAS's documented contract.
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
        // a real driver has no cuBLAS in it: refuse it rather than fail later
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
                // this signature (kernels/cuda-emu/src/blas.rs).
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
    fn cublasCreate_v2(handle: *mut *mut c_void);
    fn cublasDestroy_v2(handle: *mut c_void);
    fn cublasSetStream_v2(handle: *mut c_void, stream: *mut c_void);
    fn cublasGetStream_v2(handle: *mut c_void, stream: *mut *mut c_void);
    fn cublasSetMathMode(handle: *mut c_void, mode: c_int);
    fn cublasSetPointerMode_v2(handle: *mut c_void, mode: c_int);
    fn cublasSetWorkspace_v2(handle: *mut c_void, workspace: *mut c_void, bytes: usize);
    fn cublasGetVersion_v2(handle: *mut c_void, version: *mut c_int);
    fn cublasGemmEx(
        handle: *mut c_void, transa: c_int, transb: c_int, m: c_int, n: c_int, k: c_int,
        alpha: *const c_void, a: *const c_void, a_type: c_int, lda: c_int,
        b: *const c_void, b_type: c_int, ldb: c_int, beta: *const c_void,
        c: *mut c_void, c_type: c_int, ldc: c_int, compute: c_int, algo: c_int,
    );
    fn cublasGemmStridedBatchedEx(
        handle: *mut c_void, transa: c_int, transb: c_int, m: c_int, n: c_int, k: c_int,
        alpha: *const c_void, a: *const c_void, a_type: c_int, lda: c_int, stride_a: i64,
        b: *const c_void, b_type: c_int, ldb: c_int, stride_b: i64, beta: *const c_void,
        c: *mut c_void, c_type: c_int, ldc: c_int, stride_c: i64, batch: c_int,
        compute: c_int, algo: c_int,
    );
}
