//! Fresh output buffers, initialised by the rayon workers rather than the
//! calling thread.
//!
//! `vec![0.0; n]` initialises on the thread that asks: glibc's calloc
//! `memset`s a block it serves from its heap, and a block it maps fresh is
//! zeroed by the kernel one page fault at a time when it is first written.
//! Both happen on the thread that drives the op while the pool's workers
//! wait. On the transformer-cpu bench (two cores) that serial start of every
//! op was 12 % of the CPU time and close to a fifth of the wall time.
//! Initialising in parallel shares the memset and the first-touch faults out
//! across the workers that later write the same pages.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::PAR_MIN_ELEMS;

/// Elements one task initialises.
const CHUNK: usize = PAR_MIN_ELEMS * 4;

/// `len` zeros.
pub(crate) fn zeroed(len: usize) -> Vec<f32> {
    build(len, 1, CHUNK, |_, dst| dst.fill(MaybeUninit::new(0.0)))
}

/// `len` elements holding `row` over and over (`len` a multiple of its
/// length): a bias broadcast over the rows of a product's output.
pub(crate) fn repeated_rows(len: usize, row: &[f32]) -> Vec<f32> {
    if row.is_empty() {
        return Vec::new();
    }
    build(len, row.len(), CHUNK, |_, dst| {
        for dst_row in dst.chunks_mut(row.len()) {
            for (d, &s) in dst_row.iter_mut().zip(row) {
                d.write(s);
            }
        }
    })
}

/// A vector of `len` elements computed by `fill(first_row, chunk)` over
/// chunks of whole rows of `row` elements (`len` a multiple of it), in
/// parallel when it is large; `fill` gets its chunk zeroed. Each task zeroes
/// its chunk just before filling it, so the zeroing is no separate pass
/// over the pool and the chunk is still in cache when it is written: for
/// the elementwise ops, which write every element anyway.
pub(crate) fn computed<T: Copy + Default + Send + Sync>(
    len: usize,
    row: usize,
    fill: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let row = row.max(1);
    let rows_per_task = (PAR_MIN_ELEMS / 4 / row).max(1);
    build(len, row, rows_per_task * row, |start, dst| {
        for d in dst.iter_mut() {
            d.write(T::default());
        }
        // SAFETY: every element of `dst` was initialised just above, and
        // `MaybeUninit<T>` has the layout of `T`.
        let dst = unsafe { &mut *(dst as *mut [MaybeUninit<T>] as *mut [T]) };
        fill(start / row, dst);
    })
}

/// [`computed`] one row at a time: `fill(i, row)` gets row `i`, zeroed.
pub(crate) fn computed_rows<T: Copy + Default + Send + Sync>(
    len: usize,
    row: usize,
    fill: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let row = row.max(1);
    computed(len, row, |first_row, chunk| {
        for (i, dst) in chunk.chunks_mut(row).enumerate() {
            fill(first_row + i, dst);
        }
    })
}

/// A vector of `len` elements initialised by `fill(start, chunk)` over
/// chunks of whole rows of `row` elements, about `chunk` elements each, in
/// parallel when it is large. `fill` must write every element of the chunk
/// it is given.
fn build<T: Send + Sync>(
    len: usize,
    row: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    debug_assert!(row > 0 && len % row == 0);
    let mut out = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    if len >= PAR_MIN_ELEMS {
        let chunk = (chunk / row).max(1) * row;
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, dst)| fill(i * chunk, dst));
    } else {
        fill(0, spare);
    }
    // SAFETY: the capacity is at least `len`, and the callers' `fill`s
    // write every element of each chunk, and the chunks cover 0..len.
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_all_zeros_at_every_size() {
        for len in [0, 1, 17, PAR_MIN_ELEMS - 1, PAR_MIN_ELEMS, CHUNK * 3 + 5] {
            let v = zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn repeated_rows_repeats_the_row_across_chunk_edges() {
        // A row length that does not divide the chunk size.
        let row: Vec<f32> = (0..513).map(|i| i as f32).collect();
        for rows in [1, 3, CHUNK / 513 + 7] {
            let v = repeated_rows(rows * row.len(), &row);
            assert_eq!(v.len(), rows * row.len());
            for r in v.chunks(row.len()) {
                assert_eq!(r, &row[..]);
            }
        }
        assert!(repeated_rows(0, &[]).is_empty());
    }

    #[test]
    fn computed_hands_each_task_its_rows_zeroed() {
        // Rows of 7 (not dividing the task size) and of 5000 (one row per
        // task), below and above the parallel threshold.
        for (rows, row) in [(3, 7), (PAR_MIN_ELEMS / 7 + 11, 7), (9, 5000)] {
            let v: Vec<f32> = computed(rows * row, row, |first_row, chunk: &mut [f32]| {
                assert_eq!(chunk.len() % row, 0);
                for (i, r) in chunk.chunks_mut(row).enumerate() {
                    assert!(r.iter().all(|&x| x == 0.0));
                    r.fill((first_row + i) as f32);
                }
            });
            assert_eq!(v.len(), rows * row);
            for (i, r) in v.chunks(row).enumerate() {
                assert!(r.iter().all(|&x| x == i as f32), "row {i} of {rows}x{row}");
            }
            let by_row: Vec<f32> = computed_rows(rows * row, row, |i, r: &mut [f32]| {
                assert_eq!(r.len(), row);
                assert!(r.iter().all(|&x| x == 0.0));
                r.fill(i as f32);
            });
            assert_eq!(by_row, v);
        }
    }
}
