//! The distilled models' two-pass recipe (LTX-Video's `multi-scale`
//! pipeline, `configs/ltxv-2b-0.9.8-distilled.yaml`; diffusers' 0.9.7/0.9.8
//! distilled example): the shot is denoised at about 2/3 of the asked size
//! with the distilled timesteps, its latents are doubled in height and width
//! by the latent upsampler (with AdaIN towards the first pass's statistics),
//! a few refinement steps run at that doubled size starting from the
//! upsampled latents re-noised to the first refinement sigma, and the decoded
//! frames are scaled to the asked size.
//!
//! The refinement schedule is diffusers' `timesteps=[1000, 909, 725, 421, 0]`
//! with `denoise_strength=0.999` (its first step skipped) and without its
//! last step, at timestep 0, which moves nothing: LTX-Video's second pass
//! `[0.9094, 0.7250, 0.4219]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::components::EncodedPrompt;
use super::ltx::{
    Condition, Denoised, LatentCondition, LtxPipeline, RunOutput, RunParams, Sampling, StartLatents,
};
use super::upsample::{upsample_latents, DeviceUpscaler, LatentUpscaler, UpsampleSettings};
use crate::backend::Device;
use crate::engine::{EngineError, JobObserver};
use crate::sampler::noise::NoiseSource;
use crate::sampler::schedule::{Schedule, ScheduleSource, SchedulerConfig};
use crate::tensor::DType;

/// LTX-Video's `downscale_factor` for the first pass, as published.
pub const DOWNSCALE: f64 = 0.6666666;
/// The refinement pass's timestep list and how many of its first steps are
/// skipped (`denoise_strength` 0.999 of 5 steps keeps 4).
pub const REFINE_TIMESTEPS: [f64; 5] = [1000.0, 909.0, 725.0, 421.0, 0.0];
pub const REFINE_SKIPPED: usize = 1;
/// Transformer passes of the refinement: the timesteps left after the
/// skipped ones, less a last one at 0 (see [`refine_sampling`]).
pub fn refine_steps() -> usize {
    REFINE_TIMESTEPS[REFINE_SKIPPED..]
        .iter()
        .filter(|&&t| t > 0.0)
        .count()
}

/// The refinement pass's noise streams: the shot index with its high bit
/// set, so they never meet the first pass's.
pub const REFINE_SHOT: u32 = 0x8000_0000;
/// The published 2B recipe: AdaIN at full strength, no tone mapping (only
/// the 13B 0.9.8 config tone-maps).
pub const SETTINGS: UpsampleSettings = UpsampleSettings {
    adain_factor: 1.0,
    tone_map_compression: 0.0,
};

/// File name prefix of LTX-Video's published spatial upscalers.
const UPSCALER_PREFIX: &str = "ltxv-spatial-upscaler";

/// The latent upsampler for a model, where one is: a diffusers
/// `latent_upsampler/` folder (with `config.json`) inside `model_dir`, else
/// an `ltxv-spatial-upscaler*.safetensors` file in `model_dir` or in any of
/// `beside` (the folder of a single-file checkpoint); the newest version by
/// name when several are there.
pub fn find_upsampler(model_dir: &Path, beside: &[&Path]) -> Option<PathBuf> {
    let folder = model_dir.join("latent_upsampler");
    if folder.join("config.json").is_file() {
        return Some(folder);
    }
    std::iter::once(model_dir)
        .chain(beside.iter().copied())
        .find_map(|dir| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(UPSCALER_PREFIX) && n.ends_with(".safetensors")
                        })
                })
                .collect();
            files.sort();
            files.pop()
        })
}

/// [`find_upsampler`] for the model a user named: `spec` is the model
/// folder, or a single-file checkpoint whose folder is searched too;
/// `model_dir` is the folder its components were found in.
pub fn find_for_spec(spec: &Path, model_dir: &Path) -> Option<PathBuf> {
    let beside: Vec<&Path> = spec
        .is_file()
        .then(|| spec.parent())
        .flatten()
        .into_iter()
        .collect();
    find_upsampler(model_dir, &beside)
}

/// The latent upsampler of one model, loaded on first use. Where it is
/// is looked up again for every job ([`UpsamplerSlot::locate`]), so one
/// added, replaced or removed while the model stays loaded is seen.
#[derive(Default)]
pub struct UpsamplerSlot {
    state: parking_lot::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    path: Option<PathBuf>,
    loaded: Option<Arc<DeviceUpscaler>>,
}

impl UpsamplerSlot {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            state: parking_lot::Mutex::new(SlotState { path, loaded: None }),
        }
    }

    /// Where the upsampler is now ([`find_for_spec`]); loaded weights of
    /// another file are dropped.
    pub fn locate(&self, spec: &Path, model_dir: &Path) {
        let path = find_for_spec(spec, model_dir);
        let mut state = self.state.lock();
        if state.path != path {
            *state = SlotState { path, loaded: None };
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.state.lock().path.clone()
    }

    /// The upsampler on `device`, read the first time it is asked for;
    /// `None` when the model has none.
    pub fn get(
        &self,
        device: &Device,
        dtype: DType,
    ) -> Result<Option<Arc<DeviceUpscaler>>, EngineError> {
        let mut state = self.state.lock();
        let Some(path) = state.path.clone() else {
            return Ok(None);
        };
        if state.loaded.is_none() {
            state.loaded = Some(Arc::new(DeviceUpscaler::load(&path, device, dtype)?));
        }
        Ok(state.loaded.clone())
    }

    /// Drops the loaded weights (they are read again when next needed).
    pub fn unload(&self) {
        self.state.lock().loaded.take();
    }
}

/// Which recipe a job runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Passes {
    /// One pass at the asked size.
    Single,
    /// The two-pass recipe with these [`pass_sizes`].
    Two([(usize, usize); 2]),
}

/// Picks the recipe for a job and says which in a sentence for the user
/// (`None` where there is no choice to speak of: dev checkpoints). The
/// distilled checkpoints' Standard and High presets run two passes when
/// an upsampler is there; Draft stays one pass at the asked size (the two
/// passes cost more: 8 steps at 4/9 of the pixels and 4 at 16/9), and so
/// does an explicit step count.
pub fn choose(
    distilled: bool,
    quality: crate::engine::Quality,
    upsampler: Option<&Path>,
    (width, height): (usize, usize),
    spatial: usize,
) -> (Passes, Option<String>) {
    use crate::engine::Quality;
    if !distilled {
        return (Passes::Single, None);
    }
    let single = |why: String| (Passes::Single, Some(format!("single pass: {why}")));
    match quality {
        Quality::Draft => return single("the Draft preset runs one pass at the asked size".into()),
        Quality::Steps(n) => {
            return single(format!(
                "{n} steps asked for run as one pass at the asked size"
            ))
        }
        Quality::Standard | Quality::High => {}
    }
    let Some(path) = upsampler else {
        return single(
            "no latent upsampler found for this distilled model; put \
             ltxv-spatial-upscaler-0.9.8.safetensors beside the checkpoint (or a \
             latent_upsampler/ folder in the model folder) for LTX-Video's two-pass recipe"
                .into(),
        );
    };
    let Some(sizes) = pass_sizes(width, height, spatial) else {
        return single(format!(
            "{width}x{height} is too small for the two-pass recipe"
        ));
    };
    let [(w1, h1), (w2, h2)] = sizes;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let scaled = if (w2, h2) == (width, height) {
        String::new()
    } else {
        format!(", scaled to {width}x{height}")
    };
    (
        Passes::Two(sizes),
        Some(format!(
            "two passes (LTX-Video's distilled recipe): {w1}x{h1}, the latent upsampler \
             ({name}), {} refinement steps at {w2}x{h2}{scaled}",
            refine_steps()
        )),
    )
}

/// The sizes of the two passes for an asked `width` × `height`, or `None`
/// when the first pass would be smaller than one latent pixel.
pub fn pass_sizes(width: usize, height: usize, spatial: usize) -> Option<[(usize, usize); 2]> {
    let down = |x: usize| {
        let scaled = (x as f64 * DOWNSCALE) as usize;
        scaled - scaled % spatial
    };
    let (w, h) = (down(width), down(height));
    (w > 0 && h > 0).then_some([(w, h), (2 * w, 2 * h)])
}

/// The refinement pass's sampling (the first pass's, on the refinement
/// schedule) and the sigma its start latents are re-noised to.
pub fn refine_sampling(
    first: &Sampling,
    config: &SchedulerConfig,
    mu: Option<f64>,
) -> Result<(Sampling, f32), EngineError> {
    let full = Schedule::build(
        config,
        &ScheduleSource::Timesteps(REFINE_TIMESTEPS.to_vec()),
        mu,
    )
    .map_err(|e| EngineError::NoModel(format!("scheduler: {e}")))?;
    let mut timesteps = full.timesteps[REFINE_SKIPPED..].to_vec();
    // A last step at timestep 0 moves nothing: its tokens' sigma is 0 and
    // there is no lower one to step to. diffusers runs it anyway (a
    // transformer pass at the full size for nothing); LTX-Video's second
    // pass has no such step. Kept where it does something: re-noising
    // hard-conditioned tokens. The sigmas stay whole, as each step looks
    // its next sigma up among them.
    if first.image_cond_noise_scale == 0.0 {
        while timesteps.len() > 1 && timesteps.last() == Some(&0.0) {
            timesteps.pop();
        }
    }
    let schedule = Schedule {
        timesteps,
        sigmas: full.sigmas[REFINE_SKIPPED..].to_vec(),
    };
    let sigma = schedule.sigmas[0];
    Ok((
        Sampling {
            schedule,
            ..first.clone()
        },
        sigma,
    ))
}

/// Bilinear resampling of `planes` `[n, h, w]` to `[n, oh, ow]` as
/// PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`.
pub fn resize_planes(
    planes: &[f32],
    n: usize,
    (w, h): (usize, usize),
    (ow, oh): (usize, usize),
) -> Vec<f32> {
    if (w, h) == (ow, oh) {
        return planes.to_vec();
    }
    // Source coordinate of each output row or column, and its two taps.
    let taps = |src: usize, dst: usize| -> Vec<(usize, usize, f32)> {
        let scale = src as f32 / dst as f32;
        (0..dst)
            .map(|i| {
                let x = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
                let x0 = (x as usize).min(src - 1);
                let x1 = (x0 + 1).min(src - 1);
                (x0, x1, x - x0 as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(h, oh), taps(w, ow));
    let mut out = Vec::with_capacity(n * oh * ow);
    for plane in planes.chunks_exact(w * h) {
        for &(y0, y1, fy) in &rows {
            for &(x0, x1, fx) in &cols {
                let at = |y: usize, x: usize| plane[y * w + x];
                let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
                let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
                out.push(top + (bottom - top) * fy);
            }
        }
    }
    out
}

/// `conditions` (at `from`) resampled to `to`.
fn resized(conditions: &[Condition], from: (usize, usize), to: (usize, usize)) -> Vec<Condition> {
    conditions
        .iter()
        .map(|c| Condition {
            pixels: resize_planes(&c.pixels, 3 * c.frames, from, to),
            ..c.clone()
        })
        .collect()
}

/// One two-pass run of a shot asked for at `params`' size.
pub struct TwoPass<'a> {
    pub pipeline: &'a LtxPipeline,
    pub upscaler: &'a dyn LatentUpscaler,
    pub settings: UpsampleSettings,
    /// The first pass's sampling (the distilled timesteps).
    pub first: Sampling,
    /// The refinement pass's sampling and start sigma ([`refine_sampling`]).
    pub refine: (Sampling, f32),
    /// `[(first width, height), (refinement width, height)]`.
    pub sizes: [(usize, usize); 2],
}

/// Latent frames a window of a long shot takes from its neighbour
/// ([`super::long_shot`]), at the refinement pass's latent size.
pub struct Link<'a> {
    /// `[C, frames, h, w]`.
    pub latents: &'a [f32],
    pub frames: usize,
    pub latent_index: usize,
}

impl TwoPass<'_> {
    /// Runs both passes; the video comes back at `params`' size (the
    /// latents at the refinement pass's). The first pass draws from
    /// `first_noise`, the refinement and decode from `refine_noise`.
    pub fn run(
        &self,
        positive: &EncodedPrompt,
        negative: Option<&EncodedPrompt>,
        params: &RunParams,
        first_noise: &dyn NoiseSource,
        refine_noise: &dyn NoiseSource,
        observer: &dyn JobObserver,
    ) -> Result<RunOutput, EngineError> {
        let noises = (first_noise, refine_noise);
        let high = self.denoise(positive, negative, params, noises, None, observer)?;
        self.decode(high, params, refine_noise, observer)
    }

    /// Both passes without the decode. A window of a long shot gives its
    /// neighbour's latent frames as `link`: the refinement pass keeps them
    /// as they are (so neighbouring windows share those latents exactly),
    /// and the first pass keeps them resampled to its size, so its layout
    /// follows the neighbour's before the refinement adds detail.
    pub fn denoise(
        &self,
        positive: &EncodedPrompt,
        negative: Option<&EncodedPrompt>,
        params: &RunParams,
        (first_noise, refine_noise): (&dyn NoiseSource, &dyn NoiseSource),
        link: Option<&Link>,
        observer: &dyn JobObserver,
    ) -> Result<Denoised, EngineError> {
        let asked = (params.width, params.height);
        let [(w1, h1), (w2, h2)] = self.sizes;
        let (spatial, _) = self.pipeline.vae.compression();
        let first_params = RunParams {
            width: w1,
            height: h1,
            conditions: resized(&params.conditions, asked, (w1, h1)),
            sampling: self.first.clone(),
            ..params.clone()
        };
        let linked = |size: (usize, usize)| -> Vec<LatentCondition> {
            link.map(|l| {
                let channels = l.latents.len() / (l.frames * (w2 / spatial) * (h2 / spatial));
                LatentCondition {
                    latents: resize_planes(
                        l.latents,
                        channels * l.frames,
                        (w2 / spatial, h2 / spatial),
                        (size.0 / spatial, size.1 / spatial),
                    ),
                    frames: l.frames,
                    latent_index: l.latent_index,
                    strength: 1.0,
                }
            })
            .into_iter()
            .collect()
        };
        let low = self.pipeline.denoise_with(
            positive,
            negative,
            &first_params,
            first_noise,
            None,
            &linked((w1, h1)),
            observer,
        )?;
        if observer.should_abort() {
            return Err(EngineError::Aborted);
        }
        let stats = self.pipeline.vae.latent_statistics().ok_or_else(|| {
            EngineError::NoModel("the VAE does not give its latent statistics".into())
        })?;
        let (latents, dims) = upsample_latents(
            self.upscaler,
            &stats,
            &low.latents,
            low.latent_dims,
            self.settings,
        )?;
        let expected = [dims[0], low.latent_dims[1], h2 / spatial, w2 / spatial];
        if dims != expected {
            return Err(EngineError::NoModel(format!(
                "the latent upsampler made latents {dims:?} from {:?}; the two-pass recipe needs \
                 a spatial ×2 upsampler ({expected:?})",
                low.latent_dims
            )));
        }
        let (_, sigma) = &self.refine;
        let start = StartLatents {
            latents,
            sigma: *sigma,
        };
        self.pipeline.denoise_with(
            positive,
            negative,
            &self.second_params(params),
            refine_noise,
            Some(&start),
            &linked((w2, h2)),
            observer,
        )
    }

    /// The refinement pass's run of `params`.
    fn second_params(&self, params: &RunParams) -> RunParams {
        let [_, (w2, h2)] = self.sizes;
        RunParams {
            width: w2,
            height: h2,
            conditions: resized(&params.conditions, (params.width, params.height), (w2, h2)),
            sampling: self.refine.0.clone(),
            ..params.clone()
        }
    }

    /// Decodes [`denoise`](Self::denoise)'s latents at the refinement
    /// pass's size and scales the video to `params`' size.
    pub fn decode(
        &self,
        high: Denoised,
        params: &RunParams,
        refine_noise: &dyn NoiseSource,
        observer: &dyn JobObserver,
    ) -> Result<RunOutput, EngineError> {
        let [_, (w2, h2)] = self.sizes;
        let second_params = self.second_params(params);
        let mut out = self
            .pipeline
            .decode(high, &second_params, refine_noise, observer)?;
        out.video = resize_planes(
            &out.video,
            3 * params.num_frames,
            (w2, h2),
            (params.width, params.height),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_sizes_follow_the_published_downscale() {
        // LTX-Video: int(x * 0.6666666) rounded down to the VAE's 32.
        assert_eq!(pass_sizes(768, 512, 32), Some([(480, 320), (960, 640)]));
        assert_eq!(pass_sizes(1216, 704, 32), Some([(800, 448), (1600, 896)]));
        assert_eq!(pass_sizes(32, 64, 32), None);
    }

    #[test]
    fn the_recipe_is_chosen_and_said() {
        use crate::engine::Quality;
        let up = Path::new("/m/ltxv-spatial-upscaler-0.9.8.safetensors");
        let (p, said) = choose(true, Quality::High, Some(up), (768, 512), 32);
        assert_eq!(p, Passes::Two([(480, 320), (960, 640)]));
        let said = said.unwrap();
        assert!(
            said.starts_with("two passes") && said.contains("ltxv-spatial-upscaler-0.9.8"),
            "{said}"
        );
        let (p, said) = choose(true, Quality::Standard, None, (768, 512), 32);
        assert_eq!(p, Passes::Single);
        assert!(said.unwrap().contains("no latent upsampler found"));
        for q in [Quality::Draft, Quality::Steps(8)] {
            let (p, said) = choose(true, q, Some(up), (768, 512), 32);
            assert_eq!(p, Passes::Single);
            assert!(said.unwrap().starts_with("single pass"));
        }
        assert_eq!(
            choose(false, Quality::High, Some(up), (768, 512), 32),
            (Passes::Single, None)
        );
        let (p, said) = choose(true, Quality::High, Some(up), (32, 32), 32);
        assert_eq!(p, Passes::Single);
        assert!(said.unwrap().contains("too small"));
    }

    #[test]
    fn bilinear_resize_matches_half_pixel_centres() {
        // 2 -> 4 columns: PyTorch gives [a, .75a+.25b, .25a+.75b, b].
        let out = resize_planes(&[0.0, 4.0], 1, (2, 1), (4, 1));
        assert_eq!(out, vec![0.0, 1.0, 3.0, 4.0]);
        let same = resize_planes(&[1.0, 2.0, 3.0, 4.0], 1, (2, 2), (2, 2));
        assert_eq!(same, vec![1.0, 2.0, 3.0, 4.0]);
        // 4 -> 3: centres at 1/6, 1/2, 5/6 of the row.
        let out = resize_planes(&[0.0, 3.0, 6.0, 9.0], 1, (4, 1), (3, 1));
        let expected = [0.5f32, 4.5, 8.5];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn the_upsampler_is_found_as_a_folder_or_a_file_beside() {
        let dir = std::env::temp_dir().join(format!("genfx-upsampler-{}", std::process::id()));
        let model = dir.join("model");
        let beside = dir.join("checkpoints");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(&beside).unwrap();
        assert_eq!(find_upsampler(&model, &[&beside]), None);
        for name in [
            "ltxv-spatial-upscaler-0.9.7.safetensors",
            "ltxv-spatial-upscaler-0.9.8.safetensors",
            "other.safetensors",
        ] {
            std::fs::write(beside.join(name), b"").unwrap();
        }
        assert_eq!(
            find_upsampler(&model, &[&beside]),
            Some(beside.join("ltxv-spatial-upscaler-0.9.8.safetensors"))
        );
        std::fs::create_dir_all(model.join("latent_upsampler")).unwrap();
        std::fs::write(model.join("latent_upsampler").join("config.json"), b"{}").unwrap();
        assert_eq!(
            find_upsampler(&model, &[&beside]),
            Some(model.join("latent_upsampler"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
