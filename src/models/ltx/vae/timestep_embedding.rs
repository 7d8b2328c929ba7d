//! The decoder's timestep embedder, diffusers'
//! `PixArtAlphaCombinedTimestepSizeEmbeddings` without size conditioning:
//! a 256-wide sinusoidal projection (cos first) then Linear-SiLU-Linear.

use crate::tensor::Tensor;

use super::error::Result;
use super::weights::Weights;

const PROJECTION: usize = 256;

pub struct TimestepEmbedder {
    linear_1: (Tensor, Tensor),
    linear_2: (Tensor, Tensor),
}

impl TimestepEmbedder {
    /// Loads `<prefix>.timestep_embedder.linear_{1,2}` producing `dim` values.
    pub fn load(w: &Weights<'_>, dim: usize) -> Result<Self> {
        let w = w.at("timestep_embedder");
        let l1 = w.at("linear_1");
        let l2 = w.at("linear_2");
        Ok(Self {
            linear_1: (
                l1.tensor("weight", &[dim, PROJECTION])?,
                l1.tensor("bias", &[dim])?,
            ),
            linear_2: (
                l2.tensor("weight", &[dim, dim])?,
                l2.tensor("bias", &[dim])?,
            ),
        })
    }

    /// `[batch, dim]` embeddings of the (already scaled) timesteps.
    pub fn forward(&self, timesteps: &[f32]) -> Result<Tensor> {
        let w = &self.linear_1.0;
        // The projection is a few hundred values: made on the host, in f32
        // as the reference makes it, then placed beside the weights.
        let proj: Vec<f32> = timesteps.iter().flat_map(|&t| sinusoid(t)).collect();
        let proj = Tensor::from_vec(proj, &[timesteps.len(), PROJECTION], w.device())?
            .to_dtype(w.activation_dtype())?;
        let hidden = proj
            .linear(&self.linear_1.0, Some(&self.linear_1.1))?
            .silu()?;
        Ok(hidden.linear(&self.linear_2.0, Some(&self.linear_2.1))?)
    }
}

/// `[cos(t f_i) .., sin(t f_i) ..]` with `f_i = exp(-ln(10000) i / 128)`,
/// computed in f32 as the reference does.
fn sinusoid(t: f32) -> Vec<f32> {
    let half = PROJECTION / 2;
    let args: Vec<f32> = (0..half)
        .map(|i| {
            let exponent = -(10000f64.ln() as f32) * i as f32 / half as f32;
            t * exponent.exp()
        })
        .collect();
    args.iter()
        .map(|a| a.cos())
        .chain(args.iter().map(|a| a.sin()))
        .collect()
}
