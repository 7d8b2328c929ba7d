//! Timestep and caption embeddings: diffusers' `AdaLayerNormSingle` (with
//! its `PixArtAlphaCombinedTimestepSizeEmbeddings`, `Timesteps`,
//! `TimestepEmbedding`) and `PixArtAlphaTextProjection`.

use crate::backend::Device;
use crate::models::nn::Linear;
use crate::tensor::{Result, Tensor};
use crate::weights::{VarBuilder, WeightError};

/// Width of the sinusoidal timestep features (`Timesteps(num_channels=256)`).
pub const TIMESTEP_CHANNELS: usize = 256;

/// The frequencies of the timestep features, `f_i = exp(-ln(10000) · i /
/// 128)`, with the reference's f32 roundings.
pub fn timestep_freqs() -> Vec<f32> {
    let half = TIMESTEP_CHANNELS / 2;
    let log_period = -(10000f64.ln() as f32);
    (0..half)
        .map(|i| ((log_period * i as f32) / half as f32).exp())
        .collect()
}

/// Sinusoidal features `[cos(t·f_i), sin(t·f_i)]` of each timestep
/// (flip_sin_to_cos, no shift), `[n, 256]` f32, made on the device of
/// `timesteps` (`[n]` f32).
///
/// The argument `t·f_i` is formed with the reference's f32 roundings (the
/// model was trained on exactly those values; at t = 1000 one f32 ulp of the
/// argument is 6e-5 rad); sin and cos of it are then evaluated in f64.
pub fn timestep_features_of(timesteps: &Tensor) -> Result<Tensor> {
    let freqs = Tensor::from_vec(
        timestep_freqs(),
        &[TIMESTEP_CHANNELS / 2],
        timesteps.device(),
    )?;
    timesteps.timestep_features(&freqs)
}

/// [`timestep_features_of`] host timesteps, on `device`.
pub fn timestep_features(timesteps: &[f32], device: &Device) -> Result<Tensor> {
    timestep_features_of(&Tensor::from_slice(timesteps, &[timesteps.len()], device)?)
}

/// `TimestepEmbedding`: linear → SiLU → linear.
#[derive(Clone, Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(
        in_dim: usize,
        dim: usize,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            linear_1: Linear::new(in_dim, dim, &vb.pp("linear_1"))?,
            linear_2: Linear::new(dim, dim, &vb.pp("linear_2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}

/// `AdaLayerNormSingle` (without additional conditions): timesteps to the
/// six per-block modulation vectors and the embedding the output norm uses.
#[derive(Clone, Debug)]
pub struct AdaLayerNormSingle {
    /// `emb.timestep_embedder`
    pub timestep_embedder: TimestepEmbedding,
    pub linear: Linear,
}

impl AdaLayerNormSingle {
    pub fn new(dim: usize, vb: &VarBuilder) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            timestep_embedder: TimestepEmbedding::new(
                TIMESTEP_CHANNELS,
                dim,
                &vb.pp("emb").pp("timestep_embedder"),
            )?,
            linear: Linear::new(dim, 6 * dim, &vb.pp("linear"))?,
        })
    }

    /// For `timesteps` `[n]` returns `(temb [n, 6·dim], embedded [n, dim])`.
    pub fn forward(&self, timesteps: &[f32], device: &Device) -> Result<(Tensor, Tensor)> {
        self.forward_features(&timestep_features(timesteps, device)?)
    }

    /// [`Self::forward`] from the timesteps' features (`[n, 256]` f32, see
    /// [`timestep_features_of`]).
    pub fn forward_features(&self, features: &Tensor) -> Result<(Tensor, Tensor)> {
        // The sinusoids are made in f32 and enter the embedder in the
        // weights' type, as diffusers casts `timesteps_proj` to the hidden
        // dtype: a bf16 model on the GPU takes bf16 features.
        let features =
            features.to_dtype(self.timestep_embedder.linear_1.weight.activation_dtype())?;
        let embedded = self.timestep_embedder.forward(&features)?;
        let temb = self.linear.forward(&embedded.silu()?)?;
        Ok((temb, embedded))
    }
}

/// `PixArtAlphaTextProjection`: linear → GELU(tanh) → linear.
#[derive(Clone, Debug)]
pub struct CaptionProjection {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl CaptionProjection {
    pub fn new(
        in_dim: usize,
        dim: usize,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            linear_1: Linear::new(in_dim, dim, &vb.pp("linear_1"))?,
            linear_2: Linear::new(dim, dim, &vb.pp("linear_2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2
            .forward(&self.linear_1.forward(x)?.gelu_tanh()?)
    }
}
