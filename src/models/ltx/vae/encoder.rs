//! `LTXVideoEncoder3d`: patchify, conv_in, down blocks, mid block, norm_out,
//! SiLU, conv_out; the last output channel is the shared log-variance.

use crate::backend::cpu::channel_norm::rms_norm_channels;
use crate::backend::cpu::space_depth::{space_to_depth, SubOrder};

use super::blocks::{DownBlock095, MidBlock};
use super::causal_conv3d::CausalConv3d;
use super::config::VaeConfig;
use super::error::Result;
use super::resnet::NORM_EPS;
use super::volume::Volume;
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
    pub fn forward(&self, video: &Volume) -> Volume {
        let p = self.patch_size;
        let [b, c, t, h, w] = video.dims();
        // diffusers packs a patch's pixels width-major: channel c*p*p + x*p + y.
        let packed = space_to_depth(
            video.data(),
            video.dims(),
            [1, p, p],
            SubOrder::TimeWidthHeight,
        );
        let mut x = self.conv_in.forward(
            &Volume::from_parts([b, c * p * p, t, h / p, w / p], packed),
            None,
        );
        for block in &self.down_blocks {
            x = block.forward(x);
        }
        x = self.mid_block.forward(x, None);
        let normed = rms_norm_channels(x.data(), x.flat_dims(), NORM_EPS, None, true);
        let out = self
            .conv_out
            .forward(&Volume::from_parts(x.dims(), normed), None);

        let [b, co, t, h, w] = out.dims();
        let plane = t * h * w;
        let latent = self.latent_channels;
        let mut params = Vec::with_capacity(b * 2 * latent * plane);
        for bi in 0..b {
            let item = &out.data()[bi * co * plane..(bi + 1) * co * plane];
            params.extend_from_slice(&item[..latent * plane]);
            let logvar = &item[latent * plane..];
            for _ in 0..latent {
                params.extend_from_slice(logvar);
            }
        }
        Volume::from_parts([b, 2 * latent, t, h, w], params)
    }
}
