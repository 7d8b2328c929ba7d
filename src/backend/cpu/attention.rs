//! Memory-blocked attention with an online softmax (the flash-attention
//! scheme): queries are processed in blocks, keys streamed in blocks, and a
//! running max and sum per query row rescale the partial outputs, so memory
//! stays O(block²) instead of O(q_len · kv_len).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::{math, simd};
use crate::backend::AttentionSpec;
use crate::tensor::{Result, TensorError};

/// Query rows per task: enough rows for gemm to be efficient, few enough
/// that tasks spread across cores.
const Q_BLOCK: usize = 64;
/// Keys per step: the score tile `Q_BLOCK × K_BLOCK` stays in L2.
const K_BLOCK: usize = 256;

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
    let mut out = vec![0.0f32; batch * nq * row];
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
    out.par_chunks_mut(nq * row)
        .enumerate()
        .for_each(|(bi, out_b)| {
            out_b
                .par_chunks_mut(Q_BLOCK * row)
                .enumerate()
                .for_each(|(qi, out_blk)| {
                    let q0 = qi * Q_BLOCK;
                    let qb = out_blk.len() / row;
                    let q_blk = &q[(bi * nq + q0) * row..(bi * nq + q0 + qb) * row];
                    let k_b = &k[bi * nk * row..(bi + 1) * nk * row];
                    let v_b = &v[bi * nk * row..(bi + 1) * nk * row];
                    let bias_b = bias.map(|b| &b[bi * nk..(bi + 1) * nk]);
                    query_block(q_blk, k_b, v_b, bias_b, out_blk, qb, nk, heads, dh, scale);
                });
        });
    Ok(out)
}

/// One block of `qb` queries against all keys, every head.
#[allow(clippy::too_many_arguments)]
fn query_block(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    qb: usize,
    nk: usize,
    heads: usize,
    dh: usize,
    scale: f32,
) {
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
        let mut k0 = 0;
        while k0 < nk {
            let kb = kb_max.min(nk - k0);
            let s = &mut s[..qb * kb];
            // SAFETY: q holds qb rows of `row` floats, and head h reads
            // [h*dh, (h+1)*dh) of each; k holds nk rows and keys k0..k0+kb
            // are in range; s is exactly qb×kb and exclusively borrowed.
            unsafe {
                gemm(
                    qb,
                    kb,
                    dh,
                    s.as_mut_ptr(),
                    1,
                    kb as isize,
                    false,
                    q.as_ptr().add(h * dh),
                    1,
                    row as isize,
                    k.as_ptr().add(k0 * row + h * dh),
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
                let block_max = srow.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let new_max = m[i].max(block_max);
                if new_max == f32::NEG_INFINITY {
                    srow.fill(0.0);
                    continue;
                }
                let alpha = math::exp(m[i] - new_max);
                l[i] = l[i] * alpha + simd::exp_shifted_sum(srow, new_max);
                m[i] = new_max;
                if alpha != 1.0 {
                    acc[i * dh..(i + 1) * dh]
                        .iter_mut()
                        .for_each(|a| *a *= alpha);
                }
            }
            // SAFETY: s is qb×kb, v holds rows k0..k0+kb with head h at
            // [h*dh, (h+1)*dh), acc is qb×dh and exclusively borrowed.
            unsafe {
                gemm(
                    qb,
                    dh,
                    kb,
                    acc.as_mut_ptr(),
                    1,
                    dh as isize,
                    true,
                    s.as_ptr(),
                    1,
                    kb as isize,
                    v.as_ptr().add(k0 * row + h * dh),
                    1,
                    row as isize,
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
