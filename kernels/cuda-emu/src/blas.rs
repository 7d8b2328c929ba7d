//! The cuBLAS entry points GenFX calls, computed on the CPU.
//!
//! `cublasGemmEx` / `cublasGemmStridedBatchedEx` with f32, bf16 or f16
//! operands and output, column-major as cuBLAS defines them:
//! `C = alpha·op(A)·op(B) + beta·C`, `op(A)` m×k, `op(B)` k×n, C m×n with
//! leading dimensions lda, ldb, ldc. Products accumulate in f32 in order of
//! k, and the output is rounded once to its type. `beta == 0` never reads C
//! (so NaN poison there does not leak), as cuBLAS promises.
//!
//! Each call is validated as cuBLAS does (dimensions, leading dimensions
//! against the matrix heights) and, beyond what cuBLAS can, every operand's
//! whole extent is checked against the live allocations. The work is queued
//! on the handle's stream like a kernel.

use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;

use half::{bf16, f16};
use parking_lot::Mutex;
use rayon::prelude::*;

use crate::queue::{enqueue, stream_id, Op};
use crate::state::{config, emu, report, Counters};

type Status = c_int;
const SUCCESS: Status = 0;
const NOT_INITIALIZED: Status = 1;
const INVALID_VALUE: Status = 7;
const EXECUTION_FAILED: Status = 13;
const NOT_SUPPORTED: Status = 15;

/// cudaDataType values we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    Bf16,
}

impl Elem {
    pub(crate) fn from_cuda(t: c_int) -> Option<Elem> {
        match t {
            0 => Some(Elem::F32),   // CUDA_R_32F
            2 => Some(Elem::F16),   // CUDA_R_16F
            14 => Some(Elem::Bf16), // CUDA_R_16BF
            _ => None,
        }
    }
    fn size(self) -> u64 {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
        }
    }
}

/// One operand as cuBLAS reads it.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    pub ptr: u64,
    pub elem: Elem,
    pub ld: i64,
    pub stride: i64,
    pub transpose: bool,
}

/// A bias epilogue (cuBLASLt's `CUBLASLT_EPILOGUE_BIAS`): one value per
/// row of C, added to every column before C is rounded.
#[derive(Clone, Copy, Debug)]
pub struct Bias {
    pub ptr: u64,
    pub elem: Elem,
    /// Elements between the bias vectors of consecutive batches (0: one
    /// vector for all).
    pub batch_stride: i64,
}

#[derive(Clone, Debug)]
pub struct GemmOp {
    pub m: i64,
    pub n: i64,
    pub k: i64,
    pub batch: i64,
    pub alpha: f32,
    pub beta: f32,
    pub a: Operand,
    pub b: Operand,
    pub c: Operand,
    pub bias: Option<Bias>,
    /// Fault injection: write a NaN into C's first element afterwards.
    pub nan: bool,
}

/// Reads element `(row, col)` of a column-major matrix at `base`.
///
/// # Safety
/// The element must lie in a live, backed allocation (checked by
/// [`extent_ok`] before the GEMM runs).
unsafe fn load(elem: Elem, base: u64, at: i64) -> f32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        match elem {
            Elem::F32 => *(base as *const f32).offset(at as isize),
            Elem::F16 => (*(base as *const f16).offset(at as isize)).to_f32(),
            Elem::Bf16 => (*(base as *const bf16).offset(at as isize)).to_f32(),
        }
    }
}

/// # Safety
/// As [`load`], for a write.
unsafe fn store(elem: Elem, base: u64, at: i64, v: f32) {
    // SAFETY: forwarded to the caller.
    unsafe {
        match elem {
            Elem::F32 => *(base as *mut f32).offset(at as isize) = v,
            Elem::F16 => *(base as *mut f16).offset(at as isize) = f16::from_f32(v),
            Elem::Bf16 => *(base as *mut bf16).offset(at as isize) = bf16::from_f32(v),
        }
    }
}

/// Bytes one operand spans: `rows × cols` stored column-major with `ld`,
/// `batch` times `stride` apart.
fn extent(o: &Operand, rows: i64, cols: i64, batch: i64) -> u64 {
    if rows == 0 || cols == 0 || batch == 0 {
        return 0;
    }
    let last = (batch - 1) * o.stride + (cols - 1) * o.ld + (rows - 1);
    (last as u64 + 1) * o.elem.size()
}

/// Stored shape (rows, cols) of each operand.
fn shapes(g: &GemmOp) -> [(i64, i64); 3] {
    let a = if g.a.transpose {
        (g.k, g.m)
    } else {
        (g.m, g.k)
    };
    let b = if g.b.transpose {
        (g.n, g.k)
    } else {
        (g.k, g.n)
    };
    [a, b, (g.m, g.n)]
}

/// The checks cuBLAS makes, then ours against live memory.
fn validate(g: &GemmOp) -> Result<(), String> {
    if g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0 {
        return Err(format!(
            "negative size (m {}, n {}, k {}, batch {})",
            g.m, g.n, g.k, g.batch
        ));
    }
    let [sa, sb, sc] = shapes(g);
    for (name, o, (rows, _)) in [("A", &g.a, sa), ("B", &g.b, sb), ("C", &g.c, sc)] {
        if o.ld < rows.max(1) {
            return Err(format!(
                "ld{} = {} is below the {rows} rows of {name} (m {}, n {}, k {}, op {})",
                name.to_lowercase(),
                o.ld,
                g.m,
                g.n,
                g.k,
                if o.transpose { "T" } else { "N" }
            ));
        }
    }
    let mem = emu().memory.lock();
    for (name, o, (rows, cols)) in [("A", &g.a, sa), ("B", &g.b, sb), ("C", &g.c, sc)] {
        mem.check(
            &format!("GEMM operand {name}"),
            o.ptr,
            extent(o, rows, cols, g.batch),
        )?;
    }
    if let Some(bias) = &g.bias {
        if bias.batch_stride < 0 {
            return Err(format!("negative bias batch stride {}", bias.batch_stride));
        }
        let elems = if g.m == 0 || g.batch == 0 {
            0
        } else {
            (g.batch - 1) * bias.batch_stride + g.m
        };
        mem.check("GEMM bias", bias.ptr, elems as u64 * bias.elem.size())?;
    }
    Ok(())
}

/// Runs a validated GEMM.
pub fn run(g: &GemmOp) -> Result<(), String> {
    validate(g)?;
    let (m, n, k) = (g.m, g.n, g.k);
    let at = |o: &Operand, row: i64, col: i64| {
        if o.transpose {
            col + row * o.ld
        } else {
            row + col * o.ld
        }
    };
    // one task per output column of each batch: columns never overlap
    (0..g.batch * n).into_par_iter().for_each(|bj| {
        let (b, j) = (bj / n.max(1), bj % n.max(1));
        let (a0, b0, c0) = (b * g.a.stride, b * g.b.stride, b * g.c.stride);
        for i in 0..m {
            let mut acc = 0f32;
            for l in 0..k {
                // SAFETY: `validate` checked every operand's whole extent.
                unsafe {
                    acc += load(g.a.elem, g.a.ptr, a0 + at(&g.a, i, l))
                        * load(g.b.elem, g.b.ptr, b0 + at(&g.b, l, j));
                }
            }
            let ci = c0 + i + j * g.c.ld;
            // SAFETY: as above; each (i, j) is written by one task only.
            unsafe {
                let old = if g.beta == 0.0 {
                    0.0
                } else {
                    g.beta * load(g.c.elem, g.c.ptr, ci)
                };
                let bias = match &g.bias {
                    Some(bias) => load(bias.elem, bias.ptr, b * bias.batch_stride + i),
                    None => 0.0,
                };
                store(g.c.elem, g.c.ptr, ci, g.alpha * acc + old + bias);
            }
        }
    });
    if g.nan && m > 0 && n > 0 && g.batch > 0 {
        report("injected NaN into a GEMM output (nan_gemm_at)".into());
        // SAFETY: C's first element lies in its checked extent.
        unsafe { store(g.c.elem, g.c.ptr, 0, f32::NAN) };
    }
    Ok(())
}

// --- handles -----------------------------------------------------------------------------

#[derive(Default)]
struct Handles {
    next: u64,
    /// handle -> stream id
    streams: std::collections::HashMap<u64, u64>,
}

fn handles() -> &'static Mutex<Handles> {
    static H: std::sync::OnceLock<Mutex<Handles>> = std::sync::OnceLock::new();
    H.get_or_init(Default::default)
}

#[no_mangle]
pub unsafe extern "C" fn cublasCreate_v2(handle: *mut *mut c_void) -> Status {
    if handle.is_null() {
        return INVALID_VALUE;
    }
    let mut h = handles().lock();
    h.next += 1;
    let id = 0x2000 + h.next;
    h.streams.insert(id, crate::queue::DEFAULT_STREAM);
    // SAFETY: checked non-null; the caller's out-pointer.
    unsafe { *handle = id as usize as *mut c_void };
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cublasDestroy_v2(handle: *mut c_void) -> Status {
    match handles().lock().streams.remove(&(handle as u64)) {
        Some(_) => SUCCESS,
        None => NOT_INITIALIZED,
    }
}

#[no_mangle]
pub extern "C" fn cublasSetStream_v2(handle: *mut c_void, stream: *mut c_void) -> Status {
    match handles().lock().streams.get_mut(&(handle as u64)) {
        Some(s) => {
            *s = stream_id(stream);
            SUCCESS
        }
        None => NOT_INITIALIZED,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasGetStream_v2(
    handle: *mut c_void,
    stream: *mut *mut c_void,
) -> Status {
    match handles().lock().streams.get(&(handle as u64)) {
        Some(&s) if !stream.is_null() => {
            // SAFETY: checked non-null; the caller's out-pointer.
            unsafe { *stream = s as usize as *mut c_void };
            SUCCESS
        }
        Some(_) => INVALID_VALUE,
        None => NOT_INITIALIZED,
    }
}

/// Math modes only change what a GPU may round internally; the emulator
/// always accumulates in f32.
#[no_mangle]
pub extern "C" fn cublasSetMathMode(handle: *mut c_void, _mode: c_int) -> Status {
    if handles().lock().streams.contains_key(&(handle as u64)) {
        SUCCESS
    } else {
        NOT_INITIALIZED
    }
}

/// Only host pointers for alpha and beta are emulated.
#[no_mangle]
pub extern "C" fn cublasSetPointerMode_v2(handle: *mut c_void, mode: c_int) -> Status {
    if !handles().lock().streams.contains_key(&(handle as u64)) {
        return NOT_INITIALIZED;
    }
    if mode == 0 {
        SUCCESS
    } else {
        NOT_SUPPORTED
    }
}

#[no_mangle]
pub extern "C" fn cublasSetWorkspace_v2(
    handle: *mut c_void,
    _ws: *mut c_void,
    _bytes: usize,
) -> Status {
    cublasSetMathMode(handle, 0)
}

// --- GEMMs --------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    handle: *mut c_void,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: (*const c_void, c_int, c_int, i64),
    b: (*const c_void, c_int, c_int, i64),
    beta: *const c_void,
    c: (*mut c_void, c_int, c_int, i64),
    batch: c_int,
    compute: c_int,
) -> Status {
    let Some(&stream) = handles().lock().streams.get(&(handle as u64)) else {
        return NOT_INITIALIZED;
    };
    // CUBLAS_COMPUTE_32F and its fast variants (which may round inputs on a
    // GPU; here they compute in f32 as well)
    if !matches!(compute, 68 | 74 | 75 | 77) {
        report(format!("cuBLAS compute type {compute} is not emulated"));
        return NOT_SUPPORTED;
    }
    let op = |t: c_int| match t {
        0 => Some(false),
        1 | 2 => Some(true),
        _ => None,
    };
    let (Some(ta), Some(tb)) = (op(transa), op(transb)) else {
        return INVALID_VALUE;
    };
    let elems = (
        Elem::from_cuda(a.1),
        Elem::from_cuda(b.1),
        Elem::from_cuda(c.1),
    );
    let (Some(ea), Some(eb), Some(ec)) = elems else {
        report(format!(
            "cuBLAS data types ({}, {}, {}) are not emulated",
            a.1, b.1, c.1
        ));
        return NOT_SUPPORTED;
    };
    if alpha.is_null() || beta.is_null() {
        return INVALID_VALUE;
    }
    let g = GemmOp {
        m: m.into(),
        n: n.into(),
        k: k.into(),
        batch: batch.into(),
        // SAFETY: host pointers to f32 scalars, as CUBLAS_COMPUTE_32F with
        // the host pointer mode requires.
        alpha: unsafe { *alpha.cast::<f32>() },
        // SAFETY: as above.
        beta: unsafe { *beta.cast::<f32>() },
        a: Operand {
            ptr: a.0 as u64,
            elem: ea,
            ld: a.2.into(),
            stride: a.3,
            transpose: ta,
        },
        b: Operand {
            ptr: b.0 as u64,
            elem: eb,
            ld: b.2.into(),
            stride: b.3,
            transpose: tb,
        },
        c: Operand {
            ptr: c.0 as u64,
            elem: ec,
            ld: c.2.into(),
            stride: c.3,
            transpose: false,
        },
        bias: None,
        nan: false,
    };
    submit(stream, g, "cuBLAS GEMM")
}

/// Counts `g` as a GEMM (arming the NaN fault when its turn has come),
/// validates it and queues it on `stream`; `what` names the API in a
/// refusal.
pub fn submit(stream: u64, mut g: GemmOp, what: &str) -> Status {
    let e = emu();
    let nth = e.counters.gemms.fetch_add(1, Ordering::Relaxed) + 1;
    g.nan = config().nan_gemm_at == Some(nth);
    if let Err(why) = validate(&g) {
        report(format!("{what} refused: {why}"));
        return if why.contains("ld") && !why.contains("allocation") {
            INVALID_VALUE
        } else {
            EXECUTION_FAILED
        };
    }
    Counters::add(
        &e.counters.gemm_flops,
        2 * (g.m * g.n * g.k * g.batch) as u64,
    );
    match enqueue(stream, Op::Gemm(Box::new(g))) {
        cudarc::driver::sys::cudaError_enum::CUDA_SUCCESS => SUCCESS,
        _ => EXECUTION_FAILED,
    }
}

#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn cublasGemmEx(
    handle: *mut c_void,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    beta: *const c_void,
    c: *mut c_void,
    c_type: c_int,
    ldc: c_int,
    compute: c_int,
    _algo: c_int,
) -> Status {
    // SAFETY: cublasGemmEx's contract, forwarded.
    unsafe {
        gemm(
            handle,
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            (a, a_type, lda, 0),
            (b, b_type, ldb, 0),
            beta,
            (c, c_type, ldc, 0),
            1,
            compute,
        )
    }
}

#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn cublasGemmStridedBatchedEx(
    handle: *mut c_void,
    transa: c_int,
    transb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: *const c_void,
    a: *const c_void,
    a_type: c_int,
    lda: c_int,
    stride_a: i64,
    b: *const c_void,
    b_type: c_int,
    ldb: c_int,
    stride_b: i64,
    beta: *const c_void,
    c: *mut c_void,
    c_type: c_int,
    ldc: c_int,
    stride_c: i64,
    batch: c_int,
    compute: c_int,
    _algo: c_int,
) -> Status {
    // SAFETY: cublasGemmStridedBatchedEx's contract, forwarded.
    unsafe {
        gemm(
            handle,
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            (a, a_type, lda, stride_a),
            (b, b_type, ldb, stride_b),
            beta,
            (c, c_type, ldc, stride_c),
            batch,
            compute,
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasGetVersion_v2(handle: *mut c_void, version: *mut c_int) -> Status {
    if !handles().lock().streams.contains_key(&(handle as u64)) {
        return NOT_INITIALIZED;
    }
    if version.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: checked non-null; the caller's out-pointer.
    unsafe { *version = 130000 };
    SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(ptr: u64, ld: i64, transpose: bool) -> Operand {
        Operand {
            ptr,
            elem: Elem::F32,
            ld,
            stride: 0,
            transpose,
        }
    }

    #[test]
    fn extents_follow_layout_and_batch() {
        let o = Operand {
            stride: 100,
            ..op(0, 10, false)
        };
        // 3 rows × 4 cols, ld 10, 2 batches 100 apart: last element 100+30+2
        assert_eq!(extent(&o, 3, 4, 2), 133 * 4);
        assert_eq!(extent(&o, 0, 4, 2), 0);
    }
}
