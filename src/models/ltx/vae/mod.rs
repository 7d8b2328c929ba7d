//! LTX-Video's video VAE, diffusers' `AutoencoderKLLTXVideo` in its 0.9.5+
//! layout (targets 0.9.5 .. 0.9.8), on any backend: the encoder and decoder
//! compute on `Tensor`s of the device and dtype they were loaded for, and
//! take and give host [`Volume`]s. Module and weight
//! names mirror diffusers' so `diffusion_pytorch_model.safetensors` maps one
//! to one. Besides the model itself this holds the two pieces of
//! `LTXConditionPipeline` that belong to the VAE: turning conditioning frames
//! into normalised latents, and turning denoised latents back into frames
//! with the decode timestep and decode noise.

mod blocks;
mod causal_conv3d;
pub mod config;
mod decoder;
mod encoder;
pub mod error;
mod resnet;
mod sampling;
pub mod tiling;
mod timestep_embedding;
pub mod volume;
pub mod weights;

use std::path::Path;

use crate::backend::Device;
use crate::tensor::DType;
use crate::weights::WeightFiles;

pub use config::VaeConfig;
pub use error::{Result, VaeError};
pub use tiling::{decode_bytes, tiling_ladder, DecodeCost, SpatialTiling, TemporalTiling, Tiling};
pub use volume::Volume;
pub use weights::{ShapedTensor, TensorMap, TensorSource};

use decoder::Decoder;
use encoder::Encoder;
use weights::Weights;

/// File names of the VAE inside a diffusers model folder's `vae/`.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// Decoder activations alive at a decode's peak, in volumes of its last
/// level (see [`AutoencoderKLLTXVideo::decode_cost`]).
const ACTIVATIONS_AT_PEAK: f64 = 12.0;

/// [`AutoencoderKLLTXVideo::decode_cost`] of a VAE with `config` whose
/// activations are in `dtype`, before any weight is loaded (the memory
/// guard sizes jobs from configs).
pub fn decode_cost_of(config: &VaeConfig, dtype: DType) -> DecodeCost {
    let p = config.patch_size.max(1);
    let widest = config
        .decoder_plan()
        .map(|plan| plan.out_block_channels)
        .unwrap_or(config.latent_channels);
    DecodeCost {
        activation_bytes_per_voxel: ACTIVATIONS_AT_PEAK * (dtype.size_in_bytes() * widest) as f64
            / (p * p) as f64,
        output_bytes_per_voxel: (config.out_channels * 4) as f64,
    }
}

/// Bytes an encode of `[frames, height, width]` pixels needs at its peak,
/// estimated as a decode's: [`ACTIVATIONS_AT_PEAK`] volumes of the
/// encoder's first (widest in pixels) level, plus the f32 input and its
/// copy in `dtype`.
pub fn encode_bytes_of(
    config: &VaeConfig,
    dtype: DType,
    [frames, height, width]: [usize; 3],
) -> f64 {
    let p = config.patch_size.max(1);
    let first = config
        .block_out_channels
        .first()
        .copied()
        .unwrap_or(config.latent_channels);
    let voxels = (frames * height * width) as f64;
    ACTIVATIONS_AT_PEAK * (dtype.size_in_bytes() * first) as f64 / (p * p) as f64 * voxels
        + (config.in_channels * (4 + dtype.size_in_bytes())) as f64 * voxels
}

pub struct AutoencoderKLLTXVideo {
    config: VaeConfig,
    device: Device,
    dtype: DType,
    spatial_ratio: usize,
    temporal_ratio: usize,
    encoder: Encoder,
    decoder: Decoder,
    latents_mean: Vec<f32>,
    latents_std: Vec<f32>,
}

/// The encoder's output: a diagonal Gaussian per latent value.
pub struct LatentDistribution {
    /// `[b, 2 * latent, f, h, w]`: means, then log-variances.
    params: Volume,
}

/// How the pipeline perturbs latents before decoding
/// (`decode_timestep`, `decode_noise_scale` of `LTXConditionPipeline`).
#[derive(Clone, Copy, Debug)]
pub struct DecodeConditioning<'a> {
    /// One decode timestep per batch item, or one for all.
    pub timestep: &'a [f32],
    /// One noise scale per batch item, or one for all; `None` means "same as
    /// the timestep", the pipeline's default.
    pub noise_scale: Option<&'a [f32]>,
    /// Standard normal noise shaped like the latents; needed unless every
    /// noise scale is zero.
    pub noise: Option<&'a Volume>,
}

impl AutoencoderKLLTXVideo {
    /// Loads `config.json` and `diffusion_pytorch_model.safetensors` from a
    /// diffusers `vae/` folder.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, &Device::cpu(), DType::F32)
    }

    /// [`load`](Self::load) onto `device`, with weights and activations in
    /// `dtype` (f32 on the CPU; a GPU's compute dtype or f32 there).
    pub fn load_on(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|source| VaeError::Io {
            path: config_path.display().to_string(),
            source,
        })?;
        let config = VaeConfig::from_json(&text, &config_path.display().to_string())?;
        let files = WeightFiles::open_file(&dir.join(WEIGHTS_FILE))?;
        let vae = Self::from_source_on(config, &files, device, dtype)?;
        // Leftover tensors mean another layout (e.g. 0.9.1's noise scales).
        files.check_all_used()?;
        Ok(vae)
    }

    /// Builds the model from a config and any source of diffusers-named tensors.
    pub fn from_source(config: VaeConfig, source: &dyn TensorSource) -> Result<Self> {
        Self::from_source_on(config, source, &Device::cpu(), DType::F32)
    }

    /// [`from_source`](Self::from_source) onto `device` in `dtype`.
    pub fn from_source_on(
        config: VaeConfig,
        source: &dyn TensorSource,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let (spatial_ratio, temporal_ratio) = config.validate()?;
        let w = Weights::new(source, device, dtype);
        let encoder = Encoder::load(&w.at("encoder"), &config)?;
        let decoder = Decoder::load(&w.at("decoder"), &config)?;
        let latent_channels = config.latent_channels;
        let stats = |name: &str| -> Result<Vec<f32>> {
            match source.fetch_as(name, &[latent_channels])? {
                None => Err(VaeError::Statistics(format!(
                    "`{name}` is missing from the VAE weights"
                ))),
                Some((shape, _)) if shape != [latent_channels] => {
                    Err(VaeError::Statistics(format!(
                    "`{name}` has shape {shape:?}, the VAE has {latent_channels} latent channels"
                )))
                }
                Some((_, data)) => Ok(data),
            }
        };
        let (mean, std) = (stats("latents_mean")?, stats("latents_std")?);
        let mut vae = Self {
            device: device.clone(),
            dtype,
            spatial_ratio,
            temporal_ratio,
            encoder,
            decoder,
            latents_mean: Vec::new(),
            latents_std: Vec::new(),
            config,
        };
        vae.set_statistics(mean, std)?;
        Ok(vae)
    }

    /// Replaces the per-channel latent statistics (e.g. from another file).
    pub fn set_statistics(&mut self, mean: Vec<f32>, std: Vec<f32>) -> Result<()> {
        let n = self.config.latent_channels;
        if mean.len() != n || std.len() != n {
            return Err(VaeError::Statistics(format!(
                "latents_mean has {} and latents_std {} values, the VAE has {n} latent channels",
                mean.len(),
                std.len()
            )));
        }
        if let Some(bad) = mean.iter().find(|v| !v.is_finite()) {
            return Err(VaeError::Statistics(format!("latents_mean holds {bad}")));
        }
        if let Some(bad) = std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(VaeError::Statistics(format!(
                "latents_std holds {bad}; it must be positive"
            )));
        }
        self.latents_mean = mean;
        self.latents_std = std;
        Ok(())
    }

    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The per-channel latent `(mean, std)` the pipeline normalises with.
    pub fn latent_statistics(&self) -> (&[f32], &[f32]) {
        (&self.latents_mean, &self.latents_std)
    }

    /// Where the encoder and decoder compute.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of their weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// (spatial, temporal) compression: 32 and 8 for LTX-Video.
    pub fn compression(&self) -> (usize, usize) {
        (self.spatial_ratio, self.temporal_ratio)
    }

    /// What a decode costs in device memory per output voxel of a tile,
    /// estimated from the decoder's last (widest) level: its activations are
    /// `out_block_channels` at a `patch_size`² of the output pixels, and at
    /// the peak about [`ACTIVATIONS_AT_PEAK`] such volumes live at once
    /// (measured in dry runs of the 0.9.5 VAE at 768x512; see
    /// `cargo xtask bench gpu-plan`).
    pub fn decode_cost(&self) -> DecodeCost {
        decode_cost_of(&self.config, self.dtype)
    }

    /// The largest tiles (fewest, so fastest) in which decoding latents of
    /// `[frames, height, width]` needs at most `budget` device bytes by
    /// [`decode_cost`](Self::decode_cost); 16 frames of 256x256 pixels at
    /// the least.
    pub fn tiling_within(&self, latent: [usize; 3], budget: usize) -> Tiling {
        tiling::tiling_within(
            &self.decode_cost(),
            budget as f64,
            latent,
            [self.spatial_ratio, self.temporal_ratio],
        )
    }

    /// Latent `[frames, height, width]` of a clip with these pixel dimensions.
    pub fn latent_size(&self, frames: usize, height: usize, width: usize) -> Result<[usize; 3]> {
        self.check_clip_size(frames, height, width)?;
        Ok([
            (frames - 1) / self.temporal_ratio + 1,
            height / self.spatial_ratio,
            width / self.spatial_ratio,
        ])
    }

    fn check_clip_size(&self, frames: usize, height: usize, width: usize) -> Result<()> {
        let (s, t) = (self.spatial_ratio, self.temporal_ratio);
        if frames == 0 || (frames - 1) % t != 0 {
            return Err(VaeError::Input(format!(
                "{frames} frames: the VAE needs {t}k+1 frames (1, {}, {}, ...)",
                t + 1,
                2 * t + 1
            )));
        }
        if height == 0 || width == 0 || height % s != 0 || width % s != 0 {
            return Err(VaeError::Input(format!(
                "{width}x{height} pixels: width and height must be positive multiples of {s}"
            )));
        }
        Ok(())
    }

    /// Encodes RGB video in [-1, 1], `[b, 3, 8k+1, 32m, 32n]`.
    pub fn encode(&self, video: &Volume) -> Result<LatentDistribution> {
        let [b, c, f, h, w] = video.dims();
        if b == 0 {
            return Err(VaeError::Input("empty batch".into()));
        }
        if c != self.config.in_channels {
            return Err(VaeError::Input(format!(
                "video has {c} channels, the VAE takes {}",
                self.config.in_channels
            )));
        }
        self.check_clip_size(f, h, w)?;
        check_finite(video, "video")?;
        let x = video.to_tensor(&self.device)?.to_dtype(self.dtype)?;
        let params = self.encoder.forward(&x)?;
        Ok(LatentDistribution {
            params: Volume::from_tensor(&params)?,
        })
    }

    /// What the pipeline does with conditioning frames: encode, sample the
    /// posterior with `noise` (standard normal, shaped like the latents), and
    /// normalise with the per-channel statistics. `LTXConditionPipeline`
    /// passes no scaling factor here, so none is applied (it is 1.0 in every
    /// LTX checkpoint).
    pub fn encode_conditioning(&self, video: &Volume, noise: &Volume) -> Result<Volume> {
        let mut latents = self.encode(video)?.sample(noise)?;
        self.normalize_latents(&mut latents, 1.0)?;
        Ok(latents)
    }

    /// `(z - mean) * scaling_factor / std` per channel.
    pub fn normalize_latents(&self, z: &mut Volume, scaling_factor: f32) -> Result<()> {
        self.check_latents(z)?;
        let dims = z.flat_dims();
        normalize_channels(
            z.data_mut(),
            dims,
            &self.latents_mean,
            &self.latents_std,
            scaling_factor,
            false,
        );
        Ok(())
    }

    /// `z * std / scaling_factor + mean` per channel, with the config's
    /// scaling factor, as the pipeline does before decoding.
    pub fn denormalize_latents(&self, z: &mut Volume) -> Result<()> {
        self.check_latents(z)?;
        let dims = z.flat_dims();
        let scale = self.config.scaling_factor;
        normalize_channels(
            z.data_mut(),
            dims,
            &self.latents_mean,
            &self.latents_std,
            scale,
            true,
        );
        Ok(())
    }

    fn check_latents(&self, z: &Volume) -> Result<()> {
        let [b, c, f, h, w] = z.dims();
        if c != self.config.latent_channels {
            return Err(VaeError::Input(format!(
                "latents have {c} channels, the VAE has {}",
                self.config.latent_channels
            )));
        }
        if b == 0 || f == 0 || h == 0 || w == 0 {
            return Err(VaeError::Input(format!("empty latents {:?}", z.dims())));
        }
        Ok(())
    }

    /// Decodes raw (denormalised) latents; `timestep` has one value per batch
    /// item or one for all and matters only to timestep-conditioned decoders.
    pub fn decode(&self, z: &Volume, timestep: &[f32], tiling: &Tiling) -> Result<Volume> {
        self.check_latents(z)?;
        check_finite(z, "latents")?;
        let timesteps = per_item(timestep, z.batch(), "decode timestep")?;
        if self.decoder.timestep_conditioned() && timesteps.is_empty() {
            return Err(VaeError::Input(
                "this VAE decoder needs a decode timestep".into(),
            ));
        }
        let z = z.to_tensor(&self.device)?.to_dtype(self.dtype)?;
        let video = tiling::decode(
            &self.decoder,
            &z,
            &timesteps,
            tiling,
            self.spatial_ratio,
            self.temporal_ratio,
        )?;
        Volume::from_tensor(&video)
    }

    /// What the pipeline does with denoised latents: denormalise, mix in
    /// decode noise `(1 - s) z + s noise` (timestep-conditioned decoders
    /// only), and decode at the decode timestep. Returns video in about
    /// [-1, 1], `[b, 3, 8(f-1)+1, 32h, 32w]`.
    pub fn decode_latents(
        &self,
        z: &Volume,
        cond: &DecodeConditioning<'_>,
        tiling: &Tiling,
    ) -> Result<Volume> {
        let mut latents = z.clone();
        self.denormalize_latents(&mut latents)?;
        if !self.decoder.timestep_conditioned() {
            return self.decode(&latents, &[], tiling);
        }
        let batch = z.batch();
        let timesteps = per_item(cond.timestep, batch, "decode timestep")?;
        if timesteps.is_empty() {
            return Err(VaeError::Input(
                "this VAE decoder needs a decode timestep".into(),
            ));
        }
        let scales = match cond.noise_scale {
            Some(s) => per_item(s, batch, "decode noise scale")?,
            None => timesteps.clone(),
        };
        if let Some(bad) = scales.iter().find(|s| !s.is_finite()) {
            return Err(VaeError::Input(format!("decode noise scale {bad}")));
        }
        if scales.iter().any(|&s| s != 0.0) {
            let noise = cond.noise.ok_or_else(|| {
                VaeError::Input("decode noise scale is not zero but no noise was given".into())
            })?;
            if noise.dims() != z.dims() {
                return Err(VaeError::Input(format!(
                    "decode noise has shape {:?}, the latents {:?}",
                    noise.dims(),
                    z.dims()
                )));
            }
            check_finite(noise, "decode noise")?;
            let per_item_len = latents.data().len() / batch;
            for (b, s) in scales.iter().enumerate() {
                let range = b * per_item_len..(b + 1) * per_item_len;
                for (l, n) in latents.data_mut()[range.clone()]
                    .iter_mut()
                    .zip(&noise.data()[range])
                {
                    *l = (1.0 - s) * *l + s * n;
                }
            }
        }
        self.decode(&latents, &timesteps, tiling)
    }
}

impl LatentDistribution {
    /// The raw encoder output `[b, 2 * latent, f, h, w]` (diffusers'
    /// `latent_dist.parameters`).
    pub fn parameters(&self) -> &Volume {
        &self.params
    }

    /// The posterior mean (`latent_dist.mode()`).
    pub fn mode(&self) -> Volume {
        let [b, c2, f, h, w] = self.params.dims();
        let half = c2 / 2;
        let plane = f * h * w;
        let mut data = Vec::with_capacity(b * half * plane);
        for bi in 0..b {
            data.extend_from_slice(&self.params.data()[bi * c2 * plane..][..half * plane]);
        }
        Volume::from_parts([b, half, f, h, w], data)
    }

    /// `mean + exp(0.5 * clamp(logvar, -30, 20)) * noise`
    /// (`latent_dist.sample()` with the noise supplied).
    pub fn sample(&self, noise: &Volume) -> Result<Volume> {
        let mut out = self.mode();
        if noise.dims() != out.dims() {
            return Err(VaeError::Input(format!(
                "posterior noise has shape {:?}, the latents {:?}",
                noise.dims(),
                out.dims()
            )));
        }
        check_finite(noise, "posterior noise")?;
        let [b, c, f, h, w] = out.dims();
        let plane = c * f * h * w;
        for bi in 0..b {
            let logvar = &self.params.data()[(2 * bi + 1) * plane..(2 * bi + 2) * plane];
            let range = bi * plane..(bi + 1) * plane;
            for ((o, n), lv) in out.data_mut()[range.clone()]
                .iter_mut()
                .zip(&noise.data()[range])
                .zip(logvar)
            {
                *o += (0.5 * lv.clamp(-30.0, 20.0)).exp() * n;
            }
        }
        Ok(out)
    }
}

/// Expands a per-item list (or one value for all) to `batch` values.
fn per_item(values: &[f32], batch: usize, what: &str) -> Result<Vec<f32>> {
    match values.len() {
        0 => Ok(Vec::new()),
        1 => Ok(vec![values[0]; batch]),
        n if n == batch => Ok(values.to_vec()),
        n => Err(VaeError::Input(format!(
            "{n} values of {what} for a batch of {batch}"
        ))),
    }
}

/// `y = (x - mean[c]) * scale / std[c]` on host latents `[batch, channels,
/// positions]`: the pipeline's per-channel latent normalisation. `inverse`
/// undoes it: `x = y * std[c] / scale + mean[c]`. A few thousand values,
/// next to the pipeline's other host-side latent bookkeeping.
fn normalize_channels(
    x: &mut [f32],
    [_, channels, positions]: [usize; 3],
    mean: &[f32],
    std: &[f32],
    scale: f32,
    inverse: bool,
) {
    for (i, row) in x.chunks_exact_mut(positions.max(1)).enumerate() {
        let c = i % channels;
        let (m, s) = (mean[c], std[c]);
        for v in row {
            *v = if inverse {
                *v * s / scale + m
            } else {
                (*v - m) * scale / s
            };
        }
    }
}

fn check_finite(v: &Volume, what: &str) -> Result<()> {
    match v.data().iter().position(|x| !x.is_finite()) {
        Some(i) => Err(VaeError::Input(format!(
            "{what} holds {} at index {i}",
            v.data()[i]
        ))),
        None => Ok(()),
    }
}
