//! Matrix products through cuBLAS: 16-bit or f32 operands, f32 accumulation.
//!
//! Our tensors are row-major and cuBLAS is column-major. A row-major `r×c`
//! matrix with row stride `ld` is the column-major `c×r` matrix with leading
//! dimension `ld`, so `C = A·B` (row-major) is computed as `Cᵀ = Bᵀ·Aᵀ`,
//! which cuBLAS sees as a plain product of the same buffers.

use std::ffi::c_void;

use cudarc::cublas::{result as blas, sys as bsys, CudaBlas};

use super::error::CudaError;
use super::probe::guard;
use crate::tensor::DType;

/// One row-major operand `rows×cols` of a batched product, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatView {
    /// Device address of element (0, 0) of batch 0.
    pub ptr: u64,
    pub row_stride: usize,
    pub col_stride: usize,
    /// 0 shares one matrix across the batch.
    pub batch_stride: usize,
}

/// How cuBLAS reads one operand: transposed or not, and its leading dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlasOperand {
    pub transpose: bool,
    pub ld: usize,
}

/// How cuBLAS must read a row-major `rows×cols` view, as the column-major
/// `cols×rows` matrix it is; `None` when neither stride is 1 (or the
/// leading dimension is too small for cuBLAS), so a copy is needed.
pub fn as_blas_operand(v: &MatView, rows: usize, cols: usize) -> Option<BlasOperand> {
    if v.col_stride == 1 && v.row_stride >= cols.max(1) {
        Some(BlasOperand {
            transpose: false,
            ld: v.row_stride,
        })
    } else if v.row_stride == 1 && v.col_stride >= rows.max(1) {
        Some(BlasOperand {
            transpose: true,
            ld: v.col_stride,
        })
    } else if rows == 1 && v.col_stride == 1 {
        // one row: any row stride works, cuBLAS only needs ld >= cols
        Some(BlasOperand {
            transpose: false,
            ld: cols.max(1),
        })
    } else {
        None
    }
}

fn data_type(dtype: DType) -> bsys::cudaDataType {
    match dtype {
        DType::F32 => bsys::cudaDataType::CUDA_R_32F,
        DType::BF16 => bsys::cudaDataType::CUDA_R_16BF,
        DType::F16 => bsys::cudaDataType::CUDA_R_16F,
    }
}

/// A batched product `out[b] (m×n) = beta·out[b] + lhs[b] (m×k) · rhs[b] (k×n)`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lhs: MatView,
    pub rhs: MatView,
    /// Operand element type (lhs and rhs).
    pub in_dtype: DType,
    /// `out` is row-major with this row stride and batch stride.
    pub out: MatView,
    pub out_dtype: DType,
    /// 0 overwrites `out`; 1 adds to it (a bias prefilled there).
    pub beta: f32,
}

fn dim(op: &'static str, v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Invalid {
        op,
        detail: format!("{v} exceeds cuBLAS's 32-bit sizes"),
    })
}

/// Runs `g` on `blas`'s stream. Operands whose strides cuBLAS cannot read
/// are an [`CudaError::Invalid`]: the caller copies them first.
pub fn gemm(blas: &CudaBlas, g: &Gemm) -> Result<(), CudaError> {
    let lhs = as_blas_operand(&g.lhs, g.m, g.k).ok_or_else(|| CudaError::Invalid {
        op: "matmul",
        detail: "lhs has no unit stride".into(),
    })?;
    let rhs = as_blas_operand(&g.rhs, g.k, g.n).ok_or_else(|| CudaError::Invalid {
        op: "matmul",
        detail: "rhs has no unit stride".into(),
    })?;
    if g.out.col_stride != 1 || g.out.row_stride < g.n.max(1) {
        return Err(CudaError::Invalid {
            op: "matmul",
            detail: "output rows must be contiguous".into(),
        });
    }
    let op = |t: bool| {
        if t {
            bsys::cublasOperation_t::CUBLAS_OP_T
        } else {
            bsys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let (m, n, k) = (
        dim("matmul", g.m)?,
        dim("matmul", g.n)?,
        dim("matmul", g.k)?,
    );
    let batch = dim("matmul", g.batch)?;
    let alpha = 1.0f32;
    let beta = g.beta;
    guard("cublasGemmStridedBatchedEx", || {
        // SAFETY: the handle is live; every pointer is a device address
        // whose extent the caller computed from the same strides; alpha and
        // beta are f32 host values as CUBLAS_COMPUTE_32F requires.
        unsafe {
            blas::gemm_strided_batched_ex(
                *blas.handle(),
                op(rhs.transpose),
                op(lhs.transpose),
                n,
                m,
                k,
                (&alpha as *const f32).cast::<c_void>(),
                g.rhs.ptr as *const c_void,
                data_type(g.in_dtype),
                dim("matmul", rhs.ld)?,
                g.rhs.batch_stride as i64,
                g.lhs.ptr as *const c_void,
                data_type(g.in_dtype),
                dim("matmul", lhs.ld)?,
                g.lhs.batch_stride as i64,
                (&beta as *const f32).cast::<c_void>(),
                g.out.ptr as *mut c_void,
                data_type(g.out_dtype),
                dim("matmul", g.out.row_stride)?,
                g.out.batch_stride as i64,
                batch,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| CudaError::Blas {
            op: "gemm",
            detail: format!("{e:?}"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(row: usize, col: usize) -> MatView {
        MatView {
            ptr: 0,
            row_stride: row,
            col_stride: col,
            batch_stride: 0,
        }
    }

    #[test]
    fn row_major_and_transposed_views_map_to_cublas() {
        // plain row-major 3×4
        assert_eq!(
            as_blas_operand(&view(4, 1), 3, 4),
            Some(BlasOperand {
                transpose: false,
                ld: 4
            })
        );
        // a PyTorch Linear weight [out=4, in=3] read as its transpose 3×4
        assert_eq!(
            as_blas_operand(&view(1, 3), 3, 4),
            Some(BlasOperand {
                transpose: true,
                ld: 3
            })
        );
        // one head of a [L, H, D] tensor: rows D apart... row stride H*D
        assert_eq!(
            as_blas_operand(&view(32 * 64, 1), 100, 64),
            Some(BlasOperand {
                transpose: false,
                ld: 2048
            })
        );
        // neither stride is 1
        assert_eq!(as_blas_operand(&view(8, 2), 3, 4), None);
        // row stride too small for the columns (overlapping rows)
        assert_eq!(as_blas_operand(&view(2, 1), 3, 4), None);
    }
}
