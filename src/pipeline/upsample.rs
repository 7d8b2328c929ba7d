//! The latent upsampling step between the two passes, as diffusers'
//! `LTXLatentUpsamplePipeline` runs it with `output_type="latent"`:
//! normalised latents are denormalised with the VAE's statistics, upsampled,
//! optionally matched per channel to the input's mean and standard
//! deviation (AdaIN, blended by a factor) and tone-mapped, and normalised
//! again. The model runs on its device; the statistics on the host.

use std::path::Path;

use super::components::LatentStatistics;
use crate::backend::Device;
use crate::engine::EngineError;
use crate::models::ltx::latent_upsampler::{LatentUpsampler, UpsamplerError};
use crate::tensor::{DType, Tensor};

/// `LTXLatentUpsamplePipeline`'s options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpsampleSettings {
    /// 0 keeps the upsampler's output; 1 gives it the input's per-channel
    /// mean and standard deviation.
    pub adain_factor: f32,
    /// 0 to 1: how strongly large latent values are compressed.
    pub tone_map_compression: f32,
}

/// A latent upsampler ready to run: raw (denormalised) latents in and out.
pub trait LatentUpscaler: Send + Sync {
    /// `[C, f, h, w]` raw latents to the upsampled ones and their dims.
    fn upscale(
        &self,
        latents: &[f32],
        dims: [usize; 4],
    ) -> Result<(Vec<f32>, [usize; 4]), EngineError>;
}

fn failed(e: UpsamplerError) -> EngineError {
    match e {
        UpsamplerError::Weights(_) => EngineError::NoModel(e.to_string()),
        UpsamplerError::Tensor(crate::tensor::TensorError::OutOfMemory { .. }) => {
            EngineError::OutOfMemory(format!(
                "{e}; try a smaller resolution or length, or close other GPU work"
            ))
        }
        e => EngineError::Failed(e.to_string()),
    }
}

/// [`LatentUpsampler`] on a device.
pub struct DeviceUpscaler {
    model: LatentUpsampler,
    device: Device,
    dtype: DType,
}

impl DeviceUpscaler {
    /// Loads the upsampler at `path` (a `latent_upsampler/` folder or an
    /// `ltxv-spatial-upscaler*.safetensors` file).
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self, EngineError> {
        Ok(Self {
            model: LatentUpsampler::load(path, device, dtype).map_err(failed)?,
            device: device.clone(),
            dtype,
        })
    }

    /// A model already built on `device` in `dtype`.
    pub fn new(model: LatentUpsampler, device: &Device, dtype: DType) -> Self {
        Self {
            model,
            device: device.clone(),
            dtype,
        }
    }

    pub fn model(&self) -> &LatentUpsampler {
        &self.model
    }
}

impl LatentUpscaler for DeviceUpscaler {
    fn upscale(
        &self,
        latents: &[f32],
        [c, f, h, w]: [usize; 4],
    ) -> Result<(Vec<f32>, [usize; 4]), EngineError> {
        let run = || -> Result<Tensor, UpsamplerError> {
            let x = Tensor::from_slice(latents, &[1, c, f, h, w], &self.device)?
                .to_dtype(self.dtype)?;
            self.model.forward(&x)
        };
        let y = run().map_err(failed)?;
        let d = y.dims().to_vec();
        let data = y
            .to_vec_f32()
            .map_err(|e| failed(UpsamplerError::Tensor(e)))?;
        Ok((data, [d[1], d[2], d[3], d[4]]))
    }
}

/// Upsamples normalised latents `[C, f, h, w]` (see the module docs);
/// returns normalised latents and their dims.
pub fn upsample_latents(
    model: &dyn LatentUpscaler,
    stats: &LatentStatistics,
    latents: &[f32],
    dims: [usize; 4],
    settings: UpsampleSettings,
) -> Result<(Vec<f32>, [usize; 4]), EngineError> {
    let c = dims[0];
    if stats.mean.len() != c
        || stats.std.len() != c
        || latents.len() != dims.iter().product::<usize>()
    {
        return Err(EngineError::Failed(format!(
            "latents {dims:?} ({} values) do not match the VAE's {} channel statistics",
            latents.len(),
            stats.mean.len()
        )));
    }
    if !(0.0..=1.0).contains(&settings.tone_map_compression) {
        return Err(EngineError::InvalidRequest(format!(
            "tone map compression {} must be within 0..1",
            settings.tone_map_compression
        )));
    }
    let sf = stats.scaling_factor;
    let mut raw = latents.to_vec();
    per_channel(&mut raw, c, |ch, v| {
        *v = *v * stats.std[ch] / sf + stats.mean[ch]
    });
    let (mut up, out_dims) = model.upscale(&raw, dims)?;
    if settings.adain_factor > 0.0 {
        adain(&mut up, &raw, c, settings.adain_factor);
    }
    if settings.tone_map_compression > 0.0 {
        tone_map(&mut up, settings.tone_map_compression);
    }
    per_channel(&mut up, c, |ch, v| {
        *v = (*v - stats.mean[ch]) * sf / stats.std[ch]
    });
    Ok((up, out_dims))
}

/// Calls `f(channel, value)` for every value of `[C, ..]` data.
fn per_channel(data: &mut [f32], channels: usize, f: impl Fn(usize, &mut f32)) {
    let per = data.len() / channels.max(1);
    for (ch, row) in data.chunks_exact_mut(per.max(1)).enumerate() {
        row.iter_mut().for_each(|v| f(ch, v));
    }
}

/// Mean and unbiased standard deviation (torch.std_mean's default), in f64.
fn std_mean(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let ss: f64 = x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
    ((ss / (n - 1.0)).sqrt(), mean)
}

/// AdaIN per channel of `[C, ..]` `x` towards `reference`'s statistics,
/// then `lerp(x, matched, factor)`.
fn adain(x: &mut [f32], reference: &[f32], channels: usize, factor: f32) {
    let per = x.len() / channels;
    let per_ref = reference.len() / channels;
    for ch in 0..channels {
        let (r_sd, r_mean) = std_mean(&reference[ch * per_ref..(ch + 1) * per_ref]);
        let row = &mut x[ch * per..(ch + 1) * per];
        let (i_sd, i_mean) = std_mean(row);
        for v in row.iter_mut() {
            let matched = ((f64::from(*v) - i_mean) / i_sd * r_sd + r_mean) as f32;
            *v += factor * (matched - *v);
        }
    }
}

/// diffusers' `tone_map_latents`: `x · (1 - 0.8 s σ(4 s (|x| - 1)))` with
/// `s = 0.75 · compression`.
fn tone_map(x: &mut [f32], compression: f32) {
    let s = compression * 0.75;
    for v in x.iter_mut() {
        let sigmoid = 1.0 / (1.0 + (-(4.0 * s * (v.abs() - 1.0))).exp());
        *v *= 1.0 - 0.8 * s * sigmoid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adain_matches_the_reference_statistics_and_blends() {
        let reference: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let mut x: Vec<f32> = (0..16)
            .map(|i| (i as f32 * 0.37).sin() * 5.0 + 2.0)
            .collect();
        let orig = x.clone();
        adain(&mut x, &reference, 2, 1.0);
        for ch in 0..2 {
            let (sd, mean) = std_mean(&x[ch * 8..ch * 8 + 8]);
            let (rsd, rmean) = std_mean(&reference[ch * 4..ch * 4 + 4]);
            assert!((sd - rsd).abs() < 1e-5 && (mean - rmean).abs() < 1e-5);
        }
        let mut half = orig.clone();
        adain(&mut half, &reference, 2, 0.5);
        for ((h, o), m) in half.iter().zip(&orig).zip(&x) {
            assert!((h - (o + m) / 2.0).abs() < 1e-5);
        }
    }

    #[test]
    fn tone_map_is_the_identity_at_zero_and_shrinks_large_values() {
        let mut x = vec![-3.0f32, 0.5, 4.0];
        tone_map(&mut x, 0.0);
        assert_eq!(x, vec![-3.0, 0.5, 4.0]);
        tone_map(&mut x, 1.0);
        assert!(x[0] > -3.0 && x[2] < 4.0 && x[1] < 0.5 && x[1] > 0.4);
    }
}
