//! Matrix products through the `gemm` crate (cache-blocked, SIMD kernels
//! chosen at run time for the CPU it runs on). A 16-bit `rhs` (a weight kept
//! in the dtype it is stored in) is widened one panel of columns at a time,
//! just before the product that reads it, so it never exists whole in f32.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::HostSlice;
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

/// Columns of a 16-bit rhs widened per product: a panel of 4096×512 is
/// 8 MB of f32, which stays in the last-level cache while gemm packs it.
const PANEL_COLS: usize = 512;

pub fn matmul(
    lhs: &[f32],
    rhs: HostSlice<'_>,
    bias: Option<&[f32]>,
    spec: &MatmulSpec,
) -> Result<Vec<f32>> {
    match rhs {
        HostSlice::F32(rhs) => matmul_f32(lhs, rhs, bias, spec),
        half => matmul_half_rhs(lhs, half, bias, spec),
    }
}

/// `matmul` with a 16-bit `rhs`: for each panel of at most [`PANEL_COLS`]
/// output columns, the panel's `k × cols` block is widened into a
/// contiguous buffer (column-major when the rhs is a transposed `Linear`
/// weight, so each column is one contiguous run of the stored tensor) and
/// multiplied into that panel of every batch's output.
fn matmul_half_rhs(
    lhs: &[f32],
    rhs: HostSlice<'_>,
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
    let threads = rayon::current_num_threads();
    let r = spec.rhs;
    // Column-major panels when each column of the rhs is contiguous.
    let col_major = r.row == 1;
    let mut panel = vec![0.0f32; k * PANEL_COLS.min(n)];
    for b in 0..batch {
        let base = r.offset + b * r.batch;
        let l = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
        for j0 in (0..n).step_by(PANEL_COLS) {
            let cols = PANEL_COLS.min(n - j0);
            let buf = &mut panel[..k * cols];
            if col_major {
                buf.par_chunks_mut(k).enumerate().for_each(|(j, dst)| {
                    rhs.widen_into(base + (j0 + j) * r.col, dst);
                });
            } else {
                buf.par_chunks_mut(cols).enumerate().for_each(|(kk, dst)| {
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = widen_one(rhs, base + kk * r.row + (j0 + j) * r.col);
                    }
                });
            }
            let (rs, cs) = if col_major {
                (1, k as isize)
            } else {
                (cols as isize, 1)
            };
            let par = if m * cols * k >= PAR_MIN_FLOPS && threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            let dst = &mut out[b * m * n + j0..];
            if col_major && use_few_rows(m, n, k, 1) {
                // SAFETY: as below; `buf` is column-major k × cols (column
                // stride k) and dst holds m rows of n ≥ j0 + cols elements.
                unsafe {
                    few_rows(
                        m,
                        cols,
                        k,
                        l.as_ptr(),
                        spec.lhs.row as isize,
                        spec.lhs.col as isize,
                        buf.as_ptr(),
                        k as isize,
                        dst.as_mut_ptr(),
                        n,
                        bias.is_some(),
                        par,
                    );
                }
                continue;
            }
            // SAFETY: `extent` checked every (row, col) of lhs; `buf` is
            // exactly k × cols with the strides given; the destination is
            // the m × cols block at column j0 of batch b's m × n output
            // (row stride n), inside `out` and exclusively borrowed.
            unsafe {
                gemm(
                    m,
                    cols,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    bias.is_some(),
                    l.as_ptr(),
                    spec.lhs.col as isize,
                    spec.lhs.row as isize,
                    buf.as_ptr(),
                    cs,
                    rs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
    }
    Ok(out)
}

/// Whether a product with a column-major `k × n` rhs (a `Linear` weight read
/// as its transpose) should run as [`few_rows`]: gemm writes row-major
/// outputs by computing their transpose, which makes the weight its
/// left operand and repacks (transposes) all `n × k` of it on every call.
/// With few rows that repack costs more than the product's own packing and
/// a transpose of the `m × n` result, which is what [`few_rows`] does
/// instead (`m·(k + n)` elements moved rather than `n·k`).
fn use_few_rows(m: usize, n: usize, k: usize, rhs_row_stride: usize) -> bool {
    rhs_row_stride == 1 && 2 * m * (k + n) < n * k
}

/// `dst (m × cols, row stride ld) (+)= lhs · rhs` for a column-major rhs
/// (`rhs_cs` between columns), computed as a column-major `m × cols`
/// product, which gemm runs with the rhs read in place, then transposed
/// into `dst`. With `bias`, `dst` already holds it and is accumulated into.
///
/// # Safety
/// `lhs` must be readable for `m × k` elements at the strides given, `rhs`
/// for `k × cols` (unit row stride, `rhs_cs` column stride), and `dst` for
/// `m` rows of `cols` elements, `ld` apart, written by no one else.
#[allow(clippy::too_many_arguments)]
unsafe fn few_rows(
    m: usize,
    cols: usize,
    k: usize,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    dst: *mut f32,
    ld: usize,
    accumulate: bool,
    par: Parallelism,
) {
    let mut t = vec![0.0f32; m * cols];
    // SAFETY: t is m × cols column-major (column stride m) and owned; the
    // caller vouches for lhs and rhs; gemm only reads them.
    unsafe {
        gemm(
            m,
            cols,
            k,
            t.as_mut_ptr(),
            m as isize,
            1,
            false,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    // Transpose in 16-row bands of 16 × 16 tiles (both sides stay in L1),
    // bands in parallel when the product was: done serially it would be a
    // single-threaded pass after every parallel product.
    const TILE: usize = 16;
    let out = RowsPtr(dst);
    let band = |i0: usize| {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(m) {
                // SAFETY: row i of dst has `cols` elements from i*ld, per
                // the caller, and only the band holding row i touches it.
                let row = unsafe { std::slice::from_raw_parts_mut(out.row(i, ld), cols) };
                for j in j0..(j0 + TILE).min(cols) {
                    let v = t[j * m + i];
                    row[j] = if accumulate { row[j] + v } else { v };
                }
            }
        }
    };
    match par {
        Parallelism::None => (0..m).step_by(TILE).for_each(band),
        _ => (0..m).into_par_iter().step_by(TILE).for_each(band),
    }
}

/// The output rows of [`few_rows`], shared by the bands that write them.
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);

// SAFETY: each band writes only its own rows of the buffer (disjoint), and
// `few_rows`' caller keeps the buffer alive and unaliased for the call.
unsafe impl Send for RowsPtr {}
// SAFETY: as for Send; the pointer itself is only copied, never mutated.
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    fn row(self, i: usize, ld: usize) -> *mut f32 {
        self.0.wrapping_add(i * ld)
    }
}

fn widen_one(rhs: HostSlice<'_>, i: usize) -> f32 {
    match rhs {
        HostSlice::F32(v) => v[i],
        HostSlice::BF16(v) => v[i].to_f32(),
        HostSlice::F16(v) => v[i].to_f32(),
    }
}

fn matmul_f32(
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
        if use_few_rows(m, n, k, spec.rhs.row) {
            // SAFETY: as below; the rhs has unit row stride and column
            // stride spec.rhs.col, and dst is m rows of n elements.
            unsafe {
                few_rows(
                    m,
                    n,
                    k,
                    l.as_ptr(),
                    spec.lhs.row as isize,
                    spec.lhs.col as isize,
                    r.as_ptr(),
                    spec.rhs.col as isize,
                    dst.as_mut_ptr(),
                    n,
                    bias.is_some(),
                    par,
                );
            }
            return;
        }
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
