//! `LTXVideoEncoder3d`: patchify, conv_in, down blocks, mid block, norm_out,
//! SiLU, conv_out; the last output channel is the shared log-variance.

use crate::backend::SubOrder;
use crate::tensor::Tensor;

use super::blocks::{DownBlock095, MidBlock};
use super::causal_conv3d::CausalConv3d;
use super::config::VaeConfig;
use super::error::Result;
use super::resnet::NORM_EPS;
use super::weights::Weights;

pub struct Encoder {
    patch_size: usize,
    latent_channels: usize,
    conv_in: CausalConv3d,
    down_blocks: Vec<DownBlock095>,
    mid_block: MidBlock,
    conv_out: CausalConv3d,
}

impl Encoder {
    pub fn load(w: &Weights<'_>, config: &VaeConfig) -> Result<Self> {
        let plan = config.encoder_plan()?;
        let causal = config.encoder_causal;
        let p = config.patch_size;
        let first = plan.blocks.first().map_or(plan.mid_channels, |b| b.0);
        let down_blocks = plan
            .blocks
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, layers, kind))| {
                DownBlock095::load(
                    &w.at(format_args!("down_blocks.{i}")),
                    cin,
                    cout,
                    layers,
                    kind,
                    causal,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            patch_size: p,
            latent_channels: config.latent_channels,
            conv_in: CausalConv3d::load(
                &w.at("conv_in"),
                config.in_channels * p * p,
                first,
                3,
                causal,
            )?,
            down_blocks,
            mid_block: MidBlock::load(
                &w.at("mid_block"),
                plan.mid_channels,
                plan.mid_layers,
                causal,
                false,
            )?,
            conv_out: CausalConv3d::load(
                &w.at("conv_out"),
                plan.mid_channels,
                config.latent_channels + 1,
                3,
                causal,
            )?,
        })
    }

    /// Video `[b, in, f, h, w]` (shape already checked) -> posterior
    /// parameters `[b, 2 * latent, f', h', w']`: means, then the one
    /// log-variance channel repeated for every latent channel.
    pub fn forward(&self, video: &Tensor) -> Result<Tensor> {
        let p = self.patch_size;
        // diffusers packs a patch's pixels width-major: channel c*p*p + x*p + y.
        let packed = video.space_to_depth_3d([1, p, p], SubOrder::TimeWidthHeight)?;
        let mut x = self.conv_in.forward(&packed, None)?;
        for block in &self.down_blocks {
            x = block.forward(x)?;
        }
        x = self.mid_block.forward(x, None)?;
        let normed = x.channel_rms_norm(None, NORM_EPS, true)?;
        let out = self.conv_out.forward(&normed, None)?;

        let [b, _, t, h, w]: [usize; 5] = out.dims().try_into().expect("5-D");
        let latent = self.latent_channels;
        let means = out.narrow(1, 0, latent)?;
        let logvar = out
            .narrow(1, latent, 1)?
            .broadcast_as(&[b, latent, t, h, w])?;
        Ok(Tensor::cat(&[&means, &logvar], 1)?)
    }
}
