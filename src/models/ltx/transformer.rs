//! `LTXVideoTransformer3DModel` (diffusers, 0.9.5+ architecture): patchified
//! latent tokens and projected captions in, velocity out. Submodules mirror
//! the reference modules so that weight names map one to one.

pub mod attention;
pub mod block;
pub mod config;
pub mod embeddings;
pub mod layer_skip;
pub mod rope;

use std::path::Path;
use std::sync::Arc;

pub use block::{BlockContext, TransformerBlock};
pub use config::TransformerConfig;
pub use embeddings::{AdaLayerNormSingle, CaptionProjection};
pub use layer_skip::{LayerSkip, SkipMode};
pub use rope::RotaryPosEmbed;

use crate::backend::Device;
use crate::models::nn::Linear;
use crate::tensor::{DType, Result, Tensor, TensorError};
use crate::weights::{VarBuilder, WeightError, WeightFiles};

/// The bias the reference adds to attention scores of padded prompt tokens.
const MASKED_BIAS: f32 = -10000.0;
/// `norm_out` is a LayerNorm without affine terms, eps fixed in the reference.
const NORM_OUT_EPS: f32 = 1e-6;

/// One forward pass's inputs, as the condition pipeline passes them.
#[derive(Clone, Copy)]
pub struct TransformerInputs<'a> {
    /// Latent tokens `[batch, tokens, in_channels]`.
    pub hidden_states: &'a Tensor,
    /// Text encoder output `[batch, text_tokens, caption_channels]`.
    pub encoder_hidden_states: &'a Tensor,
    /// `[batch, text_tokens]`, 1 for real tokens and 0 for padding.
    pub encoder_attention_mask: Option<&'a Tensor>,
    /// Timesteps in [0, 1000]: `[batch]`, `[batch, 1]`, or per token
    /// `[batch, tokens]`.
    pub timestep: &'a Tensor,
    /// `[batch, 3, tokens]`: frame position in seconds, y and x in pixels
    /// (conditioning tokens carry their own coordinates).
    pub video_coords: &'a Tensor,
}

/// Values computed once per forward pass before the blocks run; exposed so
/// that tests can check each stage and run blocks one at a time.
pub struct Prepared {
    pub hidden_states: Tensor,
    pub encoder_hidden_states: Tensor,
    pub encoder_key_bias: Option<Tensor>,
    /// `[batch, 1 or tokens, 6·dim]`
    pub temb: Tensor,
    /// `[batch, 1 or tokens, dim]`
    pub embedded_timestep: Tensor,
    pub rope_cos: Tensor,
    pub rope_sin: Tensor,
}

/// What every pass of one denoising job shares, on the model's device: made
/// once per job by [`LtxVideoTransformer3DModel::job_context`] rather than
/// once per pass.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// Projected captions `[batch, text_tokens, dim]`.
    pub encoder_hidden_states: Tensor,
    /// `[batch, text_tokens]` in the weights' dtype.
    pub encoder_key_bias: Option<Tensor>,
    /// `[batch or 1, tokens, dim]` in the weights' dtype.
    pub rope_cos: Tensor,
    pub rope_sin: Tensor,
    /// The timestep features' frequencies `[128]` (f32).
    timestep_freqs: Tensor,
}

impl JobContext {
    /// The job for samples `start..start + len` of its batch (views).
    pub fn rows(&self, start: usize, len: usize) -> Result<JobContext> {
        let rope = |t: &Tensor| {
            if t.dim(0)? == 1 {
                Ok(t.clone())
            } else {
                t.narrow(0, start, len)
            }
        };
        Ok(JobContext {
            encoder_hidden_states: self.encoder_hidden_states.narrow(0, start, len)?,
            encoder_key_bias: self
                .encoder_key_bias
                .as_ref()
                .map(|b| b.narrow(0, start, len))
                .transpose()?,
            rope_cos: rope(&self.rope_cos)?,
            rope_sin: rope(&self.rope_sin)?,
            timestep_freqs: self.timestep_freqs.clone(),
        })
    }
}

impl Prepared {
    pub fn block_context(&self) -> BlockContext<'_> {
        BlockContext {
            encoder_hidden_states: &self.encoder_hidden_states,
            temb: &self.temb,
            rotary: (&self.rope_cos, &self.rope_sin),
            encoder_key_bias: self.encoder_key_bias.as_ref(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LtxVideoTransformer3DModel {
    pub config: TransformerConfig,
    pub proj_in: Linear,
    /// `[2, dim]`: shift and scale of the output modulation.
    pub scale_shift_table: Tensor,
    pub time_embed: AdaLayerNormSingle,
    pub caption_projection: CaptionProjection,
    pub rope: RotaryPosEmbed,
    pub transformer_blocks: Vec<TransformerBlock>,
    pub proj_out: Linear,
    device: Device,
}

impl LtxVideoTransformer3DModel {
    /// Loads `dir/config.json` and the weights in `dir` (single file or
    /// sharded), converted to `dtype`, and checks that no tensor is left
    /// over.
    pub fn load(
        dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, WeightError> {
        let config = TransformerConfig::load(&dir.join("config.json"))?;
        let files = Arc::new(WeightFiles::open_dir(dir)?);
        let model = Self::new(config, &VarBuilder::new(files.clone(), dtype, device))?;
        files.check_all_used()?;
        Ok(model)
    }

    pub fn new(
        config: TransformerConfig,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        let dim = config.inner_dim();
        let transformer_blocks = (0..config.num_layers)
            .map(|i| TransformerBlock::new(&config, &vb.pp("transformer_blocks").pp(i)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            proj_in: Linear::new(config.in_channels, dim, &vb.pp("proj_in"))?,
            scale_shift_table: vb.get(&[2, dim], "scale_shift_table")?,
            time_embed: AdaLayerNormSingle::new(dim, &vb.pp("time_embed"))?,
            caption_projection: CaptionProjection::new(
                config.caption_channels,
                dim,
                &vb.pp("caption_projection"),
            )?,
            rope: RotaryPosEmbed::ltx(dim),
            transformer_blocks,
            proj_out: Linear::new(dim, config.out_channels, &vb.pp("proj_out"))?,
            device: vb.device().clone(),
            config,
        })
    }

    fn bad_input(what: String) -> TensorError {
        TensorError::invalid("ltx transformer", what)
    }

    /// Checks the inputs and computes everything the blocks share.
    pub fn prepare(&self, inputs: &TransformerInputs<'_>) -> Result<Prepared> {
        let hs = inputs.hidden_states.dims();
        let c = &self.config;
        if hs.len() != 3 || hs[2] != c.in_channels {
            return Err(Self::bad_input(format!(
                "hidden_states must be [batch, tokens, {}], got {hs:?}",
                c.in_channels
            )));
        }
        let (batch, tokens) = (hs[0], hs[1]);
        if inputs.video_coords.dims() != [batch, 3, tokens] {
            return Err(Self::bad_input(format!(
                "video_coords must be [{batch}, 3, {tokens}], got {:?}",
                inputs.video_coords.dims()
            )));
        }
        let count = inputs.timestep.elem_count();
        let per_sample = count / batch.max(1);
        if count != batch * per_sample || (per_sample != 1 && per_sample != tokens) {
            return Err(Self::bad_input(format!(
                "timestep must hold 1 or {tokens} values per sample, got {:?}",
                inputs.timestep.dims()
            )));
        }
        let job = self.job_context(
            inputs.encoder_hidden_states,
            inputs.encoder_attention_mask,
            &inputs.video_coords.to_vec_f32()?,
            batch,
        )?;
        let timestep = inputs.timestep.reshape(&[batch, per_sample])?;
        self.prepare_pass(&job, inputs.hidden_states, &timestep)
    }

    /// What every pass of a denoising job shares, made once: the projected
    /// captions and their padding bias from `encoder_hidden_states`
    /// `[batch, text_tokens, caption_channels]` and its mask, and the RoPE
    /// tables of host `coords` `[rope_batch, 3, tokens]` (one set of
    /// coordinates serves the whole batch when `rope_batch` is 1).
    pub fn job_context(
        &self,
        encoder_hidden_states: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        coords: &[f32],
        rope_batch: usize,
    ) -> Result<JobContext> {
        let c = &self.config;
        let enc = encoder_hidden_states.dims();
        if enc.len() != 3 || enc[2] != c.caption_channels {
            return Err(Self::bad_input(format!(
                "encoder_hidden_states must be [batch, text_tokens, {}], got {enc:?}",
                c.caption_channels
            )));
        }
        let batch = enc[0];
        if rope_batch != 1 && rope_batch != batch {
            return Err(Self::bad_input(format!(
                "coordinates for {rope_batch} samples, text for {batch}"
            )));
        }
        let encoder_key_bias = match encoder_attention_mask {
            None => None,
            Some(mask) => {
                if mask.dims() != [batch, enc[1]] {
                    return Err(Self::bad_input(format!(
                        "encoder_attention_mask must be [{batch}, {}], got {:?}",
                        enc[1],
                        mask.dims()
                    )));
                }
                let bias: Vec<f32> = mask
                    .to_vec_f32()?
                    .iter()
                    .map(|m| (1.0 - m) * MASKED_BIAS)
                    .collect();
                Some(Tensor::from_vec(bias, mask.dims(), &self.device)?)
            }
        };
        let dtype = self.proj_in.weight.activation_dtype();
        let (rope_cos, rope_sin) = self.rope.cos_sin_of(coords, rope_batch, &self.device)?;
        Ok(JobContext {
            encoder_hidden_states: self.caption_projection.forward(encoder_hidden_states)?,
            encoder_key_bias: encoder_key_bias.map(|b| b.to_dtype(dtype)).transpose()?,
            rope_cos: rope_cos.to_dtype(dtype)?,
            rope_sin: rope_sin.to_dtype(dtype)?,
            timestep_freqs: Tensor::from_vec(
                embeddings::timestep_freqs(),
                &[embeddings::TIMESTEP_CHANNELS / 2],
                &self.device,
            )?,
        })
    }

    /// One pass's own inputs on top of `job`: latent tokens `hidden_states`
    /// `[batch, tokens, in_channels]` and timesteps `[batch, 1 or tokens]`
    /// (f32), whose features are made here, on the device.
    pub fn prepare_pass(
        &self,
        job: &JobContext,
        hidden_states: &Tensor,
        timestep: &Tensor,
    ) -> Result<Prepared> {
        let c = &self.config;
        let hs = hidden_states.dims();
        if hs.len() != 3 || hs[2] != c.in_channels {
            return Err(Self::bad_input(format!(
                "hidden_states must be [batch, tokens, {}], got {hs:?}",
                c.in_channels
            )));
        }
        let (batch, tokens) = (hs[0], hs[1]);
        let text_batch = job.encoder_hidden_states.dim(0)?;
        let rope_dims = job.rope_cos.dims();
        if text_batch != batch
            || rope_dims[1] != tokens
            || (rope_dims[0] != 1 && rope_dims[0] != batch)
        {
            return Err(Self::bad_input(format!(
                "hidden_states {hs:?} do not fit the job (text for {text_batch}, rope {rope_dims:?})"
            )));
        }
        let (t_batch, per_sample) = match timestep.dims() {
            [b, n] if *b == batch && (*n == 1 || *n == tokens) => (*b, *n),
            dims => {
                return Err(Self::bad_input(format!(
                    "timestep must be [{batch}, 1 or {tokens}], got {dims:?}"
                )))
            }
        };
        let features = timestep
            .reshape(&[t_batch * per_sample])?
            .timestep_features(&job.timestep_freqs)?;
        let (temb, embedded) = self.time_embed.forward_features(&features)?;
        let dim = c.inner_dim();
        Ok(Prepared {
            hidden_states: self.proj_in.forward(hidden_states)?,
            encoder_hidden_states: job.encoder_hidden_states.clone(),
            encoder_key_bias: job.encoder_key_bias.clone(),
            temb: temb.reshape(&[t_batch, per_sample, 6 * dim])?,
            embedded_timestep: embedded.reshape(&[t_batch, per_sample, dim])?,
            rope_cos: job.rope_cos.clone(),
            rope_sin: job.rope_sin.clone(),
        })
    }

    /// Output norm, modulation and projection after the last block.
    pub fn finish(&self, hidden: &Tensor, prepared: &Prepared) -> Result<Tensor> {
        let e = &prepared.embedded_timestep;
        let (batch, t, dim) = (e.dim(0)?, e.dim(1)?, e.dim(2)?);
        // [batch, t, 2, dim] = table + embedded timestep, then shift, scale.
        let table = e
            .reshape(&[batch, t, 1, dim])?
            .add(&self.scale_shift_table)?;
        let shift = table.select(2, 0)?;
        let scale = table.select(2, 1)?;
        let hidden = hidden
            .layer_norm(None, None, NORM_OUT_EPS)?
            .modulate(&shift, &scale)?;
        self.proj_out.forward(&hidden)
    }

    /// The velocity prediction `[batch, tokens, out_channels]`.
    pub fn forward(&self, inputs: &TransformerInputs<'_>) -> Result<Tensor> {
        self.forward_skipping(inputs, None)
    }

    /// The velocity prediction with the blocks named by `skip` weakened
    /// for every sample of the batch (the perturbed pass of
    /// spatio-temporal guidance).
    pub fn forward_skipping(
        &self,
        inputs: &TransformerInputs<'_>,
        skip: Option<&LayerSkip>,
    ) -> Result<Tensor> {
        if let Some(skip) = skip {
            skip.check(self.transformer_blocks.len())
                .map_err(Self::bad_input)?;
        }
        let prepared = self.prepare(inputs)?;
        self.run_blocks(&prepared, skip)
    }

    /// The velocity of one pass of a denoising job (see [`Self::job_context`],
    /// [`Self::prepare_pass`]), with the blocks named by `skip` weakened.
    pub fn forward_in_job(
        &self,
        job: &JobContext,
        hidden_states: &Tensor,
        timestep: &Tensor,
        skip: Option<&LayerSkip>,
    ) -> Result<Tensor> {
        if let Some(skip) = skip {
            skip.check(self.transformer_blocks.len())
                .map_err(Self::bad_input)?;
        }
        let prepared = self.prepare_pass(job, hidden_states, timestep)?;
        self.run_blocks(&prepared, skip)
    }

    fn run_blocks(&self, prepared: &Prepared, skip: Option<&LayerSkip>) -> Result<Tensor> {
        let ctx = prepared.block_context();
        let mut hidden = prepared.hidden_states.clone();
        for (index, block) in self.transformer_blocks.iter().enumerate() {
            let mode = skip.and_then(|s| s.mode_for(index));
            hidden = block.forward_skipping(&hidden, &ctx, mode)?;
        }
        self.finish(&hidden, prepared)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}
