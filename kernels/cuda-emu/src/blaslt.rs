//! The cuBLASLt entry points GenFX calls, computed on the CPU by the same
//! GEMM as [`crate::blas`] (f32 accumulation in order of k, one rounding to
//! the output type), with the bias epilogue.
//!
//! What is emulated, as the cuBLASLt documentation defines it: a handle;
//! matmul descriptors with f32 compute (`CUBLAS_COMPUTE_32F` and its fast
//! variants) and f32 scale type, host alpha and beta, `TRANSA`/`TRANSB`,
//! `EPILOGUE` `DEFAULT` or `BIAS` with `BIAS_POINTER`, `BIAS_DATA_TYPE` and
//! `BIAS_BATCH_STRIDE`; column-major matrix layouts (f32, f16, bf16) with
//! `BATCH_COUNT` and `STRIDED_BATCH_OFFSET`; preferences (workspace size,
//! minimum alignments); a heuristic that offers one algorithm needing no
//! workspace; and `cublasLtMatmul`: `D = alpha·op(A)·op(B) + beta·C + bias`,
//! the bias (one value per row of D) added before D is rounded. C must be D
//! itself when beta is not 0 (the only in-place form GenFX uses). Anything
//! else is refused with `CUBLAS_STATUS_NOT_SUPPORTED` and a message naming
//! it, so a use the emulator does not model cannot pass silently.
//!
//! Each matmul is validated (shapes agreeing between the layouts, leading
//! dimensions, every operand's whole extent against the live allocations)
//! and queued on the stream it names, counted as one GEMM.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};

use parking_lot::Mutex;

use crate::blas::{submit, Bias, Elem, GemmOp, Operand};
use crate::queue::stream_id;
use crate::state::{config, report};

type Status = c_int;
const SUCCESS: Status = 0;
const NOT_INITIALIZED: Status = 1;
const INVALID_VALUE: Status = 7;
const NOT_SUPPORTED: Status = 15;

const EPILOGUE_DEFAULT: u32 = 1;
const EPILOGUE_BIAS: u32 = 4;

/// A matmul descriptor's settings.
#[derive(Clone, Debug)]
struct Desc {
    transa: bool,
    transb: bool,
    epilogue: u32,
    bias: u64,
    /// `None`: the type of D (cuBLASLt's default of -1).
    bias_type: Option<Elem>,
    bias_batch_stride: i64,
}

/// A matrix layout: `rows × cols` column-major with `ld`, `batch` of them
/// `stride` elements apart.
#[derive(Clone, Copy, Debug)]
struct Layout {
    elem: Elem,
    rows: i64,
    cols: i64,
    ld: i64,
    batch: i64,
    stride: i64,
}

#[derive(Default)]
struct Objects {
    next: u64,
    handles: std::collections::HashSet<u64>,
    descs: HashMap<u64, Desc>,
    layouts: HashMap<u64, Layout>,
    prefs: std::collections::HashSet<u64>,
}

impl Objects {
    fn id(&mut self) -> u64 {
        self.next += 1;
        0x4000_0000 + self.next
    }
}

fn objects() -> &'static Mutex<Objects> {
    static O: std::sync::OnceLock<Mutex<Objects>> = std::sync::OnceLock::new();
    O.get_or_init(Default::default)
}

/// Writes a new object id to the caller's out-pointer.
///
/// # Safety
/// `out` is null or the caller's out-pointer.
unsafe fn hand_out(out: *mut *mut c_void, id: u64) -> Status {
    if out.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: checked non-null; the caller's out-pointer.
    unsafe { *out = id as usize as *mut c_void };
    SUCCESS
}

/// Reads an attribute value of exactly `T`'s size.
///
/// # Safety
/// `buf` points to `size` readable bytes.
unsafe fn value<T: Copy>(buf: *const c_void, size: usize) -> Option<T> {
    if buf.is_null() || size != std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: `size` bytes are readable and equal T's size; unaligned read.
    Some(unsafe { buf.cast::<T>().read_unaligned() })
}

fn refuse(what: String) -> Status {
    report(format!("cuBLASLt: {what} is not emulated"));
    NOT_SUPPORTED
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtCreate(handle: *mut *mut c_void) -> Status {
    if !config().cublaslt {
        report("cuBLASLt switched off (cublaslt=0): cublasLtCreate fails".into());
        return NOT_INITIALIZED;
    }
    let mut o = objects().lock();
    let id = o.id();
    o.handles.insert(id);
    // SAFETY: the caller's out-pointer.
    unsafe { hand_out(handle, id) }
}

#[no_mangle]
pub extern "C" fn cublasLtDestroy(handle: *mut c_void) -> Status {
    if objects().lock().handles.remove(&(handle as u64)) {
        SUCCESS
    } else {
        NOT_INITIALIZED
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulDescCreate(
    desc: *mut *mut c_void,
    compute: c_int,
    scale: c_int,
) -> Status {
    // CUBLAS_COMPUTE_32F and its fast variants (f32 here as in blas.rs)
    if !matches!(compute, 68 | 74 | 75 | 77) {
        return refuse(format!("compute type {compute}"));
    }
    if Elem::from_cuda(scale) != Some(Elem::F32) {
        return refuse(format!("scale type {scale}"));
    }
    let mut o = objects().lock();
    let id = o.id();
    o.descs.insert(
        id,
        Desc {
            transa: false,
            transb: false,
            epilogue: EPILOGUE_DEFAULT,
            bias: 0,
            bias_type: None,
            bias_batch_stride: 0,
        },
    );
    // SAFETY: the caller's out-pointer.
    unsafe { hand_out(desc, id) }
}

#[no_mangle]
pub extern "C" fn cublasLtMatmulDescDestroy(desc: *mut c_void) -> Status {
    match objects().lock().descs.remove(&(desc as u64)) {
        Some(_) => SUCCESS,
        None => INVALID_VALUE,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulDescSetAttribute(
    desc: *mut c_void,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    let mut o = objects().lock();
    let Some(d) = o.descs.get_mut(&(desc as u64)) else {
        return INVALID_VALUE;
    };
    let op = |t: i32| match t {
        0 => Some(false),
        1 | 2 => Some(true),
        _ => None,
    };
    // SAFETY (each `value` below): cublasLtMatmulDescSetAttribute's contract,
    // `buf` holds `size` bytes.
    let ok = match attr {
        // POINTER_MODE: host only
        2 => (unsafe { value::<i32>(buf, size) }) == Some(0),
        3 => unsafe { value::<i32>(buf, size) }
            .and_then(op)
            .map(|t| d.transa = t)
            .is_some(),
        4 => unsafe { value::<i32>(buf, size) }
            .and_then(op)
            .map(|t| d.transb = t)
            .is_some(),
        7 => match unsafe { value::<u32>(buf, size) } {
            Some(e @ (EPILOGUE_DEFAULT | EPILOGUE_BIAS)) => {
                d.epilogue = e;
                true
            }
            Some(e) => return refuse(format!("epilogue {e}")),
            None => false,
        },
        8 => unsafe { value::<u64>(buf, size) }
            .map(|p| d.bias = p)
            .is_some(),
        10 => unsafe { value::<i64>(buf, size) }
            .map(|s| d.bias_batch_stride = s)
            .is_some(),
        26 => match unsafe { value::<i32>(buf, size) } {
            Some(-1) => {
                d.bias_type = None;
                true
            }
            Some(t) => match Elem::from_cuda(t) {
                Some(e) => {
                    d.bias_type = Some(e);
                    true
                }
                None => return refuse(format!("bias data type {t}")),
            },
            None => false,
        },
        other => return refuse(format!("matmul descriptor attribute {other}")),
    };
    if ok {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatrixLayoutCreate(
    layout: *mut *mut c_void,
    elem: c_int,
    rows: u64,
    cols: u64,
    ld: i64,
) -> Status {
    let Some(elem) = Elem::from_cuda(elem) else {
        return refuse(format!("matrix data type {elem}"));
    };
    let (Ok(rows), Ok(cols)) = (i64::try_from(rows), i64::try_from(cols)) else {
        return INVALID_VALUE;
    };
    let mut o = objects().lock();
    let id = o.id();
    o.layouts.insert(
        id,
        Layout {
            elem,
            rows,
            cols,
            ld,
            batch: 1,
            stride: 0,
        },
    );
    // SAFETY: the caller's out-pointer.
    unsafe { hand_out(layout, id) }
}

#[no_mangle]
pub extern "C" fn cublasLtMatrixLayoutDestroy(layout: *mut c_void) -> Status {
    match objects().lock().layouts.remove(&(layout as u64)) {
        Some(_) => SUCCESS,
        None => INVALID_VALUE,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatrixLayoutSetAttribute(
    layout: *mut c_void,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    let mut o = objects().lock();
    let Some(l) = o.layouts.get_mut(&(layout as u64)) else {
        return INVALID_VALUE;
    };
    // SAFETY (each `value`): the attribute's contract, `size` bytes at `buf`.
    let ok = match attr {
        // ORDER: column-major only
        1 => match unsafe { value::<i32>(buf, size) } {
            Some(0) => true,
            Some(order) => return refuse(format!("matrix order {order}")),
            None => false,
        },
        5 => unsafe { value::<i32>(buf, size) }
            .filter(|&b| b >= 1)
            .map(|b| l.batch = i64::from(b))
            .is_some(),
        6 => unsafe { value::<i64>(buf, size) }
            .map(|s| l.stride = s)
            .is_some(),
        other => return refuse(format!("matrix layout attribute {other}")),
    };
    if ok {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulPreferenceCreate(pref: *mut *mut c_void) -> Status {
    let mut o = objects().lock();
    let id = o.id();
    o.prefs.insert(id);
    // SAFETY: the caller's out-pointer.
    unsafe { hand_out(pref, id) }
}

#[no_mangle]
pub extern "C" fn cublasLtMatmulPreferenceDestroy(pref: *mut c_void) -> Status {
    if objects().lock().prefs.remove(&(pref as u64)) {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

/// Workspace size and minimum alignments only steer which algorithm a GPU
/// picks; the emulated one needs neither.
#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulPreferenceSetAttribute(
    pref: *mut c_void,
    attr: c_int,
    buf: *const c_void,
    size: usize,
) -> Status {
    if !objects().lock().prefs.contains(&(pref as u64)) {
        return INVALID_VALUE;
    }
    // SAFETY (each `value`): the attribute's contract, `size` bytes at `buf`.
    let ok = match attr {
        1 => unsafe { value::<u64>(buf, size) }.is_some(),
        5..=8 => unsafe { value::<u32>(buf, size) }.is_some(),
        other => return refuse(format!("matmul preference attribute {other}")),
    };
    if ok {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

/// The one algorithm the heuristic offers, tagged so a matmul can tell it
/// was handed one.
const ALGO_TAG: u64 = 0x6765_6e66_782d_6c74; // "genfx-lt"

/// Mirrors `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
struct HeuristicResult {
    algo: [u64; 8],
    workspace_size: usize,
    state: c_int,
    waves_count: f32,
    reserved: [c_int; 4],
}

/// The GEMM a descriptor and four layouts describe (pointers left 0).
fn plan(desc: u64, a: u64, b: u64, c: u64, d: u64) -> Result<(GemmOp, Desc, Layout), Status> {
    let o = objects().lock();
    let desc = o.descs.get(&desc).cloned().ok_or(INVALID_VALUE)?;
    let layout = |id: u64| o.layouts.get(&id).copied().ok_or(INVALID_VALUE);
    let (la, lb, lc, ld) = (layout(a)?, layout(b)?, layout(c)?, layout(d)?);
    let (m, n) = (ld.rows, ld.cols);
    let (am, ak) = if desc.transa {
        (la.cols, la.rows)
    } else {
        (la.rows, la.cols)
    };
    let (bk, bn) = if desc.transb {
        (lb.cols, lb.rows)
    } else {
        (lb.rows, lb.cols)
    };
    if am != m || bn != n || ak != bk || lc.rows != m || lc.cols != n {
        report(format!(
            "cuBLASLt: layouts disagree: op(A) {am}x{ak}, op(B) {bk}x{bn}, C {}x{}, D {m}x{n}",
            lc.rows, lc.cols
        ));
        return Err(INVALID_VALUE);
    }
    let batch = ld.batch;
    if [la.batch, lb.batch, lc.batch].iter().any(|&x| x != batch) {
        report("cuBLASLt: batch counts differ between the layouts".into());
        return Err(INVALID_VALUE);
    }
    if lc.elem != ld.elem || lc.ld != ld.ld || lc.stride != ld.stride {
        return Err(refuse("a C layout other than D's".into()));
    }
    if desc.epilogue == EPILOGUE_BIAS && desc.bias == 0 {
        report("cuBLASLt: the bias epilogue without a bias pointer".into());
        return Err(INVALID_VALUE);
    }
    let operand = |l: &Layout, transpose: bool| Operand {
        ptr: 0,
        elem: l.elem,
        ld: l.ld,
        stride: l.stride,
        transpose,
    };
    let g = GemmOp {
        m,
        n,
        k: ak,
        batch,
        alpha: 1.0,
        beta: 0.0,
        a: operand(&la, desc.transa),
        b: operand(&lb, desc.transb),
        c: operand(&ld, false),
        bias: (desc.epilogue == EPILOGUE_BIAS).then(|| Bias {
            ptr: desc.bias,
            elem: desc.bias_type.unwrap_or(ld.elem),
            batch_stride: desc.bias_batch_stride,
        }),
        nan: false,
    };
    Ok((g, desc, lc))
}

#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmulAlgoGetHeuristic(
    handle: *mut c_void,
    desc: *mut c_void,
    a: *mut c_void,
    b: *mut c_void,
    c: *mut c_void,
    d: *mut c_void,
    pref: *mut c_void,
    requested: c_int,
    results: *mut c_void,
    count: *mut c_int,
) -> Status {
    {
        let o = objects().lock();
        if !o.handles.contains(&(handle as u64)) {
            return NOT_INITIALIZED;
        }
        if !o.prefs.contains(&(pref as u64)) {
            return INVALID_VALUE;
        }
    }
    if requested < 1 || results.is_null() || count.is_null() {
        return INVALID_VALUE;
    }
    if let Err(status) = plan(desc as u64, a as u64, b as u64, c as u64, d as u64) {
        return status;
    }
    let mut algo = [0u64; 8];
    algo[0] = ALGO_TAG;
    let result = HeuristicResult {
        algo,
        workspace_size: 0,
        state: SUCCESS,
        waves_count: 1.0,
        reserved: [0; 4],
    };
    // SAFETY: the caller's array of at least `requested` (>= 1) results and
    // its count out-pointer, both checked non-null.
    unsafe {
        results.cast::<HeuristicResult>().write_unaligned(result);
        *count = 1;
    }
    SUCCESS
}

#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub unsafe extern "C" fn cublasLtMatmul(
    handle: *mut c_void,
    desc: *mut c_void,
    alpha: *const c_void,
    a: *const c_void,
    a_layout: *mut c_void,
    b: *const c_void,
    b_layout: *mut c_void,
    beta: *const c_void,
    c: *const c_void,
    c_layout: *mut c_void,
    d: *mut c_void,
    d_layout: *mut c_void,
    algo: *const c_void,
    _workspace: *mut c_void,
    _workspace_bytes: usize,
    stream: *mut c_void,
) -> Status {
    if !objects().lock().handles.contains(&(handle as u64)) {
        return NOT_INITIALIZED;
    }
    if alpha.is_null() || beta.is_null() {
        return INVALID_VALUE;
    }
    if !algo.is_null() {
        // SAFETY: a cublasLtMatmulAlgo_t (8 u64) the caller passes.
        let tag = unsafe { algo.cast::<u64>().read_unaligned() };
        if tag != ALGO_TAG {
            report("cuBLASLt: an algorithm the emulated heuristic did not hand out".into());
            return INVALID_VALUE;
        }
    }
    let (mut g, _, _) = match plan(
        desc as u64,
        a_layout as u64,
        b_layout as u64,
        c_layout as u64,
        d_layout as u64,
    ) {
        Ok(p) => p,
        Err(status) => return status,
    };
    // SAFETY: host pointers to f32 scalars (host pointer mode, f32 scale type).
    let (alpha, beta) = unsafe { (*alpha.cast::<f32>(), *beta.cast::<f32>()) };
    if beta != 0.0 && c as u64 != d as u64 {
        return refuse("beta != 0 with C other than D".into());
    }
    g.alpha = alpha;
    g.beta = beta;
    g.a.ptr = a as u64;
    g.b.ptr = b as u64;
    g.c.ptr = d as u64;
    submit(stream_id(stream), g, "cuBLASLt matmul")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_take_the_attributes_genfx_sets_and_refuse_others() {
        let mut desc = std::ptr::null_mut();
        // SAFETY: out-pointers to locals; attribute buffers of their sizes.
        unsafe {
            assert_eq!(cublasLtMatmulDescCreate(&mut desc, 68, 0), SUCCESS);
            let t = 1i32;
            let e = EPILOGUE_BIAS;
            let p = 0x1000u64;
            assert_eq!(
                cublasLtMatmulDescSetAttribute(desc, 3, (&t as *const i32).cast(), 4),
                SUCCESS
            );
            assert_eq!(
                cublasLtMatmulDescSetAttribute(desc, 7, (&e as *const u32).cast(), 4),
                SUCCESS
            );
            assert_eq!(
                cublasLtMatmulDescSetAttribute(desc, 8, (&p as *const u64).cast(), 8),
                SUCCESS
            );
            // wrong size
            assert_eq!(
                cublasLtMatmulDescSetAttribute(desc, 8, (&p as *const u64).cast(), 4),
                INVALID_VALUE
            );
            // GELU epilogue: not emulated
            let gelu = 32u32;
            assert_eq!(
                cublasLtMatmulDescSetAttribute(desc, 7, (&gelu as *const u32).cast(), 4),
                NOT_SUPPORTED
            );
        }
        let d = objects().lock().descs[&(desc as u64)].clone();
        assert!(d.transa && !d.transb);
        assert_eq!((d.epilogue, d.bias), (EPILOGUE_BIAS, 0x1000));
        assert_eq!(cublasLtMatmulDescDestroy(desc), SUCCESS);
        assert_eq!(cublasLtMatmulDescDestroy(desc), INVALID_VALUE);
    }
}
