//! `LTXVideoDecoder3d` (0.9.5+): conv_in, timestep-conditioned mid and up
//! blocks with depth-to-space upsamplers, norm_out with a final timestep
//! scale/shift, SiLU, conv_out, unpatchify.

use crate::backend::SubOrder;
use crate::tensor::Tensor;

use super::blocks::{MidBlock, UpBlock};
use super::causal_conv3d::CausalConv3d;
use super::config::VaeConfig;
use super::error::Result;
use super::resnet::{row, NORM_EPS};
use super::timestep_embedding::TimestepEmbedder;
use super::weights::Weights;

/// Present when the decoder is timestep-conditioned.
struct TimestepConditioning {
    scale_multiplier: f32,
    embedder: TimestepEmbedder,
    /// `[2, channels]`: shift, scale offsets for the output norm.
    scale_shift_table: Tensor,
}

pub struct Decoder {
    patch_size: usize,
    out_channels: usize,
    conv_in: CausalConv3d,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_out: CausalConv3d,
    timestep: Option<TimestepConditioning>,
}

impl Decoder {
    pub fn load(w: &Weights<'_>, config: &VaeConfig) -> Result<Self> {
        let plan = config.decoder_plan()?;
        let causal = config.decoder_causal;
        let tc = config.timestep_conditioning;
        let p = config.patch_size;
        let last = plan.out_block_channels;
        let up_blocks = plan
            .up_blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                UpBlock::load(
                    &w.at(format_args!("up_blocks.{i}")),
                    b.channels,
                    b.layers,
                    b.upsampler,
                    causal,
                    tc,
                )
            })
            .collect::<Result<_>>()?;
        let timestep = if tc {
            Some(TimestepConditioning {
                scale_multiplier: w.get("timestep_scale_multiplier", &[])?[0],
                embedder: TimestepEmbedder::load(&w.at("time_embedder"), last * 2)?,
                scale_shift_table: w.tensor("scale_shift_table", &[2, last])?,
            })
        } else {
            None
        };
        Ok(Self {
            patch_size: p,
            out_channels: config.out_channels,
            conv_in: CausalConv3d::load(
                &w.at("conv_in"),
                config.latent_channels,
                plan.mid_channels,
                3,
                causal,
            )?,
            mid_block: MidBlock::load(
                &w.at("mid_block"),
                plan.mid_channels,
                plan.mid_layers,
                causal,
                tc,
            )?,
            up_blocks,
            conv_out: CausalConv3d::load(
                &w.at("conv_out"),
                last,
                config.out_channels * p * p,
                3,
                causal,
            )?,
            timestep,
        })
    }

    pub fn timestep_conditioned(&self) -> bool {
        self.timestep.is_some()
    }

    /// Latents `[b, latent, f, h, w]` -> video `[b, out, 8(f-1)+1, 32h, 32w]`
    /// (for the 0.9.5 ratios). `timesteps` holds one decode timestep per
    /// batch item; it is ignored by decoders without timestep conditioning.
    pub fn forward(&self, z: &Tensor, timesteps: &[f32]) -> Result<Tensor> {
        let mut x = self.conv_in.forward(z, None)?;
        let scaled: Option<Vec<f32>> = self
            .timestep
            .as_ref()
            .map(|tc| timesteps.iter().map(|t| t * tc.scale_multiplier).collect());
        x = self.mid_block.forward(x, scaled.as_deref())?;
        for block in &self.up_blocks {
            x = block.forward(x, scaled.as_deref())?;
        }

        let modulation = match (&self.timestep, &scaled) {
            (Some(tc), Some(t)) => {
                let [b, c] = [x.dims()[0], x.dims()[1]];
                // [b, 2, c]: shift, then scale, each plus its table row.
                let temb = tc
                    .embedder
                    .forward(t)?
                    .reshape(&[b, 2, c])?
                    .add(&tc.scale_shift_table)?;
                Some((row(&temb, 1)?, row(&temb, 0)?))
            }
            _ => None,
        };
        let normed =
            x.channel_rms_norm(modulation.as_ref().map(|(s, t)| (s, t)), NORM_EPS, true)?;
        let out = self.conv_out.forward(&normed, None)?;
        let p = self.patch_size;
        debug_assert_eq!(out.dims()[1], self.out_channels * p * p);
        Ok(out.depth_to_space_3d([1, p, p], SubOrder::TimeWidthHeight, 0)?)
    }
}
