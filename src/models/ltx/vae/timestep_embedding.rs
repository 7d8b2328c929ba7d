//! The decoder's timestep embedder, diffusers'
//! `PixArtAlphaCombinedTimestepSizeEmbeddings` without size conditioning:
//! a 256-wide sinusoidal projection (cos first) then Linear-SiLU-Linear.

use super::error::Result;
use super::weights::Weights;

const PROJECTION: usize = 256;

pub struct TimestepEmbedder {
    linear_1: (Vec<f32>, Vec<f32>),
    linear_2: (Vec<f32>, Vec<f32>),
    dim: usize,
}

impl TimestepEmbedder {
    /// Loads `<prefix>.timestep_embedder.linear_{1,2}` producing `dim` values.
    pub fn load(w: &Weights<'_>, dim: usize) -> Result<Self> {
        let w = w.at("timestep_embedder");
        let l1 = w.at("linear_1");
        let l2 = w.at("linear_2");
        Ok(Self {
            linear_1: (
                l1.get("weight", &[dim, PROJECTION])?,
                l1.get("bias", &[dim])?,
            ),
            linear_2: (l2.get("weight", &[dim, dim])?, l2.get("bias", &[dim])?),
            dim,
        })
    }

    /// `[batch * dim]` embeddings of the (already scaled) timesteps.
    pub fn forward(&self, timesteps: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(timesteps.len() * self.dim);
        for &t in timesteps {
            let proj = sinusoid(t);
            let hidden: Vec<f32> = linear(&self.linear_1, &proj)
                .into_iter()
                .map(silu)
                .collect();
            out.extend(linear(&self.linear_2, &hidden));
        }
        out
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

fn linear((weight, bias): &(Vec<f32>, Vec<f32>), x: &[f32]) -> Vec<f32> {
    bias.iter()
        .zip(weight.chunks_exact(x.len()))
        .map(|(b, row)| b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>())
        .collect()
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}
