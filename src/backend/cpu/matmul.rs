//! Matrix products through the `gemm` crate (cache-blocked, SIMD kernels
//! chosen at run time for the CPU it runs on).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::backend::{MatStrides, MatmulSpec};
use crate::tensor::{Result, TensorError};

/// Products smaller than this many multiply-adds run on one thread.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// Largest index a matrix operand touches, to check it against its buffer.
fn extent(s: &MatStrides, batch: usize, rows: usize, cols: usize) -> usize {
    if batch == 0 || rows == 0 || cols == 0 {
        return 0;
    }
    s.offset + (batch - 1) * s.batch + (rows - 1) * s.row + (cols - 1) * s.col + 1
}

pub fn matmul(
    lhs: &[f32],
    rhs: &[f32],
    bias: Option<&[f32]>,
    spec: &MatmulSpec,
) -> Result<Vec<f32>> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    if extent(&spec.lhs, batch, m, k) > lhs.len() || extent(&spec.rhs, batch, k, n) > rhs.len() {
        return Err(TensorError::invalid(
            "matmul",
            "operand strides exceed storage",
        ));
    }
    if bias.is_some_and(|b| b.len() < n) {
        return Err(TensorError::invalid("matmul", "bias shorter than n"));
    }
    let mut out = vec![0.0f32; batch * m * n];
    if let Some(b) = bias {
        for row in out.chunks_mut(n.max(1)) {
            row.copy_from_slice(&b[..row.len()]);
        }
    }
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    let per_batch = m * n * k;
    let one = |b: usize, dst: &mut [f32], par: Parallelism| {
        let l = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
        let r = &rhs[spec.rhs.offset + b * spec.rhs.batch..];
        // SAFETY: `extent` checked above that every (row, col) these strides
        // reach lies inside `lhs` and `rhs`; `dst` is exactly m×n row-major
        // and exclusively borrowed; gemm only reads lhs/rhs.
        unsafe {
            gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                bias.is_some(),
                l.as_ptr(),
                spec.lhs.col as isize,
                spec.lhs.row as isize,
                r.as_ptr(),
                spec.rhs.col as isize,
                spec.rhs.row as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    };
    let threads = rayon::current_num_threads();
    if batch > 1 && per_batch < PAR_MIN_FLOPS * 4 {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, dst)| one(b, dst, Parallelism::None));
    } else {
        let par = if per_batch >= PAR_MIN_FLOPS && threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        for (b, dst) in out.chunks_mut(m * n).enumerate() {
            one(b, dst, par);
        }
    }
    Ok(out)
}
