//! The LTX-Video [`ShotEngine`]: a request becomes a pipeline run on the
//! model folder it names. Lengths and sizes the model cannot do are rounded
//! to ones it can, and the user is told.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::adapters::{LtxTransformer, LtxVae, T5Prompts};
use super::components::PromptEncoder;
use super::long_shot::{self, plan::WindowSize};
use super::ltx::{Condition, LtxPipeline, RunParams, Sampling, SpatioTemporalGuidance};
use super::memory_guard::{self, ModelSizes, Resident};
use super::model_folder::{ModelFolder, Variant};
use super::plan::{plan, JobShape as PlanShape};
use super::registry;
use super::text_encoder_location;
use super::two_pass::{self, Passes, TwoPass, UpsamplerSlot};
use crate::backend::Device;
use crate::engine::{
    Clip, CollectFrames, EngineError, Frame, FrameSink, Job, JobObserver, Quality, Shot,
    ShotEngine, ShotRequest, Stage,
};
use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::{LayerSkip, SkipMode};
use crate::sampler::noise::PhiloxNoise;
use crate::sampler::schedule::{
    linear_quadratic_timesteps, Schedule, ScheduleSource, DISTILLED_TIMESTEPS,
};
use crate::tensor::DType;
use crate::tokenizer::LTX_MAX_SEQUENCE_LENGTH;

/// Everything loaded from one model folder, shared process-wide.
///
/// Order of a job on a GPU: the prompts are encoded first, then the text
/// encoder is released, and only then are the transformer and VAE loaded
/// (the first job) or used where they stayed (later jobs): T5-XXL (9.5 GB
/// in bf16) never shares the card with their 6.4 GB unless it has room
/// for both. The transformer and VAE stay on the device from job to job;
/// when a new prompt needs T5 on a card too small for all three, they
/// leave it for the encode and are read again after
/// ([`LoadedModel::make_room`]).
pub struct LoadedModel {
    pub folder: ModelFolder,
    pub prompts: Arc<dyn PromptEncoder>,
    /// Transformer depth, which picks the spatio-temporal guidance recipe.
    pub transformer_layers: usize,
    device: Device,
    dtype: DType,
    /// The transformer and VAE, loaded on first use.
    pipeline: parking_lot::Mutex<Option<Arc<LtxPipeline>>>,
    /// The latent upsampler of the distilled two-pass recipe, where the
    /// model has one; loaded on first use.
    pub upsampler: UpsamplerSlot,
    /// Where the T5 encoder's weights are (a folder or one file), for the
    /// memory guard's sizes.
    t5_weights: PathBuf,
}

impl LoadedModel {
    /// The transformer and VAE on the device, loaded if they are not.
    pub fn pipeline(&self) -> Result<Arc<LtxPipeline>, EngineError> {
        let mut slot = self.pipeline.lock();
        if let Some(pipeline) = slot.as_ref() {
            return Ok(pipeline.clone());
        }
        let root = &self.folder.root;
        // The VAE decodes beside the transformer; an f16 card keeps it
        // in f32, as nothing bounds its activations to f16's range.
        let vae_dtype = self.vae_dtype();
        let (transformer, vae) = match &self.folder.checkpoint {
            Some(checkpoint) => (
                LtxTransformer::load_checkpoint(checkpoint, &self.device, self.dtype)?,
                LtxVae::load_checkpoint(checkpoint, &self.device, vae_dtype)?,
            ),
            None => (
                LtxTransformer::load(&root.join("transformer"), &self.device, self.dtype)?,
                LtxVae::load_on(&root.join("vae"), &self.device, vae_dtype)?,
            ),
        };
        let pipeline = Arc::new(LtxPipeline {
            transformer: Arc::new(transformer),
            vae: Arc::new(vae),
        });
        *slot = Some(pipeline.clone());
        Ok(pipeline)
    }

    /// The VAE's dtype, also the latent upsampler's: an f16 card keeps
    /// them in f32, as nothing bounds their activations to f16's range.
    fn vae_dtype(&self) -> DType {
        match self.dtype {
            DType::F16 => DType::F32,
            other => other,
        }
    }

    /// The latent upsampler on the device, loaded if it is not; `None` when
    /// the model has none.
    pub fn upscaler(&self) -> Result<Option<Arc<super::upsample::DeviceUpscaler>>, EngineError> {
        self.upsampler.get(&self.device, self.vae_dtype())
    }

    /// Whether the transformer and VAE are loaded.
    pub fn pipeline_loaded(&self) -> bool {
        self.pipeline.lock().is_some()
    }

    /// Refuses `job` when it would not fit the memory available, host or
    /// device ([`memory_guard`]), before anything is loaded for it.
    fn check_memory(&self, job: &memory_guard::JobShape) -> Result<(), EngineError> {
        let sizes = ModelSizes::from_folder(&self.folder, &self.t5_weights)?;
        let device_free = (!self.device.is_cpu())
            .then(|| {
                self.device.release_cached_memory();
                self.device.memory_info().map(|(free, _)| free as u64)
            })
            .flatten();
        let resident = Resident {
            pipeline: self.pipeline_loaded(),
            t5_on_host: false,
        };
        let available = memory_guard::Available {
            device_free,
            host: memory_guard::host_available(),
            enforce: memory_guard::enforced(),
        };
        let est = memory_guard::check(&sizes, job, &self.device, self.dtype, resident, &available)?;
        log::info!(
            "memory guard: {}x{}x{} needs about {:.2} GB of host memory{}; {:.2} GB available{}",
            job.width,
            job.height,
            job.frames,
            est.host.bytes as f64 / 1e9,
            est.device
                .map(|d| format!(
                    " and {:.2} GB on {}",
                    d.bytes as f64 / 1e9,
                    self.device.name()
                ))
                .unwrap_or_default(),
            available.host.map_or(f64::NAN, |h| h.bytes as f64 / 1e9),
            device_free
                .map(|f| format!(", {:.2} GB free on the device", f as f64 / 1e9))
                .unwrap_or_default(),
        );
        Ok(())
    }

    /// Before the text encoder loads `bytes` of weights onto `device`: when
    /// that is where the transformer and VAE are and the memory free beside
    /// them is short of it (with a margin for the encode's activations),
    /// they are dropped and read again after the encode. A job still
    /// holding them keeps them until it ends.
    fn make_room(&self, device: &Device, bytes: usize) {
        if !device.same(&self.device) || !self.pipeline_loaded() {
            return;
        }
        device.release_cached_memory();
        let Some((free, _)) = device.memory_info() else {
            return;
        };
        let needed = bytes + bytes / 20 + (256 << 20);
        if free >= needed {
            return;
        }
        log::info!(
            "{:.2} GiB free on {} and the text encoder needs about {:.2}: the transformer and \
             VAE leave the card while it encodes and are read again after",
            free as f64 / (1u64 << 30) as f64,
            device.name(),
            needed as f64 / (1u64 << 30) as f64
        );
        let dropped = self.pipeline.lock().take();
        drop(dropped);
        self.upsampler.unload();
        device.release_cached_memory();
    }
}

/// Environment variable naming where the transformer runs: `cpu`, `cuda`
/// or `cuda:N`. Unset (or `auto`) means the first GPU that can be used, else
/// the CPU.
pub const DEVICE_ENV: &str = "GENFX_DEVICE";

/// What [`DEVICE_ENV`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(Option<usize>),
}

impl DeviceChoice {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "" | "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(None)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(|n| Self::Cuda(Some(n)))
                .ok_or_else(|| {
                    format!("{DEVICE_ENV}={text:?}: expected cpu, cuda, cuda:N or auto")
                }),
        }
    }
}

/// The device the transformer of this process runs on, chosen once: a GPU
/// falls back to the CPU (said once in the log) when none can be used. The
/// text encoder (see [`T5Prompts::load_as`]) and the VAE run there too.
pub fn transformer_device() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let asked = std::env::var(DEVICE_ENV).unwrap_or_default();
            let choice = DeviceChoice::parse(&asked).unwrap_or_else(|e| {
                log::warn!("{e}; choosing the device automatically");
                DeviceChoice::Auto
            });
            let device = match choice {
                DeviceChoice::Cpu => Device::cpu(),
                DeviceChoice::Auto => crate::backend::cuda::job_device(None),
                DeviceChoice::Cuda(ordinal) => crate::backend::cuda::job_device(ordinal),
            };
            log::info!("the LTX transformer runs on {}", device.name());
            device
        })
        .clone()
}

/// Generates shots with LTX-Video on one device.
pub struct LtxEngine {
    device: Device,
    dtype: DType,
}

impl LtxEngine {
    /// The transformer on `device`, in its compute dtype.
    pub fn new(device: Device) -> Self {
        let dtype = device.compute_dtype();
        Self { device, dtype }
    }

    /// The transformer on `device` with weights in `dtype` (f32 on a GPU
    /// gives the CPU's numbers to rounding, at a cost in speed and memory).
    pub fn with_dtype(device: Device, dtype: DType) -> Self {
        Self { device, dtype }
    }

    /// The folder's entry for this device: the text encoder set up (its
    /// weights read for the first new prompt), the transformer's config
    /// read; the transformer and VAE are loaded after the prompts are
    /// encoded ([`LoadedModel::pipeline`]).
    fn load(
        &self,
        spec: &Path,
        text_encoder: Option<&Path>,
    ) -> Result<Arc<LoadedModel>, EngineError> {
        let folder = ModelFolder::open_with(spec, text_encoder)
            .map_err(|e| EngineError::NoModel(e.to_string()))?;
        let root: PathBuf = folder.root.clone();
        let location = text_encoder_location::locate(&root, text_encoder)
            .map_err(|e| EngineError::NoModel(format!("text encoder: {e}")))?;
        // One copy of the weights per device they live on, and per text
        // encoder.
        let variant = format!(
            "{} {} {}",
            self.device.name(),
            self.dtype,
            location.weights.display()
        );
        let upsampler = two_pass::find_for_spec(spec, &root);
        registry::shared_as(&root, &variant, || {
            let transformer_layers = match &folder.checkpoint {
                Some(checkpoint) => checkpoint.transformer.num_layers,
                None => {
                    let config = root.join("transformer").join("config.json");
                    TransformerConfig::load(&config)
                        .map_err(|e| EngineError::NoModel(format!("transformer: {e}")))?
                        .num_layers
                }
            };
            // The text encoder runs on the transformer's device, in its
            // dtype (on the CPU in f32 for an f16 card: T5 overflows f16);
            // its weights are read for a job's new prompts and released
            // once they are encoded.
            let prompts = T5Prompts::from_location(
                &location,
                &self.device,
                self.dtype,
                LTX_MAX_SEQUENCE_LENGTH,
            )?;
            log::info!(
                "the T5 text encoder ({}, tokenizer {}) runs on {} in {}",
                location.weights.display(),
                location.tokenizer.display(),
                prompts.encoder().device().name(),
                prompts.encoder().dtype()
            );
            Ok(LoadedModel {
                folder,
                prompts: Arc::new(prompts),
                transformer_layers,
                device: self.device.clone(),
                dtype: self.dtype,
                pipeline: parking_lot::Mutex::new(None),
                upsampler: UpsamplerSlot::new(upsampler),
                t5_weights: location.weights.clone(),
            })
        })
    }
}

/// The nearest multiple of `m` (at least `m`).
fn snap(value: u32, m: u32) -> u32 {
    (((value + m / 2) / m) * m).max(m)
}

/// Encodes a job's prompts (and the negative prompt, when guided) with T5,
/// telling the user of any that was cut, then sends T5 away and loads the
/// transformer and VAE. `all` is every text the job encodes, for the room
/// T5 needs on its device.
#[allow(clippy::type_complexity)]
fn encode_prompts(
    model: &LoadedModel,
    prompts: &[&str],
    negative: Option<&str>,
    all: &[&str],
    observer: &dyn JobObserver,
) -> Result<
    (
        Vec<super::components::EncodedPrompt>,
        Option<super::components::EncodedPrompt>,
        Arc<LtxPipeline>,
    ),
    EngineError,
> {
    if let Some((device, bytes)) = model.prompts.device_load(all) {
        model.make_room(&device, bytes);
    }
    let mut encoded = Vec::with_capacity(prompts.len());
    for text in prompts {
        let e = model.prompts.encode(text, LTX_MAX_SEQUENCE_LENGTH)?;
        if e.truncated {
            let which = if prompts.len() > 1 { "a" } else { "the" };
            observer.notice(&format!(
                "{which} prompt is longer than {LTX_MAX_SEQUENCE_LENGTH} tokens; the end was cut"
            ));
        }
        encoded.push(e);
    }
    let negative = match negative {
        Some(text) => {
            let n = model.prompts.encode(text, LTX_MAX_SEQUENCE_LENGTH)?;
            if n.truncated {
                observer.notice("the negative prompt was cut to fit");
            }
            Some(n)
        }
        None => None,
    };
    // T5-XXL is 19 GB in f32 (9.5 GB in bf16): it should not sit in
    // memory, host or GPU, through denoising. Embeddings stay cached, so an
    // unchanged prompt does not bring it back.
    model.prompts.release();
    // The transformer and VAE, loaded (the first job) now that T5 has left
    // the device.
    let pipeline = model.pipeline()?;
    observer.progress(Stage::EncodingPrompt, 1, 1);
    if observer.should_abort() {
        return Err(EngineError::Aborted);
    }
    Ok((encoded, negative, pipeline))
}

/// The model's latent upsampler for a two-pass shot, or `None` with a
/// notice: a file that is not a usable upsampler costs the second pass, not
/// the shot.
fn usable_upscaler(
    model: &LoadedModel,
    observer: &dyn JobObserver,
) -> Option<Arc<super::upsample::DeviceUpscaler>> {
    match model.upscaler() {
        Ok(Some(upscaler)) => Some(upscaler),
        failed => {
            let why = match failed {
                Err(EngineError::NoModel(why)) => why,
                Err(e) => e.to_string(),
                _ => "it is no longer there".into(),
            };
            let said =
                format!("single pass after all: the latent upsampler could not be used: {why}");
            log::warn!("{said}");
            observer.notice(&said);
            None
        }
    }
}

/// LTX-Video's spatio-temporal guidance recipe for a dev checkpoint with
/// `num_layers` transformer blocks: the published 2B configs (0.9.1 to
/// 0.9.6) skip block 19 of 28 in `attention_values` mode at scale 1 with
/// rescale 0.7. The 13B recipe varies all of this over the schedule for
/// its two-pass upscaling pipeline; single-pass we keep its most used
/// block (28 of 48) in the 2B recipe. Other depths skip the block at the
/// same relative depth.
pub fn stg_recipe(num_layers: usize) -> SpatioTemporalGuidance {
    let block = match num_layers {
        28 => 19,
        48 => 28,
        n => n * 19 / 28,
    };
    SpatioTemporalGuidance {
        scale: 1.0,
        skip: LayerSkip {
            mode: SkipMode::AttentionValues,
            blocks: vec![block],
        },
    }
}

/// The guidance rescale that goes with [`stg_recipe`].
const STG_RESCALE: f32 = 0.7;

/// The sampling a Quality preset means for this kind of checkpoint;
/// `latent_tokens` (latent frames × height × width) sets the shift of
/// configs with dynamic shifting. Dev checkpoints get spatio-temporal
/// guidance except at Draft, where its third transformer pass per step
/// costs more than it gives.
pub fn sampling_for(
    folder: &ModelFolder,
    quality: Quality,
    guidance: f32,
    latent_tokens: usize,
    transformer_layers: usize,
) -> Result<Sampling, EngineError> {
    let config = &folder.scheduler;
    let train = config.num_train_timesteps;
    let lq = |n: usize| ScheduleSource::Timesteps(linear_quadratic_timesteps(n, train));
    let (source, distilled) = match (folder.variant, quality) {
        (_, Quality::Steps(0)) => {
            return Err(EngineError::InvalidRequest(
                "Steps must be at least 1".into(),
            ))
        }
        (_, Quality::Steps(n)) if n > MAX_STEPS => {
            return Err(EngineError::InvalidRequest(format!(
                "{n} steps asked for; at most {MAX_STEPS} (the dev schedule's own presets use 20 to 50)"
            )))
        }
        (_, Quality::Steps(1)) if config.shift_terminal.is_some() => {
            return Err(EngineError::InvalidRequest(
                "this model's schedule needs at least 2 steps".into(),
            ))
        }
        (_, Quality::Steps(n)) => (lq(n as usize), folder.variant == Variant::Distilled),
        // The distilled models are trained for one timestep list.
        (Variant::Distilled, _) => (
            ScheduleSource::Timesteps(DISTILLED_TIMESTEPS.to_vec()),
            true,
        ),
        (Variant::Dev, Quality::Draft) => (lq(20), false),
        (Variant::Dev, Quality::Standard) => (lq(30), false),
        (Variant::Dev, Quality::High) => (lq(50), false),
    };
    if !guidance.is_finite() || guidance < 0.0 {
        return Err(EngineError::InvalidRequest(format!(
            "guidance {guidance} must be a number of at least 0"
        )));
    }
    let stg = (!distilled && quality != Quality::Draft).then(|| stg_recipe(transformer_layers));
    let mu = config
        .use_dynamic_shifting
        .then(|| config.calculate_shift(latent_tokens));
    let schedule = Schedule::build(config, &source, mu)
        .map_err(|e| EngineError::NoModel(format!("scheduler: {e}")))?;
    Ok(Sampling {
        schedule,
        train_timesteps: train as f32,
        // Distilled checkpoints are guidance-distilled: CFG or STG would
        // multiply the cost and over-saturate.
        guidance_scale: if distilled { 1.0 } else { guidance },
        guidance_rescale: if stg.is_some() { STG_RESCALE } else { 0.0 },
        stg,
        image_cond_noise_scale: if distilled { 0.0 } else { 0.025 },
        decode_timestep: 0.05,
        decode_noise_scale: 0.025,
    })
}

fn clip_pixels(frames: &[Frame], width: u32, height: u32) -> Result<Vec<f32>, EngineError> {
    let plane = (width * height) as usize;
    let mut out = vec![0.0f32; 3 * plane * frames.len()];
    let per_channel = plane * frames.len();
    for (f, frame) in frames.iter().enumerate() {
        if frame.width != width || frame.height != height || frame.rgb.len() != 3 * plane {
            return Err(EngineError::InvalidRequest(format!(
                "a context frame is {}x{}, the working resolution is {width}x{height}",
                frame.width, frame.height
            )));
        }
        for p in 0..plane {
            for c in 0..3 {
                let v = frame.rgb[p * 3 + c];
                let v = if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                out[c * per_channel + f * plane + p] = v * 2.0 - 1.0;
            }
        }
    }
    Ok(out)
}

/// Requests past these are refused rather than tried: LTX-Video is trained
/// up to about 1280 pixels and a few hundred frames, and memory runs out
/// long before a useful result beyond them. The frame limits match the
/// plugin's Length and Context frames ranges; shots past one pass of the
/// model (257 frames) are made in windows (`long_shot`), up to a minute at
/// 24 fps.
pub const MAX_SIDE: u32 = 4096;
pub const MAX_NEW_FRAMES: u32 = 1441;
pub const MAX_CONTEXT_FRAMES: usize = 257;
/// Denoising steps past this add time, not quality; it matches the
/// plugin's Steps range.
pub const MAX_STEPS: u32 = 500;

/// Which end of a clip touches the new frames.
#[derive(Clone, Copy)]
enum Seam {
    /// The clip's last frames lead into the shot.
    End,
    /// The clip's first frames follow the shot.
    Start,
}

/// The `used` frames of `clip` at its `seam`, placed at `frame_index`.
fn condition(
    clip: &Clip,
    seam: Seam,
    (frame_index, used): (usize, usize),
    request: &ShotRequest,
    what: &str,
    observer: &dyn JobObserver,
) -> Result<Condition, EngineError> {
    let available = clip.frames.len();
    if used != available {
        observer.notice(&format!(
            "the {what} has {available} frames; LTX-Video takes 8k+1 of at most \
             {MAX_CONTEXT_FRAMES}, so {used} are used"
        ));
    }
    let frames = match seam {
        Seam::End => &clip.frames[available - used..],
        Seam::Start => &clip.frames[..used],
    };
    Ok(Condition {
        pixels: clip_pixels(frames, request.width, request.height)?,
        frames: used,
        frame_index,
        strength: request.strength.clamp(0.0, 1.0),
    })
}

/// How many frames of `clip` the plan may place: all, up to the limit.
fn frames_of(clip: &Clip, what: &str) -> Result<usize, EngineError> {
    if clip.frames.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "the {what} has no frames"
        )));
    }
    Ok(clip.frames.len().min(MAX_CONTEXT_FRAMES))
}

impl ShotEngine for LtxEngine {
    fn generate(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
    ) -> Result<Shot, EngineError> {
        CollectFrames::shot_of(self, request, observer)
    }

    fn generate_into(
        &self,
        request: &ShotRequest,
        observer: &dyn JobObserver,
        sink: &dyn FrameSink,
        windows: Option<&Path>,
    ) -> Result<(), EngineError> {
        let original = request;
        // The studio's policy sees the prompt before any work.
        crate::provenance::policy::check_prompts(&[&request.prompt])
            .map_err(EngineError::InvalidRequest)?;
        if !(request.frame_rate.is_finite() && request.frame_rate > 0.0) {
            return Err(EngineError::InvalidRequest(format!(
                "frame rate {} must be positive",
                request.frame_rate
            )));
        }
        if !(0.0..=1.0).contains(&request.strength) {
            return Err(EngineError::InvalidRequest(format!(
                "strength {} must be within 0..1",
                request.strength
            )));
        }
        if request.width > MAX_SIDE || request.height > MAX_SIDE {
            return Err(EngineError::InvalidRequest(format!(
                "{}x{} is larger than GenFX generates ({MAX_SIDE} pixels a side); \
                 generate smaller and upscale",
                request.width, request.height
            )));
        }
        let width = snap(request.width, 32);
        let height = snap(request.height, 32);
        if (width, height) != (request.width, request.height) {
            // Frames handed in are at the requested size; a different size
            // would misplace them, so only prompt-only shots are snapped.
            let has_frames = !matches!(request.job, Job::Generate { reference: None });
            if has_frames {
                return Err(EngineError::InvalidRequest(format!(
                    "resolution {}x{} is not a multiple of 32 (nearest: {width}x{height})",
                    request.width, request.height
                )));
            }
            observer.notice(&format!(
                "resolution {}x{} is not a multiple of 32; generating at {width}x{height}",
                request.width, request.height
            ));
        }
        if request.num_frames == 0 || request.num_frames > MAX_NEW_FRAMES {
            return Err(EngineError::InvalidRequest(format!(
                "{} new frames asked for; a shot has 1 to {MAX_NEW_FRAMES}",
                request.num_frames
            )));
        }
        let mut request = request.clone();
        request.width = width;
        request.height = height;

        observer.progress(Stage::LoadingModel, 0, 1);
        let model = self.load(&request.model, request.text_encoder.as_deref())?;
        observer.progress(Stage::LoadingModel, 1, 1);
        if observer.should_abort() {
            return Err(EngineError::Aborted);
        }

        // Real frames sit inside the video the model makes; the plan says
        // where, and which of its frames are the new ones.
        let shape = match &request.job {
            Job::Generate { reference } => PlanShape::Generate {
                reference: reference
                    .as_ref()
                    .map(|c| frames_of(c, "reference"))
                    .transpose()?,
            },
            Job::ExtendForward { context } => PlanShape::ExtendForward {
                context: frames_of(context, "context")?,
            },
            Job::ExtendBackward { context } => PlanShape::ExtendBackward {
                context: frames_of(context, "context")?,
            },
            Job::Fill { before, after } => PlanShape::Fill {
                before: frames_of(before, "clip before")?,
                after: frames_of(after, "clip after")?,
            },
        };
        let new_frames = request.num_frames as usize;
        let plan = plan(shape, new_frames, 8);
        let timed = long_shot::prompts::parse(&request.prompt, request.frame_rate)
            .map_err(EngineError::InvalidRequest)?;
        let guided_hint = model.folder.variant != Variant::Distilled && request.guidance > 1.0;
        if let Some(size) = self.window_size(&model, &request, plan.total, guided_hint)? {
            // A plan of one window (a long context cut to fit) is made the
            // single-pass way, as before.
            if let Some(long) = long_shot::plan::long_plan(shape, new_frames, size, 8)
                .filter(|p| p.windows.len() > 1)
            {
                let job = LongJob {
                    model: &model,
                    request: &request,
                    original,
                    plan: long,
                    size,
                    timed: &timed,
                };
                return job.run(observer, sink, windows);
            }
        }
        // One window: a timed prompt gives the prompt of the shot's middle.
        let prompt_text = long_shot::prompts::at(&timed, new_frames / 2).to_string();
        let num_frames = plan.total as u32;
        match (&request.job, plan.retimed_from) {
            (Job::Generate { .. }, _) if plan.total != new_frames => observer.notice(&format!(
                "{new_frames} frames is not 8k+1; generating {} frames and keeping the first {new_frames}",
                plan.total
            )),
            (Job::Fill { .. }, Some(made)) => observer.notice(&format!(
                "a gap of {new_frames} frames does not fit LTX-Video's 8-frame steps; \
                 generating {made} frames and retiming them to {new_frames}"
            )),
            _ => {}
        }
        let at = |k: usize| plan.conditions[k];
        let conditions = match &request.job {
            Job::Generate { reference: None } => vec![],
            Job::Generate {
                reference: Some(clip),
            } => vec![condition(
                clip,
                Seam::Start,
                at(0),
                &request,
                "reference",
                observer,
            )?],
            Job::ExtendForward { context } => vec![condition(
                context,
                Seam::End,
                at(0),
                &request,
                "context",
                observer,
            )?],
            Job::ExtendBackward { context } => vec![condition(
                context,
                Seam::Start,
                at(0),
                &request,
                "context",
                observer,
            )?],
            Job::Fill { before, after } => vec![
                condition(before, Seam::End, at(0), &request, "clip before", observer)?,
                condition(after, Seam::Start, at(1), &request, "clip after", observer)?,
            ],
        };

        model.upsampler.locate(&request.model, &model.folder.root);
        let (passes, said) = two_pass::choose(
            model.folder.variant == Variant::Distilled,
            request.quality,
            model.upsampler.path().as_deref(),
            (width as usize, height as usize),
            32,
        );
        if let Some(said) = said {
            log::info!("{said}");
            observer.notice(&said);
        }
        // The first pass's size sets the shift of dynamically shifted
        // schedules.
        let (w1, h1) = match passes {
            Passes::Two([first, _]) => first,
            Passes::Single => (width as usize, height as usize),
        };
        let latent_tokens = ((num_frames as usize - 1) / 8 + 1) * (w1 / 32) * (h1 / 32);
        let sampling = sampling_for(
            &model.folder,
            request.quality,
            request.guidance,
            latent_tokens,
            model.transformer_layers,
        )?;
        observer.progress(Stage::EncodingPrompt, 0, 1);
        let guided = sampling.guidance_scale > 1.0;
        let texts: Vec<&str> = std::iter::once(prompt_text.as_str())
            .chain(guided.then_some(request.negative_prompt.as_str()))
            .collect();
        model.check_memory(&memory_guard::JobShape {
            width: width as usize,
            height: height as usize,
            frames: num_frames as usize,
            batch: if guided { 2 } else { 1 },
            condition_frames: conditions.iter().map(|c| c.frames).collect(),
            encodes_prompts: model.prompts.would_load(&texts),
        })?;
        let negative_text = guided.then_some(request.negative_prompt.as_str());
        let (mut encoded, negative, pipeline) = encode_prompts(
            &model,
            &[prompt_text.as_str()],
            negative_text,
            &texts,
            observer,
        )?;
        let positive = encoded.remove(0);

        let params = RunParams {
            width: width as usize,
            height: height as usize,
            num_frames: num_frames as usize,
            frame_rate: request.frame_rate,
            conditions,
            sampling,
        };
        let noise = PhiloxNoise::new(request.seed, 0);
        let upscaler = match passes {
            Passes::Single => None,
            Passes::Two(_) => usable_upscaler(&model, observer),
        };
        let out = match (passes, upscaler) {
            (Passes::Two(sizes), Some(upscaler)) => {
                let config = &model.folder.scheduler;
                // The refinement pass's latent size sets its shift.
                let (lw, lh) = (sizes[1].0 / 32, sizes[1].1 / 32);
                let mu = config
                    .use_dynamic_shifting
                    .then(|| config.calculate_shift(((num_frames as usize - 1) / 8 + 1) * lw * lh));
                let run = TwoPass {
                    pipeline: &pipeline,
                    upscaler: upscaler.as_ref(),
                    settings: two_pass::SETTINGS,
                    refine: two_pass::refine_sampling(&params.sampling, config, mu)?,
                    first: params.sampling.clone(),
                    sizes,
                };
                let refine_noise = PhiloxNoise::new(request.seed, two_pass::REFINE_SHOT);
                run.run(
                    &positive,
                    negative.as_ref(),
                    &params,
                    &noise,
                    &refine_noise,
                    observer,
                )?
            }
            (Passes::Two(_), None) => {
                // The schedule's shift was set for the first pass's size.
                let full = ((num_frames as usize - 1) / 8 + 1)
                    * (width as usize / 32)
                    * (height as usize / 32);
                let params = RunParams {
                    sampling: sampling_for(
                        &model.folder,
                        request.quality,
                        request.guidance,
                        full,
                        model.transformer_layers,
                    )?,
                    ..params
                };
                pipeline.run(&positive, negative.as_ref(), &params, &noise, observer)?
            }
            (Passes::Single, _) => {
                pipeline.run(&positive, negative.as_ref(), &params, &noise, observer)?
            }
        };
        let plane = (width * height) as usize;
        let per_channel = plane * num_frames as usize;
        let mut frames = plan
            .shown
            .iter()
            .map(|&f| {
                let mut rgb = vec![0.0f32; 3 * plane];
                for p in 0..plane {
                    for c in 0..3 {
                        rgb[p * 3 + c] = out.video[c * per_channel + f * plane + p];
                    }
                }
                Frame { width, height, rgb }
            })
            .collect::<Vec<_>>();
        // Every generated frame carries the invisible GenFX mark.
        crate::provenance::mark_shot(&mut frames, &request);
        sink.frames_ready(0, &frames)
    }
}

impl LtxEngine {
    /// The window size of a shot whose single pass would make
    /// `single_total` frames: `None` when it is made in one pass as it
    /// always was (no length asked for and it fits the model's longest
    /// pass). The automatic length is the longest the memory guard lets
    /// this machine make at the shot's resolution.
    fn window_size(
        &self,
        model: &LoadedModel,
        request: &ShotRequest,
        single_total: usize,
        guided: bool,
    ) -> Result<Option<WindowSize>, EngineError> {
        let settings = &request.windows;
        let length = match settings.length {
            Some(l) => l as usize,
            None if single_total <= long_shot::plan::MAX_WINDOW => return Ok(None),
            None => {
                let fits = |frames: usize| {
                    model
                        .check_memory(&memory_guard::JobShape {
                            width: request.width as usize,
                            height: request.height as usize,
                            frames,
                            batch: if guided { 2 } else { 1 },
                            condition_frames: vec![],
                            encodes_prompts: false,
                        })
                        .is_ok()
                };
                ((long_shot::plan::MIN_WINDOW - 1) / 8..=(long_shot::plan::MAX_WINDOW - 1) / 8)
                    .rev()
                    .map(|m| 8 * m + 1)
                    .find(|&f| fits(f))
                    .unwrap_or(long_shot::plan::MIN_WINDOW)
            }
        };
        WindowSize::new(length, settings.overlap.map(|o| o as usize), 8)
            .map(Some)
            .map_err(EngineError::InvalidRequest)
    }
}

/// A shot made in windows ([`long_shot`]).
struct LongJob<'a> {
    model: &'a LoadedModel,
    /// Sizes snapped.
    request: &'a ShotRequest,
    /// As asked (its key names the windows).
    original: &'a ShotRequest,
    plan: long_shot::plan::LongPlan,
    size: WindowSize,
    timed: &'a [long_shot::prompts::TimedPrompt],
}

/// What a window of a long shot is made with.
struct LtxWindows<'a> {
    pipeline: &'a LtxPipeline,
    request: &'a ShotRequest,
    plan: &'a long_shot::plan::LongPlan,
    prompts: Vec<super::components::EncodedPrompt>,
    /// Each window's index into `prompts`.
    prompt_of: Vec<usize>,
    negative: Option<super::components::EncodedPrompt>,
    /// A window's sampling from its frame count and (first) pass size.
    sampling: SamplingFor<'a>,
    conditions: Box<dyn Fn(usize) -> Result<Vec<Condition>, EngineError> + 'a>,
    /// The distilled two-pass recipe per window, when the shot runs it.
    two_pass: Option<WindowTwoPass<'a>>,
}

/// A window's sampling from its frame count and (first) pass size.
type SamplingFor<'a> = Box<dyn Fn(usize, (usize, usize)) -> Result<Sampling, EngineError> + 'a>;

/// What each window's two passes need besides the pipeline.
struct WindowTwoPass<'a> {
    upscaler: Arc<super::upsample::DeviceUpscaler>,
    sizes: [(usize, usize); 2],
    config: &'a crate::sampler::schedule::SchedulerConfig,
}

impl LtxWindows<'_> {
    fn params(&self, k: usize, conditions: Vec<Condition>) -> Result<RunParams, EngineError> {
        let win = &self.plan.windows[k];
        let (width, height) = (self.request.width as usize, self.request.height as usize);
        // The schedule's shift follows the (first) pass's size.
        let first = self
            .two_pass
            .as_ref()
            .map_or((width, height), |t| t.sizes[0]);
        Ok(RunParams {
            width,
            height,
            num_frames: win.frames,
            frame_rate: self.request.frame_rate,
            conditions,
            sampling: (self.sampling)(win.frames, first)?,
        })
    }

    /// Window 0 draws the single pass's noise; window k its own stream.
    fn noise(&self, k: usize) -> PhiloxNoise {
        PhiloxNoise::new(self.request.seed, k as u32)
    }

    /// Window k's refinement stream (window 0's is the single shot's).
    fn refine_noise(&self, k: usize) -> PhiloxNoise {
        PhiloxNoise::new(self.request.seed, two_pass::REFINE_SHOT | k as u32)
    }

    /// Window k's two passes, as a single shot of its frames runs them.
    fn two_pass_run<'b>(
        &'b self,
        t: &'b WindowTwoPass<'b>,
        params: &RunParams,
    ) -> Result<TwoPass<'b>, EngineError> {
        let (lw, lh) = (t.sizes[1].0 / 32, t.sizes[1].1 / 32);
        let mu = t.config.use_dynamic_shifting.then(|| {
            t.config
                .calculate_shift(((params.num_frames - 1) / 8 + 1) * lw * lh)
        });
        Ok(TwoPass {
            pipeline: self.pipeline,
            upscaler: t.upscaler.as_ref(),
            settings: two_pass::SETTINGS,
            refine: two_pass::refine_sampling(&params.sampling, t.config, mu)?,
            first: params.sampling.clone(),
            sizes: t.sizes,
        })
    }
}

impl long_shot::run::WindowMaker for LtxWindows<'_> {
    fn denoise(
        &self,
        k: usize,
        _: &long_shot::plan::Window,
        link: Option<(&[f32], usize)>,
        observer: &dyn JobObserver,
    ) -> Result<(Vec<f32>, [usize; 4]), EngineError> {
        let params = self.params(k, (self.conditions)(k)?)?;
        if let Some(t) = &self.two_pass {
            let link = link.map(|(latents, at)| two_pass::Link {
                latents,
                frames: self.plan.latent_overlap,
                latent_index: at,
            });
            let out = self.two_pass_run(t, &params)?.denoise(
                &self.prompts[self.prompt_of[k]],
                self.negative.as_ref(),
                &params,
                (&self.noise(k), &self.refine_noise(k)),
                link.as_ref(),
                observer,
            )?;
            return Ok((out.latents, out.latent_dims));
        }
        let latent = link.map(|(latents, at)| super::ltx::LatentCondition {
            latents: latents.to_vec(),
            frames: self.plan.latent_overlap,
            latent_index: at,
            strength: 1.0,
        });
        let out = self.pipeline.denoise_with(
            &self.prompts[self.prompt_of[k]],
            self.negative.as_ref(),
            &params,
            &self.noise(k),
            None,
            latent.as_slice(),
            observer,
        )?;
        Ok((out.latents, out.latent_dims))
    }

    fn decode(
        &self,
        k: usize,
        _: &long_shot::plan::Window,
        latents: Vec<f32>,
        dims: [usize; 4],
        observer: &dyn JobObserver,
    ) -> Result<Vec<f32>, EngineError> {
        let params = self.params(k, vec![])?;
        let denoised = super::ltx::Denoised {
            packed_latents: vec![],
            latents,
            latent_dims: dims,
        };
        if let Some(t) = &self.two_pass {
            return Ok(self
                .two_pass_run(t, &params)?
                .decode(denoised, &params, &self.refine_noise(k), observer)?
                .video);
        }
        Ok(self
            .pipeline
            .decode(denoised, &params, &self.noise(k), observer)?
            .video)
    }
}

impl LongJob<'_> {
    fn run(
        self,
        observer: &dyn JobObserver,
        sink: &dyn FrameSink,
        windows: Option<&Path>,
    ) -> Result<(), EngineError> {
        let (model, request, plan) = (self.model, self.request, &self.plan);
        let drift = request.windows.drift.unwrap_or(long_shot::DEFAULT_DRIFT);
        if !(0.0..=1.0).contains(&drift) {
            return Err(EngineError::InvalidRequest(format!(
                "drift strength {drift} must be within 0..1"
            )));
        }
        let count = plan.windows.len();
        let (width, height) = (request.width as usize, request.height as usize);
        model.upsampler.locate(&request.model, &model.folder.root);
        let (mut passes, said) = two_pass::choose(
            model.folder.variant == Variant::Distilled,
            request.quality,
            model.upsampler.path().as_deref(),
            (width, height),
            32,
        );
        if let Some(said) = said {
            log::info!("{said}");
            observer.notice(&format!("{said} (each window)"));
        }
        let upscaler = match passes {
            Passes::Single => None,
            Passes::Two(_) => usable_upscaler(model, observer),
        };
        if upscaler.is_none() {
            passes = Passes::Single;
        }
        observer.notice(&format!(
            "long shot: {} new frames in {count} windows of up to {} frames, overlapping by {} \
             ({} latent frames), drift matching at {drift}; {} per window",
            request.num_frames,
            self.size.length,
            self.size.overlap,
            plan.latent_overlap,
            match passes {
                Passes::Single => "single pass",
                Passes::Two(_) => "two passes",
            }
        ));
        if let Some(made) = plan.retimed_from {
            observer.notice(&format!(
                "the windows make a gap of {made} frames; retiming them to {}",
                request.num_frames
            ));
        }
        // Each window's prompt: the one in effect at its middle frame.
        let first_new = plan.shown[0];
        let mut texts: Vec<&str> = vec![];
        let prompt_of: Vec<usize> = plan
            .windows
            .iter()
            .map(|w| {
                let middle = (w.start + w.frames / 2).saturating_sub(first_new);
                let text = long_shot::prompts::at(self.timed, middle);
                match texts.iter().position(|t| *t == text) {
                    Some(i) => i,
                    None => {
                        texts.push(text);
                        texts.len() - 1
                    }
                }
            })
            .collect();
        let sampling = {
            move |frames: usize, (width, height): (usize, usize)| {
                let tokens = ((frames - 1) / 8 + 1) * (width / 32) * (height / 32);
                sampling_for(
                    &model.folder,
                    request.quality,
                    request.guidance,
                    tokens,
                    model.transformer_layers,
                )
            }
        };
        let guided = sampling(self.size.length, (width, height))?.guidance_scale > 1.0;
        let mut all: Vec<&str> = texts.clone();
        if guided {
            all.push(request.negative_prompt.as_str());
        }
        observer.progress(Stage::EncodingPrompt, 0, 1);
        let most_real = plan
            .windows
            .iter()
            .flat_map(|w| w.real.iter().map(|r| r.frames))
            .collect();
        model.check_memory(&memory_guard::JobShape {
            width: request.width as usize,
            height: request.height as usize,
            frames: self.size.length,
            batch: if guided { 2 } else { 1 },
            condition_frames: most_real,
            encodes_prompts: model.prompts.would_load(&all),
        })?;
        let negative_text = guided.then_some(request.negative_prompt.as_str());
        let (prompts, negative, pipeline) =
            encode_prompts(model, &texts, negative_text, &all, observer)?;
        let conditions = |k: usize| -> Result<Vec<Condition>, EngineError> {
            let win = &plan.windows[k];
            win.real
                .iter()
                .map(|r| {
                    let (clip, seam, what) = match (&request.job, r.clip) {
                        (Job::Generate { reference: Some(c) }, _) => (c, Seam::Start, "reference"),
                        (Job::ExtendForward { context }, _) => (context, Seam::End, "context"),
                        (Job::ExtendBackward { context }, _) => (context, Seam::Start, "context"),
                        (Job::Fill { before, .. }, 0) => (before, Seam::End, "clip before"),
                        (Job::Fill { after, .. }, _) => (after, Seam::Start, "clip after"),
                        (Job::Generate { reference: None }, _) => {
                            return Err(EngineError::Failed(
                                "a window plan placed real frames in a shot without any".into(),
                            ))
                        }
                    };
                    condition(clip, seam, (r.at, r.frames), request, what, observer)
                })
                .collect()
        };
        let maker = LtxWindows {
            pipeline: &pipeline,
            request,
            plan,
            prompts,
            prompt_of,
            negative,
            sampling: Box::new(sampling),
            conditions: Box::new(conditions),
            two_pass: match (&passes, upscaler) {
                (Passes::Two(sizes), Some(upscaler)) => Some(WindowTwoPass {
                    upscaler,
                    sizes: *sizes,
                    config: &model.folder.scheduler,
                }),
                _ => None,
            },
        };
        // Finished windows are named by the shot's key (as asked, like the
        // shot cache's) and the plan.
        let store = windows.and_then(|dir| {
            let identity = super::model_folder::resolve(&self.original.model)
                .ok()
                .and_then(|folder| super::disk_cache::current_identity(&folder).ok());
            let Some(identity) = identity else {
                observer.notice("the model cannot be fingerprinted; this long shot's windows are not kept");
                return None;
            };
            match long_shot::store::WindowStore::open(dir) {
                Ok(store) => Some((store, identity)),
                Err(e) => {
                    observer.notice(&format!(
                        "the windows folder {} is unusable ({e}); this long shot's windows are not kept",
                        dir.display()
                    ));
                    None
                }
            }
        });
        let keys: Vec<[u8; 32]> = match &store {
            Some((_, identity)) => {
                let mut shot = super::disk_cache::shot_key(identity, self.original).0;
                // Windows of two passes are other windows than one pass's
                // (an upsampler added to a model folder outside it, say).
                if let Passes::Two(sizes) = &passes {
                    shot = long_shot::two_pass_shot(&shot, *sizes);
                }
                (0..count)
                    .map(|k| long_shot::window_key(&shot, self.size, drift, k, count))
                    .collect()
            }
            None => vec![[0u8; 32]; count],
        };
        let mark = |frames: &mut [Frame]| crate::provenance::mark_shot(frames, request);
        let counts = long_shot::run::run(
            plan,
            &maker,
            store.as_ref().map(|(s, _)| s),
            &keys,
            drift,
            (request.width as usize, request.height as usize),
            observer,
            sink,
            &mark,
        )?;
        let said = format!(
            "long shot: {} windows made, {} reused from the windows folder",
            counts.made, counts.reused
        );
        log::info!("{said}");
        observer.notice(&said);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures_dir;

    fn tiny_folder() -> ModelFolder {
        ModelFolder::open(&fixtures_dir().join("pipeline").join("model")).unwrap()
    }

    #[test]
    fn device_choices_parse_and_bad_ones_are_explained() {
        assert_eq!(DeviceChoice::parse(""), Ok(DeviceChoice::Auto));
        assert_eq!(DeviceChoice::parse("CPU"), Ok(DeviceChoice::Cpu));
        assert_eq!(DeviceChoice::parse("cuda"), Ok(DeviceChoice::Cuda(None)));
        assert_eq!(
            DeviceChoice::parse("cuda:1"),
            Ok(DeviceChoice::Cuda(Some(1)))
        );
        let err = DeviceChoice::parse("tpu").unwrap_err();
        assert!(err.contains("cpu, cuda, cuda:N"), "{err}");
        assert!(DeviceChoice::parse("cuda:x").is_err());
    }

    #[test]
    fn absurd_step_counts_are_refused() {
        let folder = tiny_folder();
        assert!(sampling_for(&folder, Quality::Steps(MAX_STEPS), 3.0, 64, 2).is_ok());
        for n in [0, MAX_STEPS + 1, u32::MAX] {
            assert!(matches!(
                sampling_for(&folder, Quality::Steps(n), 3.0, 64, 2),
                Err(EngineError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn stg_recipe_follows_the_published_configs() {
        assert_eq!(stg_recipe(28).skip.blocks, vec![19]);
        assert_eq!(stg_recipe(48).skip.blocks, vec![28]);
        assert_eq!(stg_recipe(2).skip.blocks, vec![1]);
        for layers in [2, 28, 48, 60] {
            let recipe = stg_recipe(layers);
            assert_eq!(recipe.skip.mode, SkipMode::AttentionValues);
            assert!(recipe.skip.check(layers).is_ok());
        }
    }

    #[test]
    fn dev_presets_use_stg_except_draft_and_distilled_never() {
        let folder = tiny_folder();
        assert_eq!(folder.variant, Variant::Dev);
        for quality in [Quality::Standard, Quality::High, Quality::Steps(3)] {
            let s = sampling_for(&folder, quality, 3.0, 64, 28).unwrap();
            assert_eq!(s.stg, Some(stg_recipe(28)), "{quality:?}");
            assert_eq!(s.guidance_rescale, STG_RESCALE);
            assert_eq!(s.guidance_scale, 3.0);
        }
        let draft = sampling_for(&folder, Quality::Draft, 3.0, 64, 28).unwrap();
        assert_eq!((draft.stg, draft.guidance_rescale), (None, 0.0));

        let distilled = ModelFolder {
            variant: Variant::Distilled,
            ..folder
        };
        for quality in [Quality::Draft, Quality::High, Quality::Steps(8)] {
            let s = sampling_for(&distilled, quality, 3.0, 64, 28).unwrap();
            assert_eq!(s.stg, None);
            assert_eq!(s.guidance_scale, 1.0);
        }
    }
}
