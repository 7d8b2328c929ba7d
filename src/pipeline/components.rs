//! The model pieces the conditioned pipeline drives, seen through narrow
//! traits. Conditioning (VAE encode, placing frames) and decoding take host
//! arrays; the denoising loop talks to the transformer through a
//! [`VelocitySession`] on tensors that stay on the transformer's device.
//! Tests substitute recorded components for the ones not under test.

use crate::backend::Device;
use crate::engine::EngineError;
use crate::models::ltx::LayerSkip;
use crate::tensor::Tensor;

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
    /// Where encoding `prompts` would load weights onto a device other
    /// than the CPU, that device and about how many bytes they take, so
    /// that room can be made first; `None` when nothing would be loaded
    /// there (all cached, already loaded, or on the CPU).
    fn device_load(&self, prompts: &[&str]) -> Option<(Device, usize)> {
        let _ = prompts;
        None
    }
    /// Whether encoding `prompts` would load weights anywhere (for the
    /// memory guard); an encoder that cannot tell says yes.
    fn would_load(&self, prompts: &[&str]) -> bool {
        let _ = prompts;
        true
    }
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

    /// Where the model computes: the denoising loop keeps its latents there.
    fn device(&self) -> Device {
        Device::cpu()
    }

    /// Sets up one denoising job: what its passes share is prepared once.
    /// The default runs each pass through [`VelocityModel::velocity`] on
    /// host arrays (for models that only have that).
    fn session<'a>(
        &'a self,
        job: &VelocityJob<'a>,
    ) -> Result<Box<dyn VelocitySession + 'a>, EngineError> {
        Ok(Box::new(HostSession::new(self, job)))
    }
}

/// What every transformer pass of one denoising job shares.
#[derive(Clone, Copy)]
pub struct VelocityJob<'a> {
    /// Latent tokens per sample (prefix tokens included).
    pub tokens: usize,
    pub positive: &'a EncodedPrompt,
    /// The negative prompt, when the job runs classifier-free guidance.
    pub negative: Option<&'a EncodedPrompt>,
    /// `[3, tokens]`: seconds, y and x pixels.
    pub coords: &'a [f32],
}

/// The predictions one transformer pass makes.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    /// The negative prompt's, then the prompt's (batch 2).
    Guided,
    /// The prompt's alone (batch 1).
    Positive,
    /// The prompt's with the blocks of `skip` weakened (batch 1), for
    /// spatio-temporal guidance.
    Perturbed(&'a LayerSkip),
}

impl Pass<'_> {
    pub fn batch(self) -> usize {
        match self {
            Pass::Guided => 2,
            Pass::Positive | Pass::Perturbed(_) => 1,
        }
    }
}

/// Transformer passes of one denoising job on the model's device.
pub trait VelocitySession {
    /// The velocity `[batch, tokens, channels]` (batch as `pass` says, in
    /// the model's dtype, on its device) of `latents` (`[tokens, channels]`
    /// f32) at per-token `timesteps` (`[tokens]` f32), both on the model's
    /// device.
    fn velocity(
        &self,
        latents: &Tensor,
        timesteps: &Tensor,
        pass: Pass<'_>,
    ) -> Result<Tensor, EngineError>;
}

fn host_failed(e: crate::tensor::TensorError) -> EngineError {
    EngineError::Failed(format!("denoising: {e}"))
}

/// [`VelocitySession`] over [`VelocityModel::velocity`]: each pass copies
/// its inputs to host arrays and the velocity back.
struct HostSession<'a, M: ?Sized> {
    model: &'a M,
    job: VelocityJob<'a>,
}

impl<'a, M: VelocityModel + ?Sized> HostSession<'a, M> {
    fn new(model: &'a M, job: &VelocityJob<'a>) -> Self {
        Self { model, job: *job }
    }
}

impl<M: VelocityModel + ?Sized> VelocitySession for HostSession<'_, M> {
    fn velocity(
        &self,
        latents: &Tensor,
        timesteps: &Tensor,
        pass: Pass<'_>,
    ) -> Result<Tensor, EngineError> {
        let job = &self.job;
        let batch = pass.batch();
        let (text, text_mask) = match (pass, job.negative) {
            (Pass::Guided, Some(n)) => (
                [n.embeds.as_slice(), &job.positive.embeds].concat(),
                [n.mask.as_slice(), &job.positive.mask].concat(),
            ),
            (Pass::Guided, None) => {
                return Err(EngineError::Failed(
                    "a guided pass needs the negative prompt".into(),
                ))
            }
            _ => (job.positive.embeds.clone(), job.positive.mask.clone()),
        };
        let hidden = latents.to_vec_f32().map_err(host_failed)?;
        let timestep = timesteps.to_vec_f32().map_err(host_failed)?;
        let skip = match pass {
            Pass::Perturbed(skip) => Some(skip),
            _ => None,
        };
        let v = self.model.velocity(&VelocityInputs {
            batch,
            tokens: job.tokens,
            hidden_states: &hidden.repeat(batch),
            text: &text,
            text_tokens: job.positive.tokens,
            text_mask: &text_mask,
            timestep: &timestep.repeat(batch),
            coords: &job.coords.repeat(batch),
            skip,
        })?;
        let channels = self.model.channels();
        let expected = batch * job.tokens * channels;
        if v.len() != expected {
            return Err(EngineError::Failed(format!(
                "transformer gave {} values, expected {expected}",
                v.len()
            )));
        }
        Tensor::from_vec(v, &[batch, job.tokens, channels], latents.device()).map_err(host_failed)
    }
}

/// The VAE's per-channel latent statistics: normalised latents are
/// `(z - mean) · scaling_factor / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentStatistics {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub scaling_factor: f32,
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
    /// How latents are normalised, for steps that work on raw latents (the
    /// latent upsampler); `None` where the codec does not say.
    fn latent_statistics(&self) -> Option<LatentStatistics> {
        None
    }
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
