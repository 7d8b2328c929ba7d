//! Matrix products with the bias added in the GEMM's epilogue, through
//! cuBLASLt (`CUBLASLT_EPILOGUE_BIAS`): one pass that writes
//! `out = lhs · rhs + bias` instead of copying the bias into `out` first
//! and accumulating onto it with beta = 1 (one launch and a full write and
//! read of `out` fewer per biased Linear).
//!
//! cuBLASLt over our own epilogue because cuBLAS's GEMMs are what the
//! transformer runs on anyway; cuBLASLt is the same library's kernels with
//! the epilogue fused, so nothing about the product itself changes.
//!
//! The operands are mapped to column-major exactly as in [`super::blas`]
//! (`outᵀ = rhsᵀ · lhsᵀ`), so the bias is one value per row of cuBLASLt's
//! D, which is what its bias epilogue adds. The algorithm the heuristic
//! picks is kept per problem shape (and operand alignment), so the
//! heuristic runs once per distinct Linear, not once per call.

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys as ltsys;
use parking_lot::Mutex;

use super::blas::{as_blas_operand, Gemm};
use super::error::CudaError;
use super::probe::guard;
use crate::tensor::DType;

/// Workspace cuBLASLt may use, as NVIDIA recommends: 32 MiB on Hopper and
/// newer, 4 MiB before.
pub fn workspace_bytes(compute_capability: (i32, i32)) -> usize {
    if compute_capability.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    }
}

/// Everything the heuristic's choice depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    lhs: (bool, usize, usize),
    rhs: (bool, usize, usize),
    out: (usize, usize),
    dtype: DType,
    /// Alignments (bytes, up to 256) of lhs, rhs and out.
    align: [u32; 3],
}

/// A cuBLASLt handle and the algorithms chosen so far.
pub struct LtBlas {
    handle: ltsys::cublasLtHandle_t,
    algos: Mutex<HashMap<Problem, ltsys::cublasLtMatmulAlgo_t>>,
}

// SAFETY: the handle is an opaque pointer that cuBLASLt lets any thread use
// (its calls are thread-safe per handle); the backend also serialises use
// behind its own mutex.
unsafe impl Send for LtBlas {}
// SAFETY: as above; the algorithm cache has its own lock.
unsafe impl Sync for LtBlas {}

impl Drop for LtBlas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `new` and is destroyed once.
        let _ = guard("cublasLtDestroy", || {
            unsafe { lt::destroy_handle(self.handle) }.map_err(|e| lt_err("destroy", e))
        });
    }
}

fn lt_err(op: &'static str, e: lt::CublasError) -> CudaError {
    CudaError::Blas {
        op,
        detail: format!("cuBLASLt: {e:?}"),
    }
}

/// The largest power of two (up to 256) dividing `addr`: the alignment the
/// heuristic may assume.
fn alignment(addr: u64) -> u32 {
    if addr == 0 {
        256
    } else {
        (1u64 << addr.trailing_zeros().min(8)) as u32
    }
}

/// Destroys what one matmul call created, however it ends.
#[derive(Default)]
struct Descriptors {
    desc: Option<ltsys::cublasLtMatmulDesc_t>,
    layouts: Vec<ltsys::cublasLtMatrixLayout_t>,
    pref: Option<ltsys::cublasLtMatmulPreference_t>,
}

impl Drop for Descriptors {
    fn drop(&mut self) {
        // SAFETY: each was created once by this call and is destroyed once;
        // errors while tearing down cannot be acted on.
        unsafe {
            if let Some(d) = self.desc.take() {
                let _ = lt::destroy_matmul_desc(d);
            }
            for l in self.layouts.drain(..) {
                let _ = lt::destroy_matrix_layout(l);
            }
            if let Some(p) = self.pref.take() {
                let _ = lt::destroy_matmul_pref(p);
            }
        }
    }
}

/// Sets one attribute from a plain value.
///
/// # Safety
/// `set` must be a cuBLASLt attribute setter whose attribute takes a `T`.
unsafe fn attr<O: Copy, A, T>(
    set: unsafe fn(O, A, *const c_void, usize) -> Result<(), lt::CublasError>,
    object: O,
    which: A,
    value: T,
) -> Result<(), CudaError> {
    // SAFETY: forwarded; `value` lives for the call and has T's size.
    unsafe {
        set(
            object,
            which,
            (&value as *const T).cast(),
            std::mem::size_of::<T>(),
        )
    }
    .map_err(|e| lt_err("set attribute", e))
}

impl LtBlas {
    /// A cuBLASLt handle; errors when the library cannot be used.
    pub fn new() -> Result<LtBlas, CudaError> {
        let handle = guard("cublasLtCreate", || {
            lt::create_handle().map_err(|e| lt_err("create", e))
        })?;
        Ok(LtBlas {
            handle,
            algos: Mutex::new(HashMap::new()),
        })
    }

    /// `g.out = g.lhs · g.rhs + bias` (bias: `g.n` values of `g.out_dtype`
    /// at device address `bias`, shared by every row and batch) on
    /// `stream`, with `workspace_bytes` at `workspace`. `Ok(false)` when
    /// cuBLASLt has no algorithm for the problem or refuses the call as
    /// unsupported or invalid (nothing was queued: the caller adds the bias
    /// another way).
    pub fn gemm_bias(
        &self,
        stream: *mut c_void,
        g: &Gemm,
        bias: u64,
        workspace: u64,
        workspace_bytes: usize,
    ) -> Result<bool, CudaError> {
        guard("cublasLtMatmul", || {
            self.gemm_bias_unguarded(stream, g, bias, workspace, workspace_bytes)
        })
    }

    fn gemm_bias_unguarded(
        &self,
        stream: *mut c_void,
        g: &Gemm,
        bias: u64,
        workspace: u64,
        workspace_bytes: usize,
    ) -> Result<bool, CudaError> {
        use ltsys::cublasLtMatmulDescAttributes_t as D;
        use ltsys::cublasLtMatmulPreferenceAttributes_t as P;
        use ltsys::cublasLtMatrixLayoutAttribute_t as L;
        let invalid = |detail: &str| CudaError::Invalid {
            op: "matmul",
            detail: detail.into(),
        };
        let lhs =
            as_blas_operand(&g.lhs, g.m, g.k).ok_or_else(|| invalid("lhs has no unit stride"))?;
        let rhs =
            as_blas_operand(&g.rhs, g.k, g.n).ok_or_else(|| invalid("rhs has no unit stride"))?;
        if g.out.col_stride != 1 || g.out.row_stride < g.n.max(1) {
            return Err(invalid("output rows must be contiguous"));
        }
        if g.in_dtype != g.out_dtype {
            return Err(invalid("the bias epilogue path needs one dtype"));
        }
        let dtype = lt_data_type(g.out_dtype);
        // cublasOperation_t, an int32 attribute: CUBLAS_OP_N 0, CUBLAS_OP_T 1
        let op = |t: bool| i32::from(t);
        let mut d = Descriptors::default();
        let desc = lt::create_matmul_desc(
            ltsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ltsys::cudaDataType::CUDA_R_32F,
        )
        .map_err(|e| lt_err("matmul descriptor", e))?;
        d.desc = Some(desc);
        // SAFETY (each attribute): the descriptor is live; every value has
        // the type cuBLASLt documents for its attribute.
        unsafe {
            attr(
                lt::set_matmul_desc_attribute,
                desc,
                D::CUBLASLT_MATMUL_DESC_TRANSA,
                op(rhs.transpose),
            )?;
            attr(
                lt::set_matmul_desc_attribute,
                desc,
                D::CUBLASLT_MATMUL_DESC_TRANSB,
                op(lhs.transpose),
            )?;
            attr(
                lt::set_matmul_desc_attribute,
                desc,
                D::CUBLASLT_MATMUL_DESC_EPILOGUE,
                ltsys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
            )?;
            attr(
                lt::set_matmul_desc_attribute,
                desc,
                D::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                bias,
            )?;
            attr(
                lt::set_matmul_desc_attribute,
                desc,
                D::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                dtype,
            )?;
        }
        // cuBLAS's A is our rhs (op(A) n×k), B our lhs (op(B) k×m), D our
        // output (n×m); each layout is the matrix as stored.
        let stored =
            |t: bool, rows: usize, cols: usize| if t { (cols, rows) } else { (rows, cols) };
        let (ar, ac) = stored(rhs.transpose, g.n, g.k);
        let (br, bc) = stored(lhs.transpose, g.k, g.m);
        let shapes = [
            (ar, ac, rhs.ld, g.rhs.batch_stride),
            (br, bc, lhs.ld, g.lhs.batch_stride),
            (g.n, g.m, g.out.row_stride, g.out.batch_stride),
            (g.n, g.m, g.out.row_stride, g.out.batch_stride),
        ];
        for (rows, cols, ld, stride) in shapes {
            let layout = lt::create_matrix_layout(dtype, rows as u64, cols as u64, ld as i64)
                .map_err(|e| lt_err("matrix layout", e))?;
            d.layouts.push(layout);
            if g.batch > 1 {
                let count = i32::try_from(g.batch).map_err(|_| invalid("batch exceeds i32"))?;
                // SAFETY: the layout is live; i32 count and i64 offset as documented.
                unsafe {
                    attr(
                        lt::set_matrix_layout_attribute,
                        layout,
                        L::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                        count,
                    )?;
                    attr(
                        lt::set_matrix_layout_attribute,
                        layout,
                        L::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        stride as i64,
                    )?;
                }
            }
        }
        let (la, lb, lc) = (d.layouts[0], d.layouts[1], d.layouts[2]);
        let ld_ = d.layouts[3];
        let problem = Problem {
            m: g.m,
            n: g.n,
            k: g.k,
            batch: g.batch,
            lhs: (lhs.transpose, lhs.ld, g.lhs.batch_stride),
            rhs: (rhs.transpose, rhs.ld, g.rhs.batch_stride),
            out: (g.out.row_stride, g.out.batch_stride),
            dtype: g.out_dtype,
            align: [
                alignment(g.lhs.ptr),
                alignment(g.rhs.ptr),
                alignment(g.out.ptr),
            ],
        };
        let cached = self.algos.lock().get(&problem).copied();
        let algo = match cached {
            Some(a) => a,
            None => {
                let pref = lt::create_matmul_pref().map_err(|e| lt_err("preference", e))?;
                d.pref = Some(pref);
                // SAFETY: the preference is live; u64 workspace size and u32
                // alignments as documented.
                unsafe {
                    attr(
                        lt::set_matmul_pref_attribute,
                        pref,
                        P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                        workspace_bytes as u64,
                    )?;
                    let [al, ar_, ao] = problem.align;
                    for (which, a) in [
                        (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, ar_),
                        (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al),
                        (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, ao),
                        (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, ao),
                    ] {
                        attr(lt::set_matmul_pref_attribute, pref, which, a)?;
                    }
                }
                // SAFETY: handle, descriptor, layouts and preference are live.
                let found = unsafe {
                    lt::get_matmul_algo_heuristic(self.handle, desc, la, lb, lc, ld_, pref)
                };
                match found {
                    Ok(h) if h.workspaceSize <= workspace_bytes => {
                        self.algos.lock().insert(problem, h.algo);
                        h.algo
                    }
                    Ok(_) => return Ok(false),
                    Err(e) if e.0 == ltsys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED => {
                        return Ok(false)
                    }
                    Err(e) => return Err(lt_err("heuristic", e)),
                }
            }
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: every descriptor is live; the pointers are device
        // addresses whose extents the caller computed from the same strides
        // (the bias holds n values); alpha and beta are host f32 scalars as
        // the f32 scale type requires; C is D (beta 0: C is not read).
        let done = unsafe {
            lt::matmul(
                self.handle,
                desc,
                (&alpha as *const f32).cast(),
                (&beta as *const f32).cast(),
                g.rhs.ptr as *const c_void,
                la,
                g.lhs.ptr as *const c_void,
                lb,
                g.out.ptr as *const c_void,
                lc,
                g.out.ptr as *mut c_void,
                ld_,
                &algo,
                workspace as *mut c_void,
                workspace_bytes,
                stream.cast(),
            )
        }
        .map_err(|e| lt_err("matmul", e));
        match done {
            Ok(()) => Ok(true),
            // refused before anything was queued (a pointer the algorithm
            // cannot take): the caller adds the bias another way
            Err(CudaError::Blas { detail, .. })
                if detail.contains("NOT_SUPPORTED") || detail.contains("INVALID_VALUE") =>
            {
                log::debug!("cuBLASLt refused a biased GEMM ({detail}); copying the bias first");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

fn lt_data_type(dtype: DType) -> ltsys::cudaDataType {
    match dtype {
        DType::F32 => ltsys::cudaDataType::CUDA_R_32F,
        DType::BF16 => ltsys::cudaDataType::CUDA_R_16BF,
        DType::F16 => ltsys::cudaDataType::CUDA_R_16F,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_the_largest_power_of_two_up_to_256() {
        assert_eq!(alignment(0x1000), 256);
        assert_eq!(alignment(0x1002), 2);
        assert_eq!(alignment(0x1010), 16);
        assert_eq!(alignment(0), 256);
    }

    #[test]
    fn workspace_follows_nvidia_advice() {
        assert_eq!(workspace_bytes((9, 0)), 32 << 20);
        assert_eq!(workspace_bytes((8, 9)), 4 << 20);
    }
}
