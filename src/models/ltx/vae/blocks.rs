//! The VAE's block modules: `LTXVideo095DownBlock3D`, `LTXVideoMidBlock3d`
//! and `LTXVideoUpBlock3d` (the 0.9.5+ variants: no channel-changing resnets).

use super::config::DownsampleKind;
use super::error::Result;
use super::resnet::ResnetBlock3d;
use super::sampling::{Downsampler3d, Upsampler3d};
use super::timestep_embedding::TimestepEmbedder;
use super::weights::Weights;
use crate::tensor::Tensor;

/// `resnets.0` .. `resnets.{layers-1}` under `w`, all at `channels`.
fn load_resnets(
    w: &Weights<'_>,
    channels: usize,
    layers: usize,
    causal: bool,
    timestep_conditioning: bool,
) -> Result<Vec<ResnetBlock3d>> {
    (0..layers)
        .map(|i| {
            ResnetBlock3d::load(
                &w.at(format_args!("resnets.{i}")),
                channels,
                causal,
                timestep_conditioning,
            )
        })
        .collect()
}

pub struct DownBlock095 {
    resnets: Vec<ResnetBlock3d>,
    downsampler: Option<Downsampler3d>,
}

impl DownBlock095 {
    pub fn load(
        w: &Weights<'_>,
        in_channels: usize,
        out_channels: usize,
        layers: usize,
        downsample: Option<DownsampleKind>,
        causal: bool,
    ) -> Result<Self> {
        let resnets = load_resnets(w, in_channels, layers, causal, false)?;
        let downsampler = downsample
            .map(|kind| {
                Downsampler3d::load(
                    &w.at("downsamplers.0"),
                    in_channels,
                    out_channels,
                    kind.stride(),
                    causal,
                )
            })
            .transpose()?;
        Ok(Self {
            resnets,
            downsampler,
        })
    }

    pub fn forward(&self, x: Tensor) -> Result<Tensor> {
        let mut h = x;
        for r in &self.resnets {
            h = r.forward(&h, None)?;
        }
        match &self.downsampler {
            Some(d) => d.forward(&h),
            None => Ok(h),
        }
    }
}

pub struct MidBlock {
    time_embedder: Option<TimestepEmbedder>,
    resnets: Vec<ResnetBlock3d>,
}

impl MidBlock {
    pub fn load(
        w: &Weights<'_>,
        channels: usize,
        layers: usize,
        causal: bool,
        timestep_conditioning: bool,
    ) -> Result<Self> {
        Ok(Self {
            time_embedder: timestep_conditioning
                .then(|| TimestepEmbedder::load(&w.at("time_embedder"), channels * 4))
                .transpose()?,
            resnets: load_resnets(w, channels, layers, causal, timestep_conditioning)?,
        })
    }

    /// `timesteps` are the decoder's scaled timesteps, one per batch item.
    pub fn forward(&self, x: Tensor, timesteps: Option<&[f32]>) -> Result<Tensor> {
        let temb = match (&self.time_embedder, timesteps) {
            (Some(e), Some(t)) => Some(e.forward(t)?),
            _ => None,
        };
        let mut h = x;
        for r in &self.resnets {
            h = r.forward(&h, temb.as_ref())?;
        }
        Ok(h)
    }
}

/// An upsampler, then the resnets (with their time embedder) of a mid
/// block at the upsampled width: the weight names are the same.
pub struct UpBlock {
    upsampler: Option<Upsampler3d>,
    resnets: MidBlock,
}

impl UpBlock {
    pub fn load(
        w: &Weights<'_>,
        channels: usize,
        layers: usize,
        upsampler: Option<(bool, usize)>,
        causal: bool,
        timestep_conditioning: bool,
    ) -> Result<Self> {
        Ok(Self {
            upsampler: upsampler
                .map(|(residual, factor)| {
                    Upsampler3d::load(
                        &w.at("upsamplers.0"),
                        channels * factor,
                        residual,
                        factor,
                        causal,
                    )
                })
                .transpose()?,
            resnets: MidBlock::load(w, channels, layers, causal, timestep_conditioning)?,
        })
    }

    pub fn forward(&self, x: Tensor, timesteps: Option<&[f32]>) -> Result<Tensor> {
        let h = match &self.upsampler {
            Some(u) => u.forward(&x)?,
            None => x,
        };
        self.resnets.forward(h, timesteps)
    }
}
