//! The model pieces the conditioned pipeline drives, seen through narrow
//! traits over host arrays: the pipeline's own arithmetic is small (latents
//! are 1/1024 of the pixels), so it runs on the host whatever backend runs
//! the models. Tests substitute recorded components for the ones not under
//! test.

use crate::engine::EngineError;
use crate::models::ltx::LayerSkip;

/// A prompt as the transformer takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedPrompt {
    /// `[tokens, dim]` hidden states of the text encoder.
    pub embeds: Vec<f32>,
    /// `[tokens]`, 1 for real tokens, 0 for padding.
    pub mask: Vec<f32>,
    pub tokens: usize,
    pub dim: usize,
    /// Whether the tokenizer cut the prompt to fit.
    pub truncated: bool,
}

/// Tokenizer and text encoder.
pub trait PromptEncoder: Send + Sync {
    /// `prompt` padded or cut to `max_tokens` and encoded.
    fn encode(&self, prompt: &str, max_tokens: usize) -> Result<EncodedPrompt, EngineError>;
    /// A job has encoded its prompts: weights may be dropped until the next
    /// new prompt, so that denoising has the memory.
    fn release(&self) {}
}

/// One forward pass of the denoising transformer over a batch.
pub struct VelocityInputs<'a> {
    pub batch: usize,
    pub tokens: usize,
    /// `[batch, tokens, channels]`
    pub hidden_states: &'a [f32],
    /// `[batch, text_tokens, dim]`
    pub text: &'a [f32],
    pub text_tokens: usize,
    /// `[batch, text_tokens]`
    pub text_mask: &'a [f32],
    /// `[batch, tokens]` timesteps in [0, 1000].
    pub timestep: &'a [f32],
    /// `[batch, 3, tokens]`: seconds, y and x pixels.
    pub coords: &'a [f32],
    /// Blocks to weaken for the perturbed pass of spatio-temporal guidance.
    pub skip: Option<&'a LayerSkip>,
}

/// The denoising transformer.
pub trait VelocityModel: Send + Sync {
    /// Latent channels per token in and out.
    fn channels(&self) -> usize;
    /// Hidden size of the text it attends to.
    fn text_dim(&self) -> usize;
    /// The velocity `[batch, tokens, channels]`.
    fn velocity(&self, inputs: &VelocityInputs<'_>) -> Result<Vec<f32>, EngineError>;
}

/// The video VAE as the pipeline uses it.
pub trait VideoCodec: Send + Sync {
    fn latent_channels(&self) -> usize;
    /// (spatial, temporal) compression.
    fn compression(&self) -> (usize, usize);
    /// Whether decoding takes a timestep and decode noise.
    fn timestep_conditioned(&self) -> bool;
    /// Conditioning frames `[3, frames, height, width]` in [-1, 1] to
    /// normalised latents `[C, f, h, w]`, sampling the posterior with `noise`
    /// (standard normal, as many values as the latents).
    fn encode_condition(
        &self,
        pixels: &[f32],
        frames: usize,
        height: usize,
        width: usize,
        noise: &[f32],
    ) -> Result<Vec<f32>, EngineError>;
    /// Normalised latents `[C, f, h, w]` to video `[3, F, H, W]` in about
    /// [-1, 1]: denormalise, mix `noise` in by `noise_scale`, decode at
    /// `timestep` (the last two only for timestep-conditioned decoders).
    fn decode(
        &self,
        latents: &[f32],
        dims: [usize; 4],
        timestep: f32,
        noise_scale: f32,
        noise: &[f32],
    ) -> Result<Vec<f32>, EngineError>;
}
