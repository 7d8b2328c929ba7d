//! What a job needs, host and device, phase by phase in the engine's
//! order (`LoadedModel` in `pipeline::engine`): the T5 encoder alone
//! (loaded for new prompts, then released), then the transformer and VAE,
//! which stay loaded through conditioning encodes, the denoising loop and
//! the decode. Every figure is a peak estimate in bytes from configs,
//! dtypes and the job's shape; none reads a weight.
//!
//! Memory-mapped weights: today every weight is read from its mapped file
//! and converted into memory of its own (anonymous on the host, device
//! memory on a GPU), so the mapped pages are page cache that the kernel
//! may drop at any time: they are not counted, and `MemAvailable` already
//! counts them as reclaimable. Where a backend computes from the mapped
//! pages themselves ([`WeightResidence::Mapped`]), those pages are still
//! reclaimable, but every denoising step touches every one of them: a
//! mapping larger than the memory available would be read from disk again
//! on every step (hours, not minutes). So mapped weights count in full, as
//! weights of their own do; they are not counted twice, because page cache
//! they already fill is part of `MemAvailable` on the other side of the
//! comparison.

use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::vae::{self, Tiling, VaeConfig};
use crate::models::t5::T5Config;
use crate::tensor::DType;

use super::sizes;

/// Where a model's weights live while it computes on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightResidence {
    /// Converted into memory of their own, in the compute dtype.
    Owned,
    /// Computed from the mapped file pages, at their stored size.
    Mapped,
}

/// The three models' sizes, from their configs.
#[derive(Clone, Debug)]
pub struct ModelSizes {
    pub transformer: TransformerConfig,
    pub vae: VaeConfig,
    pub t5: T5Config,
    pub transformer_params: usize,
    pub vae_params: usize,
    pub t5_params: usize,
    /// Bytes a stored parameter takes in the files (2 for the bf16
    /// releases), for [`WeightResidence::Mapped`].
    pub stored_bytes_per_param: usize,
}

impl ModelSizes {
    /// Sizes of models built from these configs; `stored` is the weights'
    /// dtype in their files.
    pub fn from_configs(
        transformer: TransformerConfig,
        vae: VaeConfig,
        t5: T5Config,
        stored: DType,
    ) -> Result<Self, String> {
        let vae_params = sizes::vae_params(&vae)
            .ok_or_else(|| "the VAE config describes a model GenFX does not build".to_string())?;
        Ok(Self {
            transformer_params: sizes::transformer_params(&transformer),
            t5_params: sizes::t5_params(&t5),
            vae_params,
            transformer,
            vae,
            t5,
            stored_bytes_per_param: stored.size_in_bytes(),
        })
    }
}

/// The shape of one job, as the engine will run it.
#[derive(Clone, Debug)]
pub struct JobShape {
    pub width: usize,
    pub height: usize,
    /// Frames the model generates (8k+1, context included).
    pub frames: usize,
    /// Samples in the largest transformer call: 2 with classifier-free
    /// guidance (the negative and positive prompts batched), else 1.
    pub batch: usize,
    /// Frames of each clip the VAE encodes to condition on.
    pub condition_frames: Vec<usize>,
    /// Whether the prompts miss the embedding cache, so T5 loads.
    pub encodes_prompts: bool,
}

/// Where the models run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Everything on the host, in `dtype`.
    Cpu {
        dtype: DType,
        weights: WeightResidence,
    },
    /// The transformer and VAE on a GPU in `dtype` (the VAE in f32 on an
    /// f16 card); T5 there too unless `t5_on_host`.
    Gpu { dtype: DType, t5_on_host: bool },
}

/// One figure of an estimate and the phase that sets it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub bytes: u64,
    pub phase: &'static str,
}

impl Peak {
    fn of(phases: &[(&'static str, f64)]) -> Self {
        let (phase, bytes) =
            phases
                .iter()
                .copied()
                .fold(("nothing", 0.0), |a, b| if b.1 > a.1 { b } else { a });
        Self {
            bytes: bytes.ceil() as u64,
            phase,
        }
    }
}

/// Peak host and device memory of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub host: Peak,
    /// The transformer and VAE's phases on the device; `None` on the CPU.
    pub device: Option<Peak>,
    /// T5's phase on the device, alone there (0 when it runs on the host,
    /// or the prompts are cached). It never refuses a job: T5 moves to
    /// the CPU when the card has no room for it.
    pub device_t5: u64,
    /// Bytes of transformer and VAE weights, on the device that runs them.
    pub pipeline_weights: u64,
    /// Bytes of T5 weights where it runs.
    pub t5_weights: u64,
}

/// Transformer activations alive at a call's peak, in `[batch, tokens,
/// dim]` volumes of the compute dtype: the residual stream and its
/// normalised copy, q, k, v and the attention output, the feed-forward's
/// 4·dim hidden and its GELU, the modulation terms, and what the
/// allocator holds between them. Attention itself is fused (flash on
/// GPUs, blocked on the CPU), so no tokens × tokens matrix is held.
/// Calibrated on the dry run of the full-size shot (tests/gpu_memory_plan.rs,
/// bf16, 6144 tokens): 7.15e9 bytes at the denoising peak over 6.34e9 of
/// weights, about 24.5 such volumes with the tables below; 28 keeps a margin.
const DENOISE_VOLUMES: f64 = 28.0;

/// T5 activations at a layer's peak in `[tokens, d_model]` volumes, and in
/// `[tokens, d_ff]` volumes for the gated feed-forward.
const T5_MODEL_VOLUMES: f64 = 8.0;
const T5_FF_VOLUMES: f64 = 3.0;

/// T5's weights and activations on a GPU in `dtype`.
pub fn t5_device_bytes(sizes: &ModelSizes, dtype: DType) -> u64 {
    ((sizes.t5_params as f64) * bytes(dtype) + t5_activations(&sizes.t5, dtype)).ceil() as u64
}

/// LTX-Video's prompt length.
const TEXT_TOKENS: usize = crate::tokenizer::LTX_MAX_SEQUENCE_LENGTH;

fn bytes(dtype: DType) -> f64 {
    dtype.size_in_bytes() as f64
}

/// T5's activations for one prompt in `dtype`, with its f32 position bias.
fn t5_activations(t5: &T5Config, dtype: DType) -> f64 {
    let l = TEXT_TOKENS as f64;
    l * (T5_MODEL_VOLUMES * t5.d_model as f64 + T5_FF_VOLUMES * t5.d_ff as f64) * bytes(dtype)
        + 3.0 * t5.num_heads as f64 * l * l * 4.0
}

/// The denoising loop's activations: the largest transformer call, the
/// job's RoPE tables (f32 cos and sin per token), the prompts' keys and
/// values for cross-attention, and the f32 latents, velocities and noise
/// the sampler keeps.
fn denoise_activations(sizes: &ModelSizes, job: &JobShape, dtype: DType) -> f64 {
    let c = &sizes.transformer;
    let tokens = latent_tokens(job) as f64;
    let dim = c.inner_dim() as f64;
    let batch = job.batch.max(1) as f64;
    let block = DENOISE_VOLUMES * batch * tokens * dim * bytes(dtype);
    let rope = 2.0 * tokens * dim * 4.0;
    let text = 2.0 * batch * TEXT_TOKENS as f64 * (c.caption_channels as f64 + dim) * bytes(dtype)
        + 2.0 * c.num_layers as f64 * batch * TEXT_TOKENS as f64 * dim * bytes(dtype);
    let latents = 8.0 * tokens * c.in_channels as f64 * 4.0;
    block + rope + text + latents
}

fn latent(job: &JobShape) -> [usize; 3] {
    [
        (job.frames.max(1) - 1) / 8 + 1,
        job.height / 32,
        job.width / 32,
    ]
}

fn latent_tokens(job: &JobShape) -> usize {
    latent(job).iter().product()
}

/// The largest conditioning encode.
fn encode_activations(sizes: &ModelSizes, job: &JobShape, dtype: DType) -> f64 {
    job.condition_frames
        .iter()
        .map(|&f| vae::encode_bytes_of(&sizes.vae, dtype, [f, job.height, job.width]))
        .fold(0.0, f64::max)
}

/// A decode in `tiling`.
fn decode_activations(sizes: &ModelSizes, job: &JobShape, dtype: DType, tiling: &Tiling) -> f64 {
    let cost = vae::decode_cost_of(&sizes.vae, dtype);
    let ratios = sizes
        .vae
        .compression()
        .map(|(s, t)| [s, t])
        .unwrap_or([32, 8]);
    vae::decode_bytes(&cost, tiling, latent(job), ratios)
}

/// What the host holds whatever runs the models: the decoded video in f32,
/// the frames cut from it for the shot, and the conditioning clips.
fn host_buffers(job: &JobShape) -> f64 {
    let plane = (3 * job.width * job.height) as f64 * 4.0;
    let conditions: usize = job.condition_frames.iter().sum();
    2.0 * plane * job.frames as f64 + 2.0 * plane * conditions as f64
}

/// The job's peaks, given what the engine has loaded already.
/// `pipeline_resident`: the transformer and VAE are loaded from an earlier
/// job (on the host for a CPU job; a GPU job's stay on the card, where the
/// T5 phase sends them away when it must).
pub fn estimate(
    sizes: &ModelSizes,
    job: &JobShape,
    placement: Placement,
    pipeline_resident: bool,
) -> Estimate {
    let t5_act32 = t5_activations(&sizes.t5, DType::F32);
    match placement {
        Placement::Cpu { dtype, weights } => {
            let per_param = match weights {
                WeightResidence::Owned => bytes(dtype),
                WeightResidence::Mapped => sizes.stored_bytes_per_param as f64,
            };
            let pipeline = (sizes.transformer_params + sizes.vae_params) as f64 * per_param;
            // T5 computes in f32 on the CPU (see `t5::placement`) but, like
            // the pipeline, from its weights as they are held: the mapped
            // 16-bit pages, widened per op. Counting them at 4 bytes refused
            // the full-size CPU job of `bench memory` in a 16 GiB cgroup
            // (19.7 GB estimated; it peaks at 10.7 GB). A CPU job makes no
            // room for T5: a loaded pipeline stays beside it.
            let t5_weights = sizes.t5_params as f64 * per_param;
            let t5 = if job.encodes_prompts {
                t5_weights + t5_act32 + if pipeline_resident { pipeline } else { 0.0 }
            } else {
                0.0
            };
            let denoise = pipeline
                + denoise_activations(sizes, job, dtype).max(encode_activations(sizes, job, dtype));
            // the CPU decodes in one piece (`LtxVae::tiling_for`)
            let decode = pipeline + decode_activations(sizes, job, dtype, &Tiling::default());
            let buffers = host_buffers(job);
            Estimate {
                host: Peak::of(&[
                    ("encoding the prompt with T5", t5 + buffers),
                    ("denoising", denoise + buffers),
                    ("decoding with the VAE", decode + buffers),
                ]),
                device: None,
                device_t5: 0,
                pipeline_weights: pipeline as u64,
                t5_weights: t5_weights as u64,
            }
        }
        Placement::Gpu { dtype, t5_on_host } => {
            let vae_dtype = match dtype {
                DType::F16 => DType::F32,
                other => other,
            };
            let pipeline = sizes.transformer_params as f64 * bytes(dtype)
                + sizes.vae_params as f64 * bytes(vae_dtype);
            let t5_device = t5_device_bytes(sizes, dtype) as f64;
            // `make_room` sends the transformer and VAE away for T5 on a
            // card without room for all three: T5 alone sets this phase.
            let t5 = if job.encodes_prompts && !t5_on_host {
                t5_device
            } else {
                0.0
            };
            let denoise = pipeline
                + denoise_activations(sizes, job, dtype)
                    .max(encode_activations(sizes, job, vae_dtype));
            // tiles shrink to fit what is free (`LtxVae::tiling_for`): the
            // smallest set the decode's floor
            let floor = *vae::tiling_ladder().last().expect("the ladder has rungs");
            let decode = pipeline + decode_activations(sizes, job, vae_dtype, &floor);
            let buffers = host_buffers(job);
            // T5 on the host beside a GPU job (f16 cards) computes in f32;
            // its weights are counted at 4 bytes a parameter, an upper bound
            // where they are 16-bit pages read from the map.
            let host_t5 = if job.encodes_prompts && t5_on_host {
                (sizes.t5_params * 4) as f64 + t5_act32
            } else {
                0.0
            };
            Estimate {
                host: Peak::of(&[
                    ("holding the frames", buffers),
                    ("encoding the prompt with T5 on the CPU", host_t5 + buffers),
                ]),
                device: Some(Peak::of(&[
                    ("denoising", denoise),
                    ("decoding with the VAE", decode),
                ])),
                device_t5: t5.ceil() as u64,
                pipeline_weights: pipeline as u64,
                t5_weights: if t5_on_host {
                    (sizes.t5_params * 4) as u64
                } else {
                    (sizes.t5_params as f64 * bytes(dtype)) as u64
                },
            }
        }
    }
}
