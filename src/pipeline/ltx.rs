//! The conditioned LTX-Video pipeline, step for step as diffusers'
//! `LTXConditionPipeline` runs it: conditions encoded and lerped into the
//! latents by strength (or appended as prefix tokens with their own
//! positions), per-token timesteps that keep conditioned tokens frozen,
//! flow-matching Euler with classifier-free guidance and rescale, prefix
//! tokens stripped, and the timestep-conditioned decode. Conditioning and
//! decoding work on host arrays; the denoising loop (`denoise.rs`) runs on
//! the transformer's device.
//!
//! All noise comes from a [`NoiseSource`] by purpose, so the production run
//! is reproducible anywhere and tests can feed the reference's noise.

use std::sync::Arc;

use super::components::{EncodedPrompt, VelocityJob, VelocityModel, VideoCodec};
use super::denoise::Denoise;
use super::latents::{lerp, pack, positions, unpack};
use crate::engine::{EngineError, JobObserver, Stage};
use crate::models::ltx::LayerSkip;
use crate::sampler::noise::{NoisePurpose, NoiseSource};
use crate::sampler::schedule::Schedule;

/// Latent frames a prefix condition keeps as extra tokens.
const PREFIX_LATENT_FRAMES: usize = 2;

/// Frames placed in the shot with a strength.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// `[3, frames, height, width]` RGB in [-1, 1] at the working size.
    pub pixels: Vec<f32>,
    pub frames: usize,
    /// Pixel frame of the shot the first frame lands on (a multiple of 8).
    pub frame_index: usize,
    /// 1 keeps the frames, 0 ignores them.
    pub strength: f32,
}

/// Latent frames placed in the shot with a strength, as they are: a long
/// shot's window takes its neighbour's latent frames this way, with no
/// decode and encode between them.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentCondition {
    /// `[C, frames, h, w]` normalised latents at the shot's latent size.
    pub latents: Vec<f32>,
    pub frames: usize,
    /// Latent frame of the shot the first one lands on.
    pub latent_index: usize,
    /// 1 keeps the latents, 0 ignores them.
    pub strength: f32,
}

/// How to sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub schedule: Schedule,
    /// The scheduler's `num_train_timesteps`.
    pub train_timesteps: f32,
    /// Classifier-free guidance scale; at 1 or below the negative prompt is
    /// not run.
    pub guidance_scale: f32,
    /// Rescales the guided prediction towards the prompt prediction's
    /// standard deviation, after classifier-free and/or spatio-temporal
    /// guidance (0 turns it off).
    pub guidance_rescale: f32,
    /// Spatio-temporal guidance; `None` (or a scale of 0) runs no perturbed
    /// pass.
    pub stg: Option<SpatioTemporalGuidance>,
    /// Noise added to fully conditioned tokens, shrinking with t².
    pub image_cond_noise_scale: f32,
    pub decode_timestep: f32,
    pub decode_noise_scale: f32,
}

/// LTX-Video's spatio-temporal guidance: a third prediction with some
/// blocks weakened, which the guided prediction is pushed away from by
/// `scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct SpatioTemporalGuidance {
    pub scale: f32,
    pub skip: LayerSkip,
}

/// One run.
#[derive(Clone, Debug)]
pub struct RunParams {
    pub width: usize,
    pub height: usize,
    /// 8k+1.
    pub num_frames: usize,
    pub frame_rate: f64,
    pub conditions: Vec<Condition>,
    pub sampling: Sampling,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// `[tokens, C]` after the last step, prefix tokens first.
    pub packed_latents: Vec<f32>,
    /// `[C, f, h, w]` normalised latents of the shot (prefix stripped).
    pub latents: Vec<f32>,
    pub latent_dims: [usize; 4],
    /// `[3, F, H, W]` in [0, 1].
    pub video: Vec<f32>,
}

/// Latents a run starts from instead of pure noise (the refinement pass of
/// the two-pass recipe): mixed with the initial noise as
/// `sigma · noise + (1 - sigma) · latents`, as `LTXConditionPipeline` does
/// when given `latents` and a `denoise_strength` below 1.
#[derive(Clone, Debug)]
pub struct StartLatents {
    /// `[C, f, h, w]` normalised latents of the shot's size.
    pub latents: Vec<f32>,
    /// The first sigma of the run's schedule.
    pub sigma: f32,
}

/// A run's latents before decoding.
#[derive(Clone, Debug)]
pub struct Denoised {
    /// `[tokens, C]` after the last step, prefix tokens first.
    pub packed_latents: Vec<f32>,
    /// `[C, f, h, w]` normalised latents of the shot (prefix stripped).
    pub latents: Vec<f32>,
    pub latent_dims: [usize; 4],
}

/// The transformer and VAE of one model.
#[derive(Clone)]
pub struct LtxPipeline {
    pub transformer: Arc<dyn VelocityModel>,
    pub vae: Arc<dyn VideoCodec>,
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidRequest(msg)
}

/// Latents being denoised, with what conditioning put in them.
struct Prepared {
    /// `[tokens, C]`, prefix tokens first.
    latents: Vec<f32>,
    /// Per token strength, when any condition exists.
    mask: Option<Vec<f32>>,
    /// `[3, tokens]`, frames in seconds.
    coords: Vec<f32>,
    prefix_tokens: usize,
}

impl LtxPipeline {
    fn prepare(
        &self,
        params: &RunParams,
        noise: &dyn NoiseSource,
        start: Option<&StartLatents>,
        latent_conditions: &[LatentCondition],
    ) -> Result<Prepared, EngineError> {
        let channels = self.transformer.channels();
        if channels != self.vae.latent_channels() {
            return Err(EngineError::NoModel(format!(
                "transformer takes {channels} latent channels, the VAE makes {}",
                self.vae.latent_channels()
            )));
        }
        let (spatial, temporal) = self.vae.compression();
        let (lf, lh, lw) = (
            (params.num_frames - 1) / temporal + 1,
            params.height / spatial,
            params.width / spatial,
        );
        let plane = lh * lw;
        let voxels = lf * plane;
        let mut grid = noise.draw(NoisePurpose::InitialLatents, channels * voxels);
        if let Some(start) = start {
            if start.latents.len() != grid.len() {
                return Err(invalid(format!(
                    "{} start latents for a shot of {} latent values",
                    start.latents.len(),
                    grid.len()
                )));
            }
            let sigma = start.sigma;
            for (g, &z) in grid.iter_mut().zip(&start.latents) {
                *g = sigma * *g + (1.0 - sigma) * z;
            }
        }
        let mut frame_strength = vec![0.0f32; lf];
        let mut extra_latents: Vec<f32> = Vec::new();
        let mut extra_coords: Vec<Vec<f32>> = Vec::new();
        let mut extra_mask: Vec<f32> = Vec::new();

        for (k, cond) in params.conditions.iter().enumerate() {
            let k32 = k as u32;
            let cf = (cond.frames - 1) / temporal + 1;
            let cond_noise = noise.draw(NoisePurpose::ConditionEncode(k32), channels * cf * plane);
            let mut latents = self.vae.encode_condition(
                &cond.pixels,
                cond.frames,
                params.height,
                params.width,
                &cond_noise,
            )?;
            if latents.len() != channels * cf * plane {
                return Err(EngineError::Failed(format!(
                    "VAE gave {} latent values for {} frames, expected {}",
                    latents.len(),
                    cond.frames,
                    channels * cf * plane
                )));
            }
            let s = cond.strength;
            if cond.frame_index == 0 {
                let n = cf.min(lf);
                for c in 0..channels {
                    for v in 0..n * plane {
                        let g = &mut grid[c * voxels + v];
                        *g = lerp(*g, latents[c * cf * plane + v], s);
                    }
                }
                frame_strength[..n].iter_mut().for_each(|m| *m = s);
                continue;
            }
            let mut kept = cf;
            if cond.frames > 1 {
                if cf < PREFIX_LATENT_FRAMES {
                    return Err(invalid(format!(
                        "a clip placed after frame 0 needs at least {PREFIX_LATENT_FRAMES} latent frames ({} frames), got {}",
                        (PREFIX_LATENT_FRAMES - 1) * temporal + 1,
                        cond.frames
                    )));
                }
                if cf > PREFIX_LATENT_FRAMES {
                    let start = cond.frame_index / temporal + PREFIX_LATENT_FRAMES;
                    let end = (start + cf - PREFIX_LATENT_FRAMES).min(lf);
                    for c in 0..channels {
                        for f in start..end {
                            let src = f - start + PREFIX_LATENT_FRAMES;
                            for p in 0..plane {
                                let g = &mut grid[c * voxels + f * plane + p];
                                *g = lerp(*g, latents[(c * cf + src) * plane + p], s);
                            }
                        }
                    }
                    frame_strength[start.min(lf)..end]
                        .iter_mut()
                        .for_each(|m| *m = s);
                    kept = PREFIX_LATENT_FRAMES;
                    latents = (0..channels)
                        .flat_map(|c| latents[c * cf * plane..(c * cf + kept) * plane].to_vec())
                        .collect();
                }
            }
            let prefix_noise = noise.draw(NoisePurpose::ConditionPrefix(k32), latents.len());
            for (l, n) in latents.iter_mut().zip(&prefix_noise) {
                *l = lerp(*n, *l, s);
            }
            extra_coords.push(positions(kept, lh, lw, spatial, temporal, cond.frame_index));
            extra_latents.extend(pack(&latents, channels, kept * plane));
            extra_mask.extend(std::iter::repeat(s).take(kept * plane));
        }

        // Latent conditions go into the grid like a pixel condition at
        // frame 0 does: lerped in by strength, their frames' tokens masked
        // with it so the schedule keeps them.
        for cond in latent_conditions {
            if cond.latent_index + cond.frames > lf
                || cond.latents.len() != channels * cond.frames * plane
            {
                return Err(invalid(format!(
                    "latent condition of {} frames at latent frame {} does not fit a shot of {lf} latent frames of {}x{}",
                    cond.frames, cond.latent_index, lw, lh
                )));
            }
            for c in 0..channels {
                for f in 0..cond.frames {
                    let dst = c * voxels + (cond.latent_index + f) * plane;
                    let src = (c * cond.frames + f) * plane;
                    for p in 0..plane {
                        grid[dst + p] = lerp(grid[dst + p], cond.latents[src + p], cond.strength);
                    }
                }
            }
            frame_strength[cond.latent_index..cond.latent_index + cond.frames]
                .iter_mut()
                .for_each(|m| *m = cond.strength);
        }

        let main_coords = positions(lf, lh, lw, spatial, temporal, 0);
        let prefix_tokens = extra_mask.len();
        let tokens = prefix_tokens + voxels;
        let mut latents = extra_latents;
        latents.extend(pack(&grid, channels, voxels));
        let mask = (!params.conditions.is_empty() || !latent_conditions.is_empty()).then(|| {
            let mut m = extra_mask;
            for &strength in &frame_strength {
                m.extend(std::iter::repeat(strength).take(plane));
            }
            m
        });
        let inv_rate = (1.0 / params.frame_rate) as f32;
        let mut coords = vec![0.0f32; 3 * tokens];
        let mut offset = 0;
        for part in extra_coords.iter().chain(std::iter::once(&main_coords)) {
            let n = part.len() / 3;
            for axis in 0..3 {
                for i in 0..n {
                    let v = part[axis * n + i];
                    coords[axis * tokens + offset + i] = if axis == 0 { v * inv_rate } else { v };
                }
            }
            offset += n;
        }
        Ok(Prepared {
            latents,
            mask,
            coords,
            prefix_tokens,
        })
    }

    /// Runs the whole pipeline. `negative` is used when guidance is on.
    pub fn run(
        &self,
        positive: &EncodedPrompt,
        negative: Option<&EncodedPrompt>,
        params: &RunParams,
        noise: &dyn NoiseSource,
        observer: &dyn JobObserver,
    ) -> Result<RunOutput, EngineError> {
        let denoised = self.denoise(positive, negative, params, noise, None, observer)?;
        self.decode(denoised, params, noise, observer)
    }

    /// Conditions and denoises a shot, from pure noise or from `start`;
    /// the latents are not decoded.
    pub fn denoise(
        &self,
        positive: &EncodedPrompt,
        negative: Option<&EncodedPrompt>,
        params: &RunParams,
        noise: &dyn NoiseSource,
        start: Option<&StartLatents>,
        observer: &dyn JobObserver,
    ) -> Result<Denoised, EngineError> {
        self.denoise_with(positive, negative, params, noise, start, &[], observer)
    }

    /// [`denoise`](Self::denoise) with latent frames placed in the shot
    /// besides the pixel conditions of `params`.
    #[allow(clippy::too_many_arguments)]
    pub fn denoise_with(
        &self,
        positive: &EncodedPrompt,
        negative: Option<&EncodedPrompt>,
        params: &RunParams,
        noise: &dyn NoiseSource,
        start: Option<&StartLatents>,
        latent_conditions: &[LatentCondition],
        observer: &dyn JobObserver,
    ) -> Result<Denoised, EngineError> {
        let (spatial, temporal) = self.vae.compression();
        if params.width % spatial != 0 || params.height % spatial != 0 || params.width == 0 {
            return Err(invalid(format!(
                "{}x{} is not a multiple of {spatial}",
                params.width, params.height
            )));
        }
        if params.num_frames == 0 || (params.num_frames - 1) % temporal != 0 {
            return Err(invalid(format!(
                "{} frames is not {temporal}k+1",
                params.num_frames
            )));
        }
        for c in &params.conditions {
            if c.frames == 0 || (c.frames - 1) % temporal != 0 {
                return Err(invalid(format!(
                    "a condition of {} frames is not {temporal}k+1",
                    c.frames
                )));
            }
            if c.frame_index % temporal != 0 || c.frame_index >= params.num_frames {
                return Err(invalid(format!(
                    "a condition at frame {} is not a multiple of {temporal} inside the shot",
                    c.frame_index
                )));
            }
            if c.pixels.len() != 3 * c.frames * params.width * params.height {
                return Err(invalid("condition pixels do not match their size".into()));
            }
        }
        let channels = self.transformer.channels();
        if positive.dim != self.transformer.text_dim() {
            return Err(EngineError::NoModel(format!(
                "text encoder gives {} features, the transformer takes {}",
                positive.dim,
                self.transformer.text_dim()
            )));
        }
        let s = &params.sampling;
        let guided = s.guidance_scale > 1.0;
        let negative = match (guided, negative) {
            (false, _) => None,
            (true, Some(n)) if n.tokens == positive.tokens && n.dim == positive.dim => Some(n),
            (true, _) => {
                return Err(invalid(
                    "guidance needs a negative prompt encoded like the prompt".into(),
                ))
            }
        };

        observer.progress(Stage::EncodingFrames, 0, params.conditions.len() as u32);
        let prepared = self.prepare(params, noise, start, latent_conditions)?;
        observer.progress(
            Stage::EncodingFrames,
            params.conditions.len() as u32,
            params.conditions.len() as u32,
        );
        let Prepared {
            latents,
            mask,
            coords,
            prefix_tokens,
        } = prepared;
        let tokens = latents.len() / channels;
        let denoise = Denoise {
            sampling: s,
            channels,
            mask: mask.as_deref(),
            noise,
            job: VelocityJob {
                tokens,
                positive,
                negative,
                coords: &coords,
            },
        };
        let latents = denoise.run(self.transformer.as_ref(), &latents, observer)?;

        let (lf, lh, lw) = (
            (params.num_frames - 1) / temporal + 1,
            params.height / spatial,
            params.width / spatial,
        );
        let voxels = lf * lh * lw;
        let shot = unpack(&latents[prefix_tokens * channels..], channels, voxels);
        Ok(Denoised {
            packed_latents: latents,
            latents: shot,
            latent_dims: [channels, lf, lh, lw],
        })
    }

    /// Decodes what [`denoise`](Self::denoise) made for `params`.
    pub fn decode(
        &self,
        denoised: Denoised,
        params: &RunParams,
        noise: &dyn NoiseSource,
        observer: &dyn JobObserver,
    ) -> Result<RunOutput, EngineError> {
        let s = &params.sampling;
        let Denoised {
            packed_latents,
            latents: shot,
            latent_dims: dims,
        } = denoised;
        observer.progress(Stage::Decoding, 0, 1);
        let decode_noise = if self.vae.timestep_conditioned() {
            noise.draw(NoisePurpose::Decode, shot.len())
        } else {
            Vec::new()
        };
        let mut video = self.vae.decode(
            &shot,
            dims,
            s.decode_timestep,
            s.decode_noise_scale,
            &decode_noise,
        )?;
        let expected = 3 * params.num_frames * params.height * params.width;
        if video.len() != expected {
            return Err(EngineError::Failed(format!(
                "VAE decoded {} values, expected {expected}",
                video.len()
            )));
        }
        // The clamp below would pass a NaN through into the frames (and the
        // shot cache): refuse the shot instead.
        if let Some(at) = video.iter().position(|x| !x.is_finite()) {
            return Err(EngineError::Failed(format!(
                "the VAE decode produced a non-finite value ({} at element {at} of {}): \
                 a GPU fault or an overflow in 16-bit arithmetic; GENFX_DEVICE=cpu renders \
                 the shot on the CPU instead",
                video[at],
                video.len()
            )));
        }
        for x in &mut video {
            *x = (*x * 0.5 + 0.5).clamp(0.0, 1.0);
        }
        observer.progress(Stage::Decoding, 1, 1);
        Ok(RunOutput {
            packed_latents,
            latents: shot,
            latent_dims: dims,
            video,
        })
    }
}
