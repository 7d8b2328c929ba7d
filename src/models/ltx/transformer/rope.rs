//! `LTXVideoRotaryPosEmbed`: fractional 3-D rotary position embedding from
//! explicit (frame, height, width) coordinates.
//!
//! Angles reach ~1.6e4 rad for the highest frequency (theta · π/2 at a
//! coordinate of 0); in f32 the reference's cos/sin tables are off by up to
//! ~1e-3 there (and ~0.08 at raw coordinates). We compute the angles in f64
//! and round the tables once to f32 (design.md §5).

use rayon::prelude::*;

use crate::backend::Device;
use crate::tensor::{Result, Tensor, TensorError};

#[derive(Clone, Debug)]
pub struct RotaryPosEmbed {
    pub dim: usize,
    pub base_num_frames: f64,
    pub base_height: f64,
    pub base_width: f64,
    pub theta: f64,
}

impl RotaryPosEmbed {
    /// The values LTXVideoTransformer3DModel builds its rope with.
    pub fn ltx(dim: usize) -> Self {
        Self {
            dim,
            base_num_frames: 20.0,
            base_height: 2048.0,
            base_width: 2048.0,
            theta: 10000.0,
        }
    }

    /// `(cos, sin)`, each `[batch, tokens, dim]`, from `video_coords`
    /// `[batch, 3, tokens]` (frame position in seconds, y and x in pixels),
    /// laid out for [`Tensor::rope_interleaved`].
    pub fn cos_sin(&self, video_coords: &Tensor, device: &Device) -> Result<(Tensor, Tensor)> {
        let dims = video_coords.dims();
        if dims.len() != 3 || dims[1] != 3 {
            return Err(TensorError::invalid(
                "rope",
                format!("video_coords must be [batch, 3, tokens], got {dims:?}"),
            ));
        }
        self.cos_sin_of(&video_coords.to_vec_f32()?, dims[0], device)
    }

    /// [`Self::cos_sin`] of host coordinates `[batch, 3, tokens]`: tables
    /// that stay the same for a whole denoising job are made once, here,
    /// and uploaded once.
    pub fn cos_sin_of(
        &self,
        coords: &[f32],
        batch: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        if batch == 0 || coords.len() % (3 * batch) != 0 {
            return Err(TensorError::invalid(
                "rope",
                format!("{} coordinates for a batch of {batch}", coords.len()),
            ));
        }
        let tokens = coords.len() / (3 * batch);
        let n_freqs = self.dim / 6;
        let pad = self.dim % 6;
        // theta ** linspace(0, 1, n) · π/2, as the reference spaces them.
        let freqs: Vec<f64> = (0..n_freqs)
            .map(|i| {
                let e = if n_freqs > 1 {
                    i as f64 / (n_freqs - 1) as f64
                } else {
                    0.0
                };
                self.theta.powf(e) * std::f64::consts::FRAC_PI_2
            })
            .collect();
        let bases = [self.base_num_frames, self.base_height, self.base_width];
        let mut cos = vec![0.0f32; batch * tokens * self.dim];
        let mut sin = vec![0.0f32; batch * tokens * self.dim];
        // One row per token, in parallel: ~2·10⁵ f64 sin/cos for a 6 144-token
        // shot, which on one thread kept the other cores idle.
        cos.par_chunks_mut(self.dim)
            .zip(sin.par_chunks_mut(self.dim))
            .enumerate()
            .with_min_len(64)
            .for_each(|(row, (c, s))| {
                let (b, t) = (row / tokens, row % tokens);
                c[..pad].fill(1.0);
                // Channel pairs run frequency-major, axis-minor: (f0,t) (f0,y)
                // (f0,x) (f1,t) ... each value used for both lanes of a pair.
                for (f, freq) in freqs.iter().enumerate() {
                    for (axis, base) in bases.iter().enumerate() {
                        let coord = coords[(b * 3 + axis) * tokens + t] as f64 / base;
                        let angle = freq * (coord * 2.0 - 1.0);
                        let at = pad + 2 * (f * 3 + axis);
                        let (sa, ca) = angle.sin_cos();
                        c[at..at + 2].fill(ca as f32);
                        s[at..at + 2].fill(sa as f32);
                    }
                }
            });
        let shape = [batch, tokens, self.dim];
        Ok((
            Tensor::from_vec(cos, &shape, device)?,
            Tensor::from_vec(sin, &shape, device)?,
        ))
    }
}
