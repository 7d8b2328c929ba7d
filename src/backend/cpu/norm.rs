//! Row-wise reductions: softmax, RMSNorm, LayerNorm over the last dim.

use super::{buffers, simd};

fn rows(src: &[f32], dim: usize, f: impl Fn(&[f32], &mut [f32]) + Sync + Send) -> Vec<f32> {
    let dim = dim.max(1);
    buffers::computed_rows(src.len(), dim, |row, o| f(&src[row * dim..][..dim], o))
}

/// Sum with eight independent accumulators so the loop vectorises.
#[inline]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline]
fn sum_sq(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for i in 0..8 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

pub fn softmax(src: &[f32], dim: usize) -> Vec<f32> {
    rows(src, dim, |x, o| {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        o.copy_from_slice(x);
        let inv = 1.0 / simd::exp_shifted_sum(o, max);
        o.iter_mut().for_each(|v| *v *= inv);
    })
}

pub fn rms_norm(src: &[f32], dim: usize, weight: Option<&[f32]>, eps: f32) -> Vec<f32> {
    rows(src, dim, |x, o| {
        let inv = 1.0 / (sum_sq(x, 0.0) / x.len() as f32 + eps).sqrt();
        match weight {
            Some(w) => {
                for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
                    *o = v * inv * w;
                }
            }
            None => {
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = v * inv;
                }
            }
        }
    })
}

pub fn layer_norm(
    src: &[f32],
    dim: usize,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
) -> Vec<f32> {
    rows(src, dim, |x, o| {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        let inv = 1.0 / (sum_sq(x, mean) / n + eps).sqrt();
        for (i, (o, &v)) in o.iter_mut().zip(x).enumerate() {
            let mut y = (v - mean) * inv;
            if let Some(w) = weight {
                y *= w[i];
            }
            if let Some(b) = bias {
                y += b[i];
            }
            *o = y;
        }
    })
}
