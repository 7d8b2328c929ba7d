//! T5's relative position bias: each query-key distance falls in a bucket
//! (exact for short distances, logarithmic up to `max_distance`, one bucket
//! beyond), and each bucket has a learned bias per head. Only the first
//! block owns the table; every block adds the same bias.

use crate::tensor::Tensor;

use super::T5Error;

/// Bucket of `relative = key position - query position` for the encoder's
/// bidirectional attention, as transformers' `_relative_position_bucket`.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    // One half of the buckets for keys after the query, one for before.
    let half = num_buckets / 2;
    let offset = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if distance < max_exact {
        return offset + distance;
    }
    // Computed in f32 as the reference does (log of a float ratio, then
    // truncated), with the denominator's log taken in double like Python's
    // `math.log`, so that bucket edges agree.
    let ratio = (distance as f32 / max_exact as f32).ln();
    let scale = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio / scale * (half - max_exact) as f32) as usize;
    offset + large.min(half - 1)
}

/// The learned table `relative_attention_bias.weight` `[num_buckets, heads]`.
pub struct RelativePositionBias {
    /// Row-major `[num_buckets, heads]`, on the host: it is tiny and is
    /// expanded into a per-shape bias on the host.
    table: Vec<f32>,
    num_buckets: usize,
    max_distance: usize,
    heads: usize,
}

impl RelativePositionBias {
    pub fn new(weight: &Tensor, max_distance: usize) -> Result<Self, T5Error> {
        let (num_buckets, heads) = match weight.dims() {
            &[b, h] => (b, h),
            dims => {
                return Err(T5Error::BadInput(format!(
                    "relative_attention_bias must be 2-D, got {dims:?}"
                )))
            }
        };
        Ok(Self {
            table: weight.to_vec_f32()?,
            num_buckets,
            max_distance,
            heads,
        })
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The additive attention bias `[batch, heads, len, len]`: position bias
    /// plus `f32::MIN` on padded keys (as transformers' extended mask), so
    /// padded keys get zero weight.
    pub fn with_padding_mask(&self, mask: &[u32], batch: usize, len: usize) -> Vec<f32> {
        let h = self.heads;
        // position_bias[h][i][j] depends only on j - i.
        let mut per_distance = vec![0.0f32; (2 * len).saturating_sub(1) * h];
        for (slot, rel) in (-(len as i64) + 1..len as i64).enumerate() {
            let bucket = relative_position_bucket(rel, self.num_buckets, self.max_distance);
            per_distance[slot * h..(slot + 1) * h]
                .copy_from_slice(&self.table[bucket * h..(bucket + 1) * h]);
        }
        let mut out = vec![0.0f32; batch * h * len * len];
        for b in 0..batch {
            let keys = &mask[b * len..(b + 1) * len];
            for head in 0..h {
                let plane = &mut out[(b * h + head) * len * len..(b * h + head + 1) * len * len];
                for (i, row) in plane.chunks_exact_mut(len).enumerate() {
                    for (j, value) in row.iter_mut().enumerate() {
                        // slot of j - i in per_distance
                        let slot = j + len - 1 - i;
                        let bias = per_distance[slot * h + head];
                        *value = if keys[j] == 0 { bias + f32::MIN } else { bias };
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_symmetric_in_shape_and_saturate() {
        // 32 buckets, max distance 128: 0..8 exact, then log up to 15.
        assert_eq!(relative_position_bucket(0, 32, 128), 0);
        assert_eq!(relative_position_bucket(-7, 32, 128), 7);
        assert_eq!(relative_position_bucket(7, 32, 128), 16 + 7);
        assert_eq!(relative_position_bucket(-1000, 32, 128), 15);
        assert_eq!(relative_position_bucket(1000, 32, 128), 31);
        let mut last = 0;
        for d in 0..300 {
            let b = relative_position_bucket(-d, 32, 128);
            assert!(b >= last && b < 16);
            last = b;
        }
    }
}
