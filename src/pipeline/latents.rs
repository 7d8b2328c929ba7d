//! Latent layouts of the LTX pipeline: the VAE's `[C, F, H, W]` grid, the
//! transformer's `[tokens, C]` sequence (patch size 1), and each token's
//! position in the video.

/// `[C, F, H, W]` to `[F·H·W, C]`: one token per latent voxel, frame-major.
pub fn pack(grid: &[f32], channels: usize, voxels: usize) -> Vec<f32> {
    let mut out = vec![0.0; grid.len()];
    for c in 0..channels {
        for v in 0..voxels {
            out[v * channels + c] = grid[c * voxels + v];
        }
    }
    out
}

/// The inverse of [`pack`].
pub fn unpack(tokens: &[f32], channels: usize, voxels: usize) -> Vec<f32> {
    let mut out = vec![0.0; tokens.len()];
    for v in 0..voxels {
        for c in 0..channels {
            out[c * voxels + v] = tokens[v * channels + c];
        }
    }
    out
}

/// Positions of the tokens of a `[frames, height, width]` latent grid whose
/// first latent frame sits at pixel frame `frame_index`: `[3, tokens]` with
/// the pixel frame of each token's first frame (a latent frame covers 8
/// pixel frames, the first one only the first), and pixel y and x. Frames
/// are still in frames, not seconds.
pub fn positions(
    frames: usize,
    height: usize,
    width: usize,
    spatial: usize,
    temporal: usize,
    frame_index: usize,
) -> Vec<f32> {
    let tokens = frames * height * width;
    let mut out = vec![0.0f32; 3 * tokens];
    let mut k = 0;
    for f in 0..frames {
        let t = (f * temporal + 1).saturating_sub(temporal) + frame_index;
        for y in 0..height {
            for x in 0..width {
                out[k] = t as f32;
                out[tokens + k] = (y * spatial) as f32;
                out[2 * tokens + k] = (x * spatial) as f32;
                k += 1;
            }
        }
    }
    out
}

/// `torch.lerp(start, end, weight)`, rounding as PyTorch does: from the
/// nearer end, so that weight 1 gives `end` exactly.
pub fn lerp(start: f32, end: f32, weight: f32) -> f32 {
    if weight.abs() < 0.5 {
        start + weight * (end - start)
    } else {
        end - (end - start) * (1.0 - weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_are_inverse() {
        let grid: Vec<f32> = (0..2 * 6).map(|i| i as f32).collect();
        let tokens = pack(&grid, 2, 6);
        assert_eq!(&tokens[..4], &[0.0, 6.0, 1.0, 7.0]);
        assert_eq!(unpack(&tokens, 2, 6), grid);
    }

    #[test]
    fn positions_follow_the_causal_frame_rule() {
        let p = positions(3, 1, 2, 32, 8, 16);
        let tokens = 6;
        assert_eq!(&p[..tokens], &[16.0, 16.0, 17.0, 17.0, 25.0, 25.0]);
        assert_eq!(&p[2 * tokens..], &[0.0, 32.0, 0.0, 32.0, 0.0, 32.0]);
    }

    #[test]
    fn lerp_ends_exactly() {
        assert_eq!(lerp(0.3, 0.7, 1.0), 0.7);
        assert_eq!(lerp(0.3, 0.7, 0.0), 0.3);
    }
}
