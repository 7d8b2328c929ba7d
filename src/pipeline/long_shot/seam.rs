//! Seams between windows. Neighbouring windows share `O` frames (the
//! later window's first latent frames are the earlier one's last, see
//! [`super::plan`]); both decodes of those frames are kept and cross-faded
//! with a linear ramp, so neither window's edge shows:
//!
//! `out[i] = (1 − wᵢ)·A[i] + wᵢ·B[i]`, `wᵢ = (i + 1)/(O + 1)`, `i = 0 .. O−1`
//!
//! where `A` is the earlier window's decode of the shared frames and `B`
//! the later window's. The weight never reaches 0 or 1 inside the overlap,
//! so each shared frame takes something of both, and the ramp meets the
//! frames each window has alone at both ends.

/// The later window's weight for shared frame `i` of `overlap`.
pub fn weight(i: usize, overlap: usize) -> f32 {
    (i + 1) as f32 / (overlap + 1) as f32
}

/// Cross-fades shared frame `i` of `overlap`: `earlier` and `later` are the
/// two decodes of it (interleaved RGB); the result replaces `earlier`.
pub fn blend_into(earlier: &mut [f32], later: &[f32], i: usize, overlap: usize) {
    let w = weight(i, overlap);
    for (a, &b) in earlier.iter_mut().zip(later) {
        *a = (1.0 - w) * *a + w * b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_rises_evenly_through_the_overlap() {
        let o = 9;
        let w: Vec<f32> = (0..o).map(|i| weight(i, o)).collect();
        assert!((w[0] - 0.1).abs() < 1e-6 && (w[8] - 0.9).abs() < 1e-6);
        assert!((w[4] - 0.5).abs() < 1e-6);
        let mut a = vec![0.0, 1.0];
        blend_into(&mut a, &[1.0, 0.0], 4, o);
        assert_eq!(a, vec![0.5, 0.5]);
    }
}
