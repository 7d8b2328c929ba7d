//! Memory-blocked attention with an online softmax (the flash-attention
//! scheme): queries are processed in blocks, keys streamed in blocks, and a
//! running max and sum per query row rescale the partial outputs, so memory
//! stays O(block²) instead of O(q_len · kv_len).
//!
//! Both products are laid out so `gemm` reads its operands in place rather
//! than repacking them on every call: the keys are transposed once per call
//! into `[batch, head, head_dim, kv_len]`, so a key block is a column-major
//! `kb × dh` matrix, and the values are column-major as stored once the
//! product `acc += P · V` is read as its transpose `accᵀ += Vᵀ · Pᵀ`.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::{buffers, math, simd};
use crate::backend::AttentionSpec;
use crate::tensor::{Result, TensorError};

/// Most query rows per task: every key block is repacked by gemm once per
/// task and head, so larger blocks amortise that (256 rows measured ~15 %
/// faster than 64 on the 2048-token self-attention); the score tile
/// `Q_BLOCK × K_BLOCK` (512 KiB) still fits in L2.
const Q_BLOCK: usize = 256;
/// Fewest query rows per task, so gemm's tiles stay full.
const Q_BLOCK_MIN: usize = 64;
/// Keys per step.
const K_BLOCK: usize = 512;

/// Inputs are validated by the caller: q is `[b, nq, h, dh]`, k and v are
/// `[b, nk, h, dh]`, bias `[b, nk]`, all contiguous and long enough.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bias: Option<&[f32]>,
    spec: &AttentionSpec,
) -> Result<Vec<f32>> {
    let AttentionSpec {
        batch,
        q_len: nq,
        kv_len: nk,
        heads,
        head_dim: dh,
        scale,
    } = *spec;
    let row = heads * dh;
    let mut out = buffers::zeroed(batch * nq * row);
    if q.len() < out.len()
        || k.len() < batch * nk * row
        || v.len() < batch * nk * row
        || bias.is_some_and(|b| b.len() < batch * nk)
    {
        return Err(TensorError::invalid(
            "attention",
            "operands shorter than the spec",
        ));
    }
    if out.is_empty() || nk == 0 {
        return Ok(out);
    }
    let kt = transpose_keys(k, batch, nk, heads, dh);
    // At least four tasks per thread where the queries allow it.
    let per_thread = (batch * nq).div_ceil(4 * rayon::current_num_threads());
    let q_block = per_thread.next_multiple_of(16).clamp(Q_BLOCK_MIN, Q_BLOCK);
    out.par_chunks_mut(nq * row)
        .enumerate()
        .for_each(|(bi, out_b)| {
            out_b
                .par_chunks_mut(q_block * row)
                .enumerate()
                .for_each(|(qi, out_blk)| {
                    let q0 = qi * q_block;
                    let qb = out_blk.len() / row;
                    let blk = QueryBlock {
                        q: &q[(bi * nq + q0) * row..(bi * nq + q0 + qb) * row],
                        kt: &kt[bi * nk * row..(bi + 1) * nk * row],
                        v: &v[bi * nk * row..(bi + 1) * nk * row],
                        bias: bias.map(|b| &b[bi * nk..(bi + 1) * nk]),
                        qb,
                        nk,
                        heads,
                        dh,
                        scale,
                    };
                    blk.run(out_blk);
                });
        });
    Ok(out)
}

/// `[b, nk, h, dh]` → `[b, h, dh, nk]`: each head's keys as a `dh × nk`
/// row-major matrix (one row per feature, keys contiguous).
fn transpose_keys(k: &[f32], batch: usize, nk: usize, heads: usize, dh: usize) -> Vec<f32> {
    let row = heads * dh;
    buffers::computed_rows(batch * nk * row, nk * dh, |bh, dst| {
        let (bi, h) = (bh / heads, bh % heads);
        let src = &k[bi * nk * row + h * dh..];
        // Tiles of 16 keys: each source row segment is read once and
        // its 16 destination rows stay in L1 while they are written.
        for j0 in (0..nk).step_by(16) {
            let jn = 16.min(nk - j0);
            for j in j0..j0 + jn {
                let key = &src[j * row..j * row + dh];
                for (d, &x) in key.iter().enumerate() {
                    dst[d * nk + j] = x;
                }
            }
        }
    })
}

/// One block of `qb` queries against all keys, every head.
struct QueryBlock<'a> {
    q: &'a [f32],
    kt: &'a [f32],
    v: &'a [f32],
    bias: Option<&'a [f32]>,
    qb: usize,
    nk: usize,
    heads: usize,
    dh: usize,
    scale: f32,
}

impl QueryBlock<'_> {
    fn run(&self, out: &mut [f32]) {
        let QueryBlock {
            q,
            kt,
            v,
            bias,
            qb,
            nk,
            heads,
            dh,
            scale,
        } = *self;
        let row = heads * dh;
        let kb_max = K_BLOCK.min(nk);
        let mut s = vec![0.0f32; qb * kb_max];
        let mut acc = vec![0.0f32; qb * dh];
        let mut m = vec![f32::NEG_INFINITY; qb];
        let mut l = vec![0.0f32; qb];
        for h in 0..heads {
            acc.fill(0.0);
            m.fill(f32::NEG_INFINITY);
            l.fill(0.0);
            let kt_h = &kt[h * dh * nk..(h + 1) * dh * nk];
            let mut k0 = 0;
            while k0 < nk {
                let kb = kb_max.min(nk - k0);
                let s = &mut s[..qb * kb];
                // Scores as their transpose, sᵀ (kb × qb, column-major, i.e.
                // s row-major qb × kb) = K_blk (kb × dh, column-major in kt)
                // · Qᵀ (dh × qb, column-major in q).
                // SAFETY: kt_h is dh × nk row-major, so keys k0..k0+kb of
                // every feature are in range; q holds qb rows of `row`
                // floats and head h reads [h*dh, (h+1)*dh) of each; s is
                // exactly qb × kb and exclusively borrowed.
                unsafe {
                    gemm(
                        kb,
                        qb,
                        dh,
                        s.as_mut_ptr(),
                        kb as isize,
                        1,
                        false,
                        kt_h.as_ptr().add(k0),
                        nk as isize,
                        1,
                        q.as_ptr().add(h * dh),
                        row as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                for i in 0..qb {
                    let srow = &mut s[i * kb..(i + 1) * kb];
                    if let Some(b) = bias {
                        simd::add_assign(srow, &b[k0..k0 + kb]);
                    }
                    let new_max = m[i].max(simd::max(srow));
                    if new_max == f32::NEG_INFINITY {
                        srow.fill(0.0);
                        continue;
                    }
                    let alpha = math::exp(m[i] - new_max);
                    l[i] = l[i] * alpha + simd::exp_shifted_sum(srow, new_max);
                    m[i] = new_max;
                    if alpha != 1.0 {
                        simd::scale(&mut acc[i * dh..(i + 1) * dh], alpha);
                    }
                }
                // accᵀ (dh × qb, column-major) += Vᵀ (dh × kb, column-major
                // as V is stored) · sᵀ (kb × qb, column-major).
                // SAFETY: v holds rows k0..k0+kb with head h at
                // [h*dh, (h+1)*dh); s is qb × kb; acc is qb × dh and
                // exclusively borrowed.
                unsafe {
                    gemm(
                        dh,
                        qb,
                        kb,
                        acc.as_mut_ptr(),
                        dh as isize,
                        1,
                        true,
                        v.as_ptr().add(k0 * row + h * dh),
                        row as isize,
                        1,
                        s.as_ptr(),
                        kb as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                k0 += kb;
            }
            for i in 0..qb {
                let inv = if l[i] > 0.0 { 1.0 / l[i] } else { 0.0 };
                let dst = &mut out[i * row + h * dh..i * row + (h + 1) * dh];
                for (d, &a) in dst.iter_mut().zip(&acc[i * dh..(i + 1) * dh]) {
                    *d = a * inv;
                }
            }
        }
    }
}
