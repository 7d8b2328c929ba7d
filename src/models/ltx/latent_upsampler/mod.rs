//! LTX-Video's latent upsampler (diffusers `LTXLatentUpsamplerModel`,
//! LTX-Video `LatentUpsampler`): doubles the height and width (or the
//! frames) of un-normalised VAE latents, for the distilled models'
//! two-pass recipe. Initial conv, GroupNorm, SiLU; residual blocks; a
//! convolution to 4× (8×, 2×) the channels and a pixel shuffle; more
//! residual blocks; a final conv back to the latent channels.
//!
//! Weights come from a diffusers folder (`latent_upsampler/` with
//! `config.json`) or from the single file LTX-Video publishes
//! (`ltxv-spatial-upscaler-0.9.8.safetensors`: the same tensor names, the
//! config as JSON under the metadata key `config`).

pub mod config;
mod layers;

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Device, SubOrder};
use crate::tensor::{DType, Tensor, TensorError};
use crate::weights::{VarBuilder, WeightError, WeightFiles};

pub use config::UpsamplerConfig;
use layers::{Conv, GroupNorm, ResBlock};

#[derive(Debug, thiserror::Error)]
pub enum UpsamplerError {
    #[error("latent upsampler: {0}")]
    Weights(#[from] WeightError),
    #[error("latent upsampler: {0}")]
    Tensor(#[from] TensorError),
    #[error("latent upsampler: {0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, UpsamplerError>;

pub struct LatentUpsampler {
    config: UpsamplerConfig,
    initial_conv: Conv,
    initial_norm: GroupNorm,
    res_blocks: Vec<ResBlock>,
    /// The convolution before the pixel shuffle.
    upsampler: Conv,
    post_upsample_res_blocks: Vec<ResBlock>,
    final_conv: Conv,
}

/// Where an upsampler's config and weights are: a folder with
/// `config.json` and its safetensors, or one safetensors file with the
/// config in its metadata (or, without it, implied by its tensors' shapes).
pub fn open(path: &Path) -> Result<(UpsamplerConfig, WeightFiles)> {
    if path.is_dir() {
        let config = UpsamplerConfig::from_config_json(&path.join("config.json"))?;
        Ok((config, WeightFiles::open_dir(path)?))
    } else {
        let files = WeightFiles::open_file(path)?;
        let config = match UpsamplerConfig::from_safetensors_metadata(path)? {
            Some(config) => config,
            None => {
                UpsamplerConfig::from_shapes(path, |name| files.shape(name).map(<[usize]>::to_vec))?
            }
        };
        Ok((config, files))
    }
}

impl LatentUpsampler {
    /// Reads the upsampler at `path` (see [`open`]) onto `device` in
    /// `dtype`; tensors the model does not use are an error (another
    /// model's file).
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let (config, files) = open(path)?;
        let files = Arc::new(files);
        let model = Self::new(config, &VarBuilder::new(files.clone(), dtype, device))?;
        files.check_all_used()?;
        Ok(model)
    }

    /// Builds the model from weights named as the reference names them.
    pub fn new(config: UpsamplerConfig, vb: &VarBuilder) -> Result<Self> {
        config
            .check()
            .map_err(|e| UpsamplerError::Input(format!("config: {e}")))?;
        let (c, m) = (config.in_channels, config.mid_channels);
        let three_d = config.dims == 3;
        let blocks = |name: &str| -> std::result::Result<Vec<ResBlock>, WeightError> {
            (0..config.num_blocks_per_stage)
                .map(|i| ResBlock::load(&vb.pp(name).pp(i), m, three_d))
                .collect()
        };
        // The upsampling conv: 3-D when time is doubled, else 2-D per frame.
        let factor = match (config.spatial_upsample, config.temporal_upsample) {
            (true, true) => 8,
            (true, false) => 4,
            _ => 2,
        };
        let upsampler = Conv::load(
            &vb.pp("upsampler").pp(0),
            m,
            factor * m,
            config.temporal_upsample,
        )?;
        Ok(Self {
            initial_conv: Conv::load(&vb.pp("initial_conv"), c, m, three_d)?,
            initial_norm: GroupNorm::load(&vb.pp("initial_norm"), m)?,
            res_blocks: blocks("res_blocks")?,
            upsampler,
            post_upsample_res_blocks: blocks("post_upsample_res_blocks")?,
            final_conv: Conv::load(&vb.pp("final_conv"), m, c, three_d)?,
            config,
        })
    }

    pub fn config(&self) -> &UpsamplerConfig {
        &self.config
    }

    /// `[b, in_channels, f, h, w]` un-normalised latents to
    /// `[b, in_channels, f', h', w']` (see [`UpsamplerConfig::output_size`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let &[b, c, f, h, w] = x.dims() else {
            return Err(UpsamplerError::Input(format!(
                "expected [batch, channels, frames, height, width] latents, got {:?}",
                x.dims()
            )));
        };
        if c != self.config.in_channels || b * f * h * w == 0 {
            return Err(UpsamplerError::Input(format!(
                "latents {:?} do not have the model's {} channels (or are empty)",
                x.dims(),
                self.config.in_channels
            )));
        }
        if self.config.dims == 2 {
            // Every frame alone: frames join the batch, one frame deep.
            let frames =
                x.permute(&[0, 2, 1, 3, 4])?
                    .contiguous()?
                    .reshape(&[b * f, c, 1, h, w])?;
            let y = self.body(&frames)?;
            let (oh, ow) = (y.dims()[3], y.dims()[4]);
            return Ok(y
                .reshape(&[b, f, c, oh, ow])?
                .permute(&[0, 2, 1, 3, 4])?
                .contiguous()?);
        }
        self.body(x)
    }

    fn body(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.initial_conv.forward(x)?;
        h = self.initial_norm.forward(&h, None, true)?;
        for block in &self.res_blocks {
            h = block.forward(&h)?;
        }
        h = self.upsampler.forward(&h)?;
        // Channels (c, p_t, p_h, p_w) move into frames, rows and columns;
        // a doubled time axis drops its first frame (a causal latent's
        // first frame stands for one picture).
        h = match (self.config.spatial_upsample, self.config.temporal_upsample) {
            (true, true) => h.depth_to_space_3d([2, 2, 2], SubOrder::TimeHeightWidth, 1)?,
            (true, false) => h.depth_to_space_3d([1, 2, 2], SubOrder::TimeHeightWidth, 0)?,
            _ => h.depth_to_space_3d([2, 1, 1], SubOrder::TimeHeightWidth, 1)?,
        };
        for block in &self.post_upsample_res_blocks {
            h = block.forward(&h)?;
        }
        Ok(self.final_conv.forward(&h)?)
    }
}
