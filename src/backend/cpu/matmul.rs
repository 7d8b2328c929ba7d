//! Matrix products through the `gemm` crate (cache-blocked, SIMD kernels
//! chosen at run time for the CPU it runs on). A 16-bit `rhs` (a weight kept
//! in the dtype it is stored in) is widened one panel of columns at a time,
//! just before the product that reads it, so it never exists whole in f32.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::{buffers, HostSlice};
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
    let mut out = output(batch * m * n, n, bias);
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    let threads = rayon::current_num_threads();
    let r = spec.rhs;
    // Column-major panels when each column of the rhs is contiguous.
    let col_major = r.row == 1;
    if col_major && use_column_blocks(m, n, k, threads) {
        for b in 0..batch {
            let l = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
            let dst = &mut out[b * m * n..(b + 1) * m * n];
            let columns = Columns::Widened {
                rhs,
                base: r.offset + b * r.batch,
                col_stride: r.col,
            };
            column_blocks(m, n, k, l, &spec.lhs, columns, dst, bias.is_some(), threads);
        }
        return Ok(out);
    }
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

/// An output shared by the tasks that write disjoint parts of it (the
/// bands of [`few_rows`], the column blocks of [`column_blocks`]).
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);

// SAFETY: each task writes only its own part of the buffer (a band of rows,
// a block of columns: disjoint), and the caller of `few_rows` or
// `column_blocks` keeps the buffer alive and unaliased for the call.
unsafe impl Send for RowsPtr {}
// SAFETY: as for Send; the pointer itself is only copied, never mutated.
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    fn row(self, i: usize, ld: usize) -> *mut f32 {
        self.at(i * ld)
    }

    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Whether a product with a 16-bit column-major rhs (a `Linear` weight read
/// as its transpose) runs as [`column_blocks`]: when it is big enough to
/// share out and [`few_rows`] does not suit it better. (An f32 rhs takes
/// `column_blocks` wherever it would otherwise be gemm's threads.)
fn use_column_blocks(m: usize, n: usize, k: usize, threads: usize) -> bool {
    threads > 1
        && m * n * k >= PAR_MIN_FLOPS
        && (m >= COLUMN_BLOCKS_MIN_ROWS || !use_few_rows(m, n, k, 1))
}

/// From this many rows a 16-bit rhs goes to [`column_blocks`] even where
/// [`few_rows`] would suit an f32 one: widened per block, it needs no
/// separate widening pass and join before the product.
const COLUMN_BLOCKS_MIN_ROWS: usize = 64;

/// Where [`column_blocks`] reads the rhs's columns, each a contiguous run
/// of `k` elements `col_stride` apart.
#[derive(Clone, Copy)]
enum Columns<'a> {
    /// f32, read in place.
    InPlace { rhs: &'a [f32], col_stride: usize },
    /// 16-bit, widened per block from element `base` on.
    Widened {
        rhs: HostSlice<'a>,
        base: usize,
        col_stride: usize,
    },
}

/// `dst (m × n, row-major) (+)= lhs · rhs` for a column-major rhs, as
/// blocks of output columns in parallel, each one single-threaded gemm.
///
/// Why not gemm's own threads: it writes a row-major output by computing
/// its transpose, which makes the weight its left operand, and packs
/// (transposes) that whole operand on the calling thread before its
/// parallel part starts, with the other cores idle. Per block, that
/// packing is the block's own and runs on the block's thread. Measured on
/// two cores against `Parallelism::Rayon`: 1.3–1.9× faster at 128 rows
/// (T5's prompt), the same at 2 048 rows. A 16-bit rhs is widened per block
/// too, so the widened copy never exists whole.
#[allow(clippy::too_many_arguments)]
fn column_blocks(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    lhs_strides: &MatStrides,
    columns: Columns<'_>,
    dst: &mut [f32],
    accumulate: bool,
    threads: usize,
) {
    // About four blocks per thread, in whole 64-column tiles: the widest
    // tile gemm's AVX-512 kernel computes (T5's 384 columns in 48-column
    // blocks ran its 48-wide kernel; the time was the same).
    let block = (n / (4 * threads)).next_multiple_of(64).clamp(64, 256);
    assert!(
        dst.len() >= m * n,
        "column_blocks: output shorter than m × n"
    );
    let out = RowsPtr(dst.as_mut_ptr());
    (0..n.div_ceil(block)).into_par_iter().for_each(|bi| {
        let j0 = bi * block;
        let cols = block.min(n - j0);
        let widened;
        let (rhs, rhs_cs) = match columns {
            Columns::InPlace { rhs, col_stride } => (&rhs[j0 * col_stride..], col_stride),
            Columns::Widened {
                rhs,
                base,
                col_stride,
            } => {
                let mut buf = vec![0.0f32; cols * k];
                for (j, dst) in buf.chunks_mut(k).enumerate() {
                    rhs.widen_into(base + (j0 + j) * col_stride, dst);
                }
                widened = buf;
                (&widened[..], k)
            }
        };
        // SAFETY: the caller checked (`extent`) that lhs holds m × k
        // elements at its strides and the rhs k × n at unit row stride and
        // `col_stride` between columns, so columns j0..j0 + cols start at
        // `rhs` here; dst is m × n row-major (asserted above) and this
        // block writes only its columns j0..j0 + cols of each row, which
        // no other block touches; gemm only reads lhs and rhs.
        unsafe {
            gemm(
                m,
                cols,
                k,
                out.at(j0),
                1,
                n as isize,
                accumulate,
                lhs.as_ptr(),
                lhs_strides.col as isize,
                lhs_strides.row as isize,
                rhs.as_ptr(),
                rhs_cs as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
}

/// The product's output before the product: the bias in every row, or
/// zeros.
fn output(len: usize, n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    match bias {
        Some(b) => buffers::repeated_rows(len, &b[..n]),
        None => buffers::zeroed(len),
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
    let mut out = output(batch * m * n, n, bias);
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    let per_batch = m * n * k;
    let threads = rayon::current_num_threads();
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
        if spec.rhs.row == 1 && !matches!(par, Parallelism::None) && m * n * k >= PAR_MIN_FLOPS {
            let columns = Columns::InPlace {
                rhs: r,
                col_stride: spec.rhs.col,
            };
            column_blocks(m, n, k, l, &spec.lhs, columns, dst, bias.is_some(), threads);
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
    // Whole products in parallel when they are small, or many enough to
    // keep every thread busy (attention heads: T5's are 128×128×64 each),
    // rather than each one shared out with a join per product.
    let many = batch >= 2 * threads && per_batch < PAR_MIN_FLOPS * 64;
    if batch > 1 && (per_batch < PAR_MIN_FLOPS * 4 || many) {
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
