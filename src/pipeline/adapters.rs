//! The model components behind the pipeline's traits.

use std::path::Path;
use std::sync::OnceLock;

use super::components::{
    EncodedPrompt, LatentStatistics, Pass, PromptEncoder, VelocityInputs, VelocityJob,
    VelocityModel, VelocitySession, VideoCodec,
};
use super::single_file::Checkpoint;
use crate::backend::Device;
use crate::engine::EngineError;
use crate::models::ltx::transformer::JobContext;
use crate::models::ltx::vae::{AutoencoderKLLTXVideo, DecodeConditioning, Tiling, Volume};
use crate::models::ltx::{LtxVideoTransformer3DModel, TransformerInputs};
use crate::models::t5::{self as t5, PromptEmbedding, ReleasePolicy, T5Error, TextEncoder};
use crate::tensor::{DType, Tensor, TensorError};
use crate::tokenizer::T5Tokenizer;
use crate::weights::WeightError;

use super::text_encoder_location::{self, TextEncoderLocation};

fn failed(e: TensorError) -> EngineError {
    device_failed("transformer", e)
}

/// What a device error in `what` means to the user: out of memory, or a
/// failure of the device (a driver or kernel error).
fn device_failed(what: &str, e: TensorError) -> EngineError {
    match e {
        TensorError::OutOfMemory { .. } => EngineError::OutOfMemory(format!(
            "{what}: {e}; try a smaller resolution or length, or close other GPU work"
        )),
        e => EngineError::Failed(format!("{what}: {e}")),
    }
}

/// A model that did not load: the device's fault when uploading its
/// weights failed there (out of memory, a driver error), else the files'
/// (no usable model).
fn load_failed(what: &str, e: WeightError) -> EngineError {
    match e {
        WeightError::Tensor {
            source: source @ (TensorError::OutOfMemory { .. } | TensorError::Backend { .. }),
            ..
        } => device_failed(what, source),
        e => EngineError::NoModel(format!("{what}: {e}")),
    }
}

/// The LTX transformer as a [`VelocityModel`].
pub struct LtxTransformer {
    model: LtxVideoTransformer3DModel,
}

impl LtxTransformer {
    /// Loads the weights onto `device` in `dtype` (usually the device's
    /// compute dtype: f32 on the CPU, the card's 16-bit type on a GPU).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self, EngineError> {
        let model = LtxVideoTransformer3DModel::load(dir, dtype, device)
            .map_err(|e| load_failed("transformer", e))?;
        Ok(Self { model })
    }

    /// The transformer of a single-file checkpoint.
    pub fn load_checkpoint(
        checkpoint: &Checkpoint,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, EngineError> {
        let model = checkpoint
            .load_transformer(dtype, device)
            .map_err(|e| load_failed("transformer", e))?;
        Ok(Self { model })
    }

    pub fn new(model: LtxVideoTransformer3DModel) -> Self {
        Self { model }
    }

    /// How many blocks a skip list may name.
    pub fn num_layers(&self) -> usize {
        self.model.transformer_blocks.len()
    }
}

impl VelocityModel for LtxTransformer {
    fn channels(&self) -> usize {
        self.model.config.in_channels
    }

    fn text_dim(&self) -> usize {
        self.model.config.caption_channels
    }

    fn velocity(&self, x: &VelocityInputs<'_>) -> Result<Vec<f32>, EngineError> {
        self.run(x).map_err(|e| self.explain(e))
    }

    fn device(&self) -> Device {
        self.model.device().clone()
    }

    fn session<'a>(
        &'a self,
        job: &VelocityJob<'a>,
    ) -> Result<Box<dyn VelocitySession + 'a>, EngineError> {
        let session = LtxSession::new(self, job).map_err(|e| self.explain(failed(e)))?;
        Ok(Box::new(session))
    }
}

impl LtxTransformer {
    /// A GPU problem other than memory: say how to go on without it.
    fn explain(&self, e: EngineError) -> EngineError {
        let device = self.model.device();
        match e {
            EngineError::Failed(msg) if !device.is_cpu() => EngineError::Failed(format!(
                "{msg} (on {}; set {}=cpu to run on the CPU instead)",
                device.name(),
                super::engine::DEVICE_ENV
            )),
            e => e,
        }
    }

    fn run(&self, x: &VelocityInputs<'_>) -> Result<Vec<f32>, EngineError> {
        let device = self.model.device();
        let c = self.channels();
        let hidden = Tensor::from_slice(x.hidden_states, &[x.batch, x.tokens, c], device);
        let text = Tensor::from_slice(x.text, &[x.batch, x.text_tokens, self.text_dim()], device);
        let mask = Tensor::from_slice(x.text_mask, &[x.batch, x.text_tokens], device);
        let timestep = Tensor::from_slice(x.timestep, &[x.batch, x.tokens], device);
        let coords = Tensor::from_slice(x.coords, &[x.batch, 3, x.tokens], device);
        // Latents and text in the weights' dtype, as diffusers casts them;
        // timesteps, mask and coordinates stay f32.
        let dtype = self.model.proj_in.weight.activation_dtype();
        let (hidden, text, mask, timestep, coords) = (
            hidden.and_then(|t| t.to_dtype(dtype)).map_err(failed)?,
            text.and_then(|t| t.to_dtype(dtype)).map_err(failed)?,
            mask.map_err(failed)?,
            timestep.map_err(failed)?,
            coords.map_err(failed)?,
        );
        let inputs = TransformerInputs {
            hidden_states: &hidden,
            encoder_hidden_states: &text,
            encoder_attention_mask: Some(&mask),
            timestep: &timestep,
            video_coords: &coords,
        };
        let out = self
            .model
            .forward_skipping(&inputs, x.skip)
            .map_err(failed)?;
        out.to_vec_f32().map_err(failed)
    }
}

/// One denoising job on the transformer's device: the prompts, their
/// padding bias and the RoPE tables are uploaded and made once, and every
/// pass takes the latents and timesteps where they already are.
struct LtxSession<'a> {
    owner: &'a LtxTransformer,
    /// Text batch `[negative, positive]` when guided, else `[positive]`.
    job: JobContext,
    /// The prompt's row of `job`.
    positive: JobContext,
    guided: bool,
}

impl<'a> LtxSession<'a> {
    fn new(owner: &'a LtxTransformer, job: &VelocityJob<'a>) -> Result<Self, TensorError> {
        let model = &owner.model;
        let device = model.device();
        let prompts: Vec<&EncodedPrompt> = job.negative.into_iter().chain([job.positive]).collect();
        let text: Vec<f32> = prompts
            .iter()
            .flat_map(|p| p.embeds.iter().copied())
            .collect();
        let mask: Vec<f32> = prompts
            .iter()
            .flat_map(|p| p.mask.iter().copied())
            .collect();
        let batch = prompts.len();
        let (text_tokens, dim) = (job.positive.tokens, owner.text_dim());
        // Text in the weights' dtype, as diffusers casts it; the mask f32.
        let text = Tensor::from_vec(text, &[batch, text_tokens, dim], device)?
            .to_dtype(model.proj_in.weight.activation_dtype())?;
        let mask = Tensor::from_vec(mask, &[batch, text_tokens], device)?;
        let context = model.job_context(&text, Some(&mask), job.coords, 1)?;
        Ok(Self {
            owner,
            positive: context.rows(batch - 1, 1)?,
            job: context,
            guided: job.negative.is_some(),
        })
    }

    fn pass(
        &self,
        latents: &Tensor,
        timesteps: &Tensor,
        pass: Pass<'_>,
    ) -> Result<Tensor, EngineError> {
        let model = &self.owner.model;
        let (job, skip) = match pass {
            Pass::Guided if !self.guided => {
                return Err(EngineError::Failed(
                    "a guided pass needs the negative prompt".into(),
                ))
            }
            Pass::Guided => (&self.job, None),
            Pass::Positive => (&self.positive, None),
            Pass::Perturbed(skip) => (&self.positive, Some(skip)),
        };
        let run = || {
            let one = latents.unsqueeze(0)?;
            let hidden = match pass.batch() {
                1 => one,
                n => Tensor::cat(&vec![&one; n], 0)?,
            };
            // Latents in the weights' dtype, as diffusers casts them; the
            // timesteps stay f32, one row per sample: the timestep embedder
            // then multiplies as many rows as it always has, which keeps the
            // CPU's roundings those of the reference runs.
            let hidden = hidden.to_dtype(model.proj_in.weight.activation_dtype())?;
            let row = timesteps.reshape(&[1, timesteps.elem_count()])?;
            let timestep = match pass.batch() {
                1 => row,
                n => Tensor::cat(&vec![&row; n], 0)?,
            };
            model.forward_in_job(job, &hidden, &timestep, skip)
        };
        run().map_err(failed)
    }
}

impl VelocitySession for LtxSession<'_> {
    fn velocity(
        &self,
        latents: &Tensor,
        timesteps: &Tensor,
        pass: Pass<'_>,
    ) -> Result<Tensor, EngineError> {
        self.pass(latents, timesteps, pass)
            .map_err(|e| self.owner.explain(e))
    }
}

/// A VAE that did not load: the device's fault or the files'.
fn vae_load_failed(e: crate::models::ltx::vae::VaeError) -> EngineError {
    use crate::models::ltx::vae::VaeError;
    match e {
        VaeError::Weights(w) => load_failed("VAE", w),
        VaeError::Tensor(t @ (TensorError::OutOfMemory { .. } | TensorError::Backend { .. })) => {
            device_failed("VAE", t)
        }
        e => EngineError::NoModel(format!("VAE: {e}")),
    }
}

fn vae_failed(e: crate::models::ltx::vae::VaeError) -> EngineError {
    EngineError::Failed(format!("VAE: {e}"))
}

/// The LTX VAE as a [`VideoCodec`].
pub struct LtxVae {
    model: AutoencoderKLLTXVideo,
    /// Fixed tiles, or `None`: on a GPU, tiles sized from the memory free
    /// when the decode starts ([`LtxVae::tiling_for`]); on the CPU, one piece.
    tiling: Option<Tiling>,
}

/// The share of a GPU's free memory a decode plans to use: the rest is
/// headroom for what the estimate misses and for fragmentation.
const DECODE_SHARE_OF_FREE: f64 = 0.85;

impl LtxVae {
    /// The VAE on the CPU in f32.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        Self::load_on(dir, &Device::cpu(), DType::F32)
    }

    /// The VAE on `device` with weights and activations in `dtype`.
    pub fn load_on(dir: &Path, device: &Device, dtype: DType) -> Result<Self, EngineError> {
        let model = AutoencoderKLLTXVideo::load_on(dir, device, dtype).map_err(vae_load_failed)?;
        Ok(Self::new(model))
    }

    /// The VAE of a single-file checkpoint.
    pub fn load_checkpoint(
        checkpoint: &Checkpoint,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, EngineError> {
        let model = checkpoint
            .load_vae(device, dtype)
            .map_err(vae_load_failed)?;
        Ok(Self::new(model))
    }

    /// A built model, decoding in one piece on the CPU and in tiles that
    /// fit the free memory on a GPU.
    pub fn new(model: AutoencoderKLLTXVideo) -> Self {
        Self {
            model,
            tiling: None,
        }
    }

    /// Decodes in `tiling` wherever it runs.
    pub fn with_tiling(mut self, tiling: Tiling) -> Self {
        self.tiling = Some(tiling);
        self
    }

    /// The tiles a decode of latents `[frames, height, width]` uses now:
    /// the fixed ones if set; on a GPU, the largest whose estimated peak
    /// fits [`DECODE_SHARE_OF_FREE`] of the memory free (what the denoising
    /// loop left cached is handed back first), with 16 frames of 256x256
    /// pixels as the floor; on the CPU, one piece.
    pub fn tiling_for(&self, latent: [usize; 3]) -> Tiling {
        if let Some(tiling) = self.tiling {
            return tiling;
        }
        let device = self.model.device();
        if device.is_cpu() {
            return Tiling::default();
        }
        device.release_cached_memory();
        let Some((free, total)) = device.memory_info() else {
            return Tiling::default();
        };
        let budget = (free as f64 * DECODE_SHARE_OF_FREE) as usize;
        let tiling = self.model.tiling_within(latent, budget);
        log::info!(
            "VAE decode of {latent:?} latents on {} ({:.2} of {:.2} GiB free): tiles {tiling:?}",
            device.name(),
            free as f64 / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64,
        );
        tiling
    }
}

impl VideoCodec for LtxVae {
    fn latent_channels(&self) -> usize {
        self.model.config().latent_channels
    }

    fn compression(&self) -> (usize, usize) {
        self.model.compression()
    }

    fn timestep_conditioned(&self) -> bool {
        self.model.config().timestep_conditioning
    }

    fn latent_statistics(&self) -> Option<LatentStatistics> {
        let (mean, std) = self.model.latent_statistics();
        Some(LatentStatistics {
            mean: mean.to_vec(),
            std: std.to_vec(),
            scaling_factor: self.model.config().scaling_factor,
        })
    }

    fn encode_condition(
        &self,
        pixels: &[f32],
        frames: usize,
        height: usize,
        width: usize,
        noise: &[f32],
    ) -> Result<Vec<f32>, EngineError> {
        let [lf, lh, lw] = self
            .model
            .latent_size(frames, height, width)
            .map_err(vae_failed)?;
        let video =
            Volume::new([1, 3, frames, height, width], pixels.to_vec()).map_err(vae_failed)?;
        let noise = Volume::new([1, self.latent_channels(), lf, lh, lw], noise.to_vec())
            .map_err(vae_failed)?;
        let latents = self
            .model
            .encode_conditioning(&video, &noise)
            .map_err(vae_failed)?;
        Ok(latents.into_data())
    }

    fn decode(
        &self,
        latents: &[f32],
        dims: [usize; 4],
        timestep: f32,
        noise_scale: f32,
        noise: &[f32],
    ) -> Result<Vec<f32>, EngineError> {
        let [c, f, h, w] = dims;
        let z = Volume::new([1, c, f, h, w], latents.to_vec()).map_err(vae_failed)?;
        let noise = if noise.is_empty() {
            None
        } else {
            Some(Volume::new([1, c, f, h, w], noise.to_vec()).map_err(vae_failed)?)
        };
        let timestep = [timestep];
        let scale = [noise_scale];
        let cond = DecodeConditioning {
            timestep: &timestep,
            noise_scale: Some(&scale),
            noise: noise.as_ref(),
        };
        let tiling = self.tiling_for([f, h, w]);
        let video = self
            .model
            .decode_latents(&z, &cond, &tiling)
            .map_err(vae_failed)?;
        Ok(video.into_data())
    }
}

/// Tokenizer and T5 encoder as a [`PromptEncoder`].
pub struct T5Prompts {
    location: TextEncoderLocation,
    max_tokens: usize,
    encoder: TextEncoder,
    /// The encoder on the CPU, made when the GPU one ran out of memory
    /// (T5-XXL is 9.5 GB in bf16 beside the transformer's 4 GB: more than a
    /// 12 GB card holds). Every later prompt goes here.
    on_cpu: OnceLock<TextEncoder>,
}

/// The error for a failed encode on `device`: off the CPU, it says how to
/// go on without the GPU, as the transformer's errors do.
fn text_encoder_failed(device: &Device, e: T5Error) -> EngineError {
    let env = super::engine::DEVICE_ENV;
    if is_out_of_memory(&e) {
        EngineError::OutOfMemory(format!(
            "text encoder: {e}; close other GPU work or set {env}=cpu"
        ))
    } else if device.is_cpu() {
        EngineError::Failed(format!("text encoder: {e}"))
    } else {
        EngineError::Failed(format!(
            "text encoder: {e} (on {}; set {env}=cpu to run on the CPU instead)",
            device.name()
        ))
    }
}

fn is_out_of_memory(e: &T5Error) -> bool {
    matches!(
        e,
        T5Error::Tensor(TensorError::OutOfMemory { .. })
            | T5Error::Weights(WeightError::Tensor {
                source: TensorError::OutOfMemory { .. },
                ..
            })
    )
}

impl T5Prompts {
    /// `folder` is the model's location; its text encoder is found as
    /// [`text_encoder_location::locate`] finds it with no setting (for a
    /// diffusers folder, its `text_encoder/` and `tokenizer/`). The encoder
    /// runs on `device` in its compute dtype, as [`load_as`](Self::load_as)
    /// places it.
    pub fn load(folder: &Path, device: &Device, max_tokens: usize) -> Result<Self, EngineError> {
        Self::load_as(folder, device, device.compute_dtype(), max_tokens)
    }

    /// The encoder for a transformer on `device` in `dtype`: there in that
    /// dtype, except f16, which runs on the CPU in f32
    /// ([`t5::placement`] says why). Weights are read when the first
    /// prompt misses the embedding cache.
    pub fn load_as(
        folder: &Path,
        device: &Device,
        dtype: DType,
        max_tokens: usize,
    ) -> Result<Self, EngineError> {
        let location = text_encoder_location::locate(folder, None)
            .map_err(|e| EngineError::NoModel(format!("text encoder: {e}")))?;
        Self::from_location(&location, device, dtype, max_tokens)
    }

    /// The encoder at `location` (a T5 folder or file and its tokenizer),
    /// placed as [`load_as`](Self::load_as) says.
    pub fn from_location(
        location: &TextEncoderLocation,
        device: &Device,
        dtype: DType,
        max_tokens: usize,
    ) -> Result<Self, EngineError> {
        let (device, dtype) = t5::placement(device, dtype);
        let encoder = Self::encoder_at(location, &device, max_tokens)?.with_dtype(dtype);
        Ok(Self {
            location: location.clone(),
            max_tokens,
            encoder,
            on_cpu: OnceLock::new(),
        })
    }

    fn encoder_at(
        location: &TextEncoderLocation,
        device: &Device,
        max_tokens: usize,
    ) -> Result<TextEncoder, EngineError> {
        let tokenizer = T5Tokenizer::from_file(&location.tokenizer, max_tokens)
            .map_err(|e| EngineError::NoModel(format!("text encoder: {e}")))?;
        Ok(TextEncoder::new(
            tokenizer,
            &location.weights,
            device,
            ReleasePolicy::KeepLoaded,
        ))
    }

    /// Where the weights and tokenizer are.
    pub fn location(&self) -> &TextEncoderLocation {
        &self.location
    }

    /// The encoder, for its counters.
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// Embeddings of `prompt`: on the encoder's device, or on the CPU once
    /// that device has run out of memory for it.
    fn embed(&self, prompt: &str) -> Result<PromptEmbedding, EngineError> {
        let first = |out: Vec<PromptEmbedding>| {
            out.into_iter()
                .next()
                .ok_or_else(|| EngineError::Failed("text encoder returned nothing".into()))
        };
        if let Some(cpu) = self.on_cpu.get() {
            return cpu
                .encode(&[prompt])
                .map_err(|e| text_encoder_failed(cpu.device(), e))
                .and_then(first);
        }
        match self.encoder.encode(&[prompt]) {
            Ok(out) => first(out),
            Err(e) if is_out_of_memory(&e) && !self.encoder.device().is_cpu() => {
                log::warn!(
                    "the text encoder does not fit on {} ({e}); it runs on the CPU from now on",
                    self.encoder.device().name()
                );
                // Whatever it loaded before failing goes back to the card.
                self.encoder.release();
                self.encoder.device().release_cached_memory();
                let cpu = Self::encoder_at(&self.location, &Device::cpu(), self.max_tokens)?;
                let cpu = self.on_cpu.get_or_init(|| cpu);
                cpu.encode(&[prompt])
                    .map_err(|e| text_encoder_failed(cpu.device(), e))
                    .and_then(first)
            }
            Err(e) => Err(text_encoder_failed(self.encoder.device(), e)),
        }
    }
}

impl PromptEncoder for T5Prompts {
    fn device_load(&self, prompts: &[&str]) -> Option<(Device, usize)> {
        let device = self.encoder.device();
        if device.is_cpu() || self.on_cpu.get().is_some() || !self.encoder.would_load(prompts) {
            return None;
        }
        Some((device.clone(), self.encoder.weight_bytes()?))
    }

    fn would_load(&self, prompts: &[&str]) -> bool {
        match self.on_cpu.get() {
            Some(cpu) => cpu.would_load(prompts),
            None => self.encoder.would_load(prompts),
        }
    }

    fn release(&self) {
        self.encoder.release();
        if let Some(cpu) = self.on_cpu.get() {
            cpu.release();
        }
    }

    fn encode(&self, prompt: &str, max_tokens: usize) -> Result<EncodedPrompt, EngineError> {
        let tokenizer = self.encoder.tokenizer();
        if tokenizer.max_length() != max_tokens {
            return Err(EngineError::Failed(format!(
                "text encoder set up for {} tokens, asked for {max_tokens}",
                tokenizer.max_length()
            )));
        }
        let truncated = tokenizer.encode(prompt).truncated > 0;
        let embedding = self.embed(prompt)?;
        let dims = embedding.hidden.dims().to_vec();
        let (tokens, dim) = match dims[..] {
            [t, d] => (t, d),
            [1, t, d] => (t, d),
            _ => {
                return Err(EngineError::Failed(format!(
                    "text encoder output has shape {dims:?}"
                )))
            }
        };
        let embeds = embedding.hidden.to_vec_f32().map_err(failed)?;
        Ok(EncodedPrompt {
            embeds,
            mask: embedding.attention_mask.iter().map(|&m| m as f32).collect(),
            tokens,
            dim,
            truncated,
        })
    }
}
