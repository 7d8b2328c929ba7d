//! Matrix products through the `gemm` crate (cache-blocked, SIMD kernels
//! chosen at run time for the CPU it runs on). A 16-bit `rhs` (a weight kept
//! in the dtype it is stored in) is widened one block of columns at a time,
//! just before the product that reads it, so it never exists whole in f32.

use std::mem::MaybeUninit;

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

/// Most columns of a 16-bit rhs widened at once: 4096×512 is 8 MB of f32,
/// which stays in the last-level cache while gemm packs it.
const PANEL_COLS: usize = 512;

pub fn matmul(
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
    let bias = bias.map(|b| &b[..n]);
    if batch * m * n == 0 || k == 0 {
        return Ok(output(batch * m * n, n, bias));
    }
    // A rhs whose columns are contiguous is a `Linear` weight read as its
    // transpose (or k transposed for attention scores): column blocks.
    if spec.rhs.row == 1 {
        return Ok(blocked_products(lhs, rhs, bias, spec));
    }
    Ok(match rhs {
        HostSlice::F32(rhs) => row_major_f32(lhs, rhs, bias, spec),
        half => row_major_half(lhs, half, bias, spec),
    })
}

/// How a batch of products shares the pool out.
enum Sharing {
    /// Whole products in parallel, each on one thread.
    WholeProducts,
    /// One product after another, each on this many threads.
    EachProduct(usize),
}

/// Whole products in parallel when they are small, or many enough to keep
/// every thread busy (attention heads: T5's are 128×128×64 each), rather
/// than each one shared out with a join per product.
fn sharing(batch: usize, per_batch_flops: usize) -> Sharing {
    let threads = rayon::current_num_threads();
    let many = batch >= 2 * threads && per_batch_flops < PAR_MIN_FLOPS * 64;
    if batch > 1 && (per_batch_flops < PAR_MIN_FLOPS * 4 || many) {
        Sharing::WholeProducts
    } else if per_batch_flops >= PAR_MIN_FLOPS {
        Sharing::EachProduct(threads)
    } else {
        Sharing::EachProduct(1)
    }
}

/// Every batch's product with a column-major rhs as [`column_blocks`],
/// shared out as [`sharing`] says.
fn blocked_products(
    lhs: &[f32],
    rhs: HostSlice<'_>,
    bias: Option<&[f32]>,
    spec: &MatmulSpec,
) -> Vec<f32> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let product = |b: usize, dst: &mut [MaybeUninit<f32>], threads: usize| {
        let columns = Columns {
            rhs,
            base: spec.rhs.offset + b * spec.rhs.batch,
            col_stride: spec.rhs.col,
        };
        let lhs = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
        column_blocks(m, n, k, lhs, &spec.lhs, columns, bias, dst, threads);
    };
    let mut out = Vec::with_capacity(batch * m * n);
    let dst = &mut out.spare_capacity_mut()[..batch * m * n];
    match sharing(batch, m * n * k) {
        Sharing::WholeProducts => dst
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, dst)| product(b, dst, 1)),
        Sharing::EachProduct(threads) => {
            for (b, dst) in dst.chunks_mut(m * n).enumerate() {
                product(b, dst, threads);
            }
        }
    }
    // SAFETY: the capacity is batch·m·n, and `column_blocks` initialised
    // every element of each batch's m × n chunk, which together cover it.
    unsafe { out.set_len(batch * m * n) };
    out
}

/// Whether [`column_blocks`] computes each block as its transpose, into a
/// scratch tile that is then transposed into the output, rather than
/// straight into the row-major output.
///
/// Why it matters: gemm packs its left operand on every call. Asked for a
/// row-major output it computes the transpose, so the block of the weight
/// is the operand it packs (and its row-major kernel slows down past a
/// depth of about 256); asked for a column-major one, the activations are.
/// Measured single-threaded on this project's CI-class machine (AVX-512),
/// row-major against transposed, transpose included:
/// - 128 rows × 512 deep → 1 024 wide: 940 µs against 694; 512 deep →
///   384 wide: 323 against 273; 1 024 deep → 512 wide: 976 against 712;
/// - 8 rows × 512 → 1 024: 424 against 159 (the few-rows case);
/// - 128 rows × 64 deep (T5's attention scores, 128 wide): 10.8 against
///   20.6 µs; 256 deep: about equal; 384 deep: equal;
/// - 256 rows × 512 → 512: equal; from there row-major blocks gain, as the
///   weight's packing is shared by more rows.
fn transposed_blocks(m: usize, n: usize, k: usize) -> bool {
    const MAX_ROWS: usize = 255;
    const MIN_DEPTH: usize = 384;
    m <= MAX_ROWS && (k >= MIN_DEPTH || 2 * m * (k + n) < n * k)
}

/// A column-major rhs for [`column_blocks`]: each column a contiguous run of
/// `k` elements, `col_stride` apart from element `base` on; f32 is read in
/// place, 16-bit widened per block.
#[derive(Clone, Copy)]
struct Columns<'a> {
    rhs: HostSlice<'a>,
    base: usize,
    col_stride: usize,
}

/// `dst (m × n, row-major) = lhs · rhs (+ bias in every row)` for a
/// column-major rhs, as blocks of output columns, each one single-threaded
/// gemm; blocks in parallel when `threads > 1`. Every element of `dst` is
/// written.
///
/// Why not gemm's own threads: it packs its whole left operand on the
/// calling thread before its parallel part starts, with the other cores
/// idle. Per block, the packing is the block's own and runs on the block's
/// thread; a 16-bit rhs is widened per block there too, so the widened copy
/// never exists whole and needs no separate pass. Measured on two cores
/// against `Parallelism::Rayon`: 1.3–1.9× faster at 128 rows (T5's
/// prompt), the same at 2 048 rows.
#[allow(clippy::too_many_arguments)]
fn column_blocks(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    lhs_strides: &MatStrides,
    columns: Columns<'_>,
    bias: Option<&[f32]>,
    dst: &mut [MaybeUninit<f32>],
    threads: usize,
) {
    let transposed = transposed_blocks(m, n, k);
    let block = if transposed {
        // As few blocks as threads: each repacks the activations.
        n.div_ceil(threads).next_multiple_of(16).min(PANEL_COLS)
    } else {
        // About four blocks per thread, in whole 64-column tiles: the
        // widest tile gemm's AVX-512 kernel computes.
        (n / (4 * threads)).next_multiple_of(64).clamp(64, 256)
    };
    assert!(
        dst.len() >= m * n,
        "column_blocks: output shorter than m × n"
    );
    let out = RowsPtr(dst.as_mut_ptr().cast::<f32>());
    let lhs_cr = (lhs_strides.col, lhs_strides.row);
    let one_block = |bi: usize| {
        let j0 = bi * block;
        let cols = block.min(n - j0);
        let start = columns.base + j0 * columns.col_stride;
        let widened;
        let (rhs, rhs_cs) = match columns.rhs {
            HostSlice::F32(rhs) => (&rhs[start..], columns.col_stride),
            half => {
                let mut buf = vec![0.0f32; cols * k];
                for (j, dst) in buf.chunks_mut(k).enumerate() {
                    half.widen_into(start + j * columns.col_stride, dst);
                }
                widened = buf;
                (&widened[..], k)
            }
        };
        let bias = bias.map(|b| &b[j0..j0 + cols]);
        if transposed {
            let mut tile = Vec::with_capacity(m * cols);
            // SAFETY: the caller checked (`extent`) that lhs holds m × k
            // elements at its strides and the rhs k × n at unit row stride
            // and `col_stride` between columns, so columns j0..j0 + cols
            // start at `rhs`; the tile has room for m × cols, column-major,
            // and gemm (not reading the destination) writes all of it.
            unsafe {
                product_into(
                    (m, cols, k),
                    tile.as_mut_ptr(),
                    (m, 1),
                    false,
                    lhs,
                    lhs_cr,
                    rhs,
                    (rhs_cs, 1),
                    Parallelism::None,
                );
                tile.set_len(m * cols);
            }
            transpose_into(&tile, m, cols, bias, out, j0, n);
        } else {
            if let Some(bias) = bias {
                for i in 0..m {
                    // SAFETY: row i of dst (m × n, asserted above) has
                    // columns j0..j0 + cols, written only by this block.
                    let row = unsafe { out.at(i * n + j0) };
                    // SAFETY: as above; `bias` holds `cols` elements and
                    // the two do not overlap (one is the output).
                    unsafe { std::ptr::copy_nonoverlapping(bias.as_ptr(), row, cols) };
                }
            }
            // SAFETY: as for the tile, with the destination the block's
            // columns j0..j0 + cols of each row of dst, row stride n, which
            // no other block touches: initialised just above when gemm
            // reads it (bias), otherwise written by gemm without a read.
            unsafe {
                product_into(
                    (m, cols, k),
                    out.at(j0),
                    (1, n),
                    bias.is_some(),
                    lhs,
                    lhs_cr,
                    rhs,
                    (rhs_cs, 1),
                    Parallelism::None,
                );
            }
        }
    };
    let blocks = n.div_ceil(block);
    if threads > 1 && blocks > 1 {
        (0..blocks).into_par_iter().for_each(one_block);
    } else {
        (0..blocks).for_each(one_block);
    }
}

/// `dst (+)= lhs · rhs` through gemm, each operand given with its (column,
/// row) strides.
///
/// # Safety
/// `lhs` must hold `m × k` elements at its strides, `rhs` `k × n` at its
/// strides, and `dst` must be valid for writes of `m × n` at its strides
/// (and initialised if `accumulate`), written by no one else during the
/// call.
#[allow(clippy::too_many_arguments)]
unsafe fn product_into(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_cs, dst_rs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: &[f32],
    (rhs_cs, rhs_rs): (usize, usize),
    par: Parallelism,
) {
    // SAFETY: the caller's contract, as stated above.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Writes the column-major `m × cols` `tile` (plus `bias` per column) into
/// columns `j0..j0 + cols` of the row-major output `out` (row stride `ld`),
/// in 16 × 16 tiles so both sides stay in L1.
fn transpose_into(
    tile: &[f32],
    m: usize,
    cols: usize,
    bias: Option<&[f32]>,
    out: RowsPtr,
    j0: usize,
    ld: usize,
) {
    const TILE: usize = 16;
    for i0 in (0..m).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for i in i0..(i0 + TILE).min(m) {
                // SAFETY: the caller of `column_blocks` gave an output of
                // m rows of ld ≥ j0 + cols elements, and only the block
                // holding columns j0..j0 + cols writes them.
                let row = unsafe { out.at(i * ld + j0) };
                for j in c0..c1 {
                    let v = tile[j * m + i] + bias.map_or(0.0, |b| b[j]);
                    // SAFETY: as above, j < cols.
                    unsafe { row.add(j).write(v) };
                }
            }
        }
    }
}

/// An output shared by the column blocks of [`column_blocks`], which write
/// disjoint columns of it.
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);

// SAFETY: each block writes only its own columns (disjoint), and the caller
// of `column_blocks` keeps the buffer alive and unaliased for the call.
unsafe impl Send for RowsPtr {}
// SAFETY: as for Send; the pointer itself is only copied, never mutated.
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps offset inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// The product's output before the product: the bias in every row, or
/// zeros.
fn output(len: usize, n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    match bias {
        Some(b) => buffers::repeated_rows(len, &b[..n]),
        None => buffers::zeroed(len),
    }
}

/// `matmul` with a row-major f32 rhs (attention's `P · V`).
fn row_major_f32(lhs: &[f32], rhs: &[f32], bias: Option<&[f32]>, spec: &MatmulSpec) -> Vec<f32> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let mut out = output(batch * m * n, n, bias);
    let one = |b: usize, dst: &mut [f32], par: Parallelism| {
        let l = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
        let r = &rhs[spec.rhs.offset + b * spec.rhs.batch..];
        // SAFETY: `extent` checked that every (row, col) these strides
        // reach lies inside `lhs` and `rhs`; `dst` is exactly m×n row-major
        // and exclusively borrowed; gemm only reads lhs/rhs.
        unsafe {
            product_into(
                (m, n, k),
                dst.as_mut_ptr(),
                (1, n),
                bias.is_some(),
                l,
                (spec.lhs.col, spec.lhs.row),
                r,
                (spec.rhs.col, spec.rhs.row),
                par,
            )
        }
    };
    match sharing(batch, m * n * k) {
        Sharing::WholeProducts => out
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, dst)| one(b, dst, Parallelism::None)),
        Sharing::EachProduct(threads) => {
            let par = if threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            for (b, dst) in out.chunks_mut(m * n).enumerate() {
                one(b, dst, par);
            }
        }
    }
    out
}

/// `matmul` with a row-major 16-bit rhs: for each panel of at most
/// [`PANEL_COLS`] output columns, the panel's `k × cols` block is widened
/// into a contiguous buffer and multiplied into that panel of every batch's
/// output.
fn row_major_half(
    lhs: &[f32],
    rhs: HostSlice<'_>,
    bias: Option<&[f32]>,
    spec: &MatmulSpec,
) -> Vec<f32> {
    let MatmulSpec { batch, m, n, k, .. } = *spec;
    let mut out = output(batch * m * n, n, bias);
    let threads = rayon::current_num_threads();
    let r = spec.rhs;
    let mut panel = vec![0.0f32; k * PANEL_COLS.min(n)];
    for b in 0..batch {
        let base = r.offset + b * r.batch;
        let l = &lhs[spec.lhs.offset + b * spec.lhs.batch..];
        for j0 in (0..n).step_by(PANEL_COLS) {
            let cols = PANEL_COLS.min(n - j0);
            let buf = &mut panel[..k * cols];
            buf.par_chunks_mut(cols).enumerate().for_each(|(kk, dst)| {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = widen_one(rhs, base + kk * r.row + (j0 + j) * r.col);
                }
            });
            let par = if m * cols * k >= PAR_MIN_FLOPS && threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            let dst = &mut out[b * m * n + j0..];
            // SAFETY: `extent` checked every (row, col) of lhs; `buf` is
            // exactly k × cols, row-major; the destination is the m × cols
            // block at column j0 of batch b's m × n output (row stride n),
            // inside `out` and exclusively borrowed.
            unsafe {
                product_into(
                    (m, cols, k),
                    dst.as_mut_ptr(),
                    (1, n),
                    bias.is_some(),
                    l,
                    (spec.lhs.col, spec.lhs.row),
                    buf,
                    (1, cols),
                    par,
                )
            }
        }
    }
    out
}

fn widen_one(rhs: HostSlice<'_>, i: usize) -> f32 {
    match rhs {
        HostSlice::F32(v) => v[i],
        HostSlice::BF16(v) => v[i].to_f32(),
        HostSlice::F16(v) => v[i].to_f32(),
    }
}
