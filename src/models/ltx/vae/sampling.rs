//! `LTXVideoDownsampler3d` and `LTXVideoUpsampler3d`: resolution changes by
//! space-to-depth / depth-to-space around a stride-1 causal conv, each with a
//! parameter-free shortcut (channel-group mean down, channel repeat up).

use crate::backend::SubOrder;
use crate::tensor::Tensor;

use super::causal_conv3d::CausalConv3d;
use super::error::Result;
use super::weights::Weights;

pub struct Downsampler3d {
    stride: [usize; 3],
    group_size: usize,
    conv: CausalConv3d,
}

impl Downsampler3d {
    pub fn load(
        w: &Weights<'_>,
        in_channels: usize,
        out_channels: usize,
        stride: [usize; 3],
        causal: bool,
    ) -> Result<Self> {
        let volume: usize = stride.iter().product();
        Ok(Self {
            stride,
            group_size: in_channels * volume / out_channels,
            conv: CausalConv3d::load(&w.at("conv"), in_channels, out_channels / volume, 3, causal)?,
        })
    }

    /// `[b, c, t, h, w]` -> `[b, out, (t + st - 1) / st, h / sh, w / sw]`; the
    /// caller guarantees divisibility (checked once on the clip's shape).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let st = self.stride[0];
        // The first st-1 frames are prepended so the clip's first frame forms
        // a block of its own, as the causal latent layout requires.
        let padded = if st > 1 {
            Tensor::cat(&[&x.narrow(2, 0, st - 1)?, x], 2)?
        } else {
            x.clone()
        };
        let packed = padded.space_to_depth_3d(self.stride, SubOrder::TimeHeightWidth)?;
        // Mean of each run of `group_size` channels, summed in channel order
        // then scaled, as the reference's `mean` over the group dim.
        let [b, c, t, h, w]: [usize; 5] = packed.dims().try_into().expect("5-D");
        let g = self.group_size;
        let groups = packed.reshape(&[b, c / g, g, t, h, w])?;
        let mut sum = groups.narrow(2, 0, 1)?;
        for k in 1..g {
            sum = sum.add(&groups.narrow(2, k, 1)?)?;
        }
        let shortcut = sum.scale(1.0 / g as f32)?.reshape(&[b, c / g, t, h, w])?;

        let conv = self.conv.forward(&padded, None)?;
        Ok(conv
            .space_to_depth_3d(self.stride, SubOrder::TimeHeightWidth)?
            .add(&shortcut)?)
    }
}

pub struct Upsampler3d {
    residual: bool,
    factor: usize,
    conv: CausalConv3d,
}

/// The 0.9.5+ decoder always upsamples by 2 in time, height and width.
const UP: [usize; 3] = [2, 2, 2];

impl Upsampler3d {
    pub fn load(
        w: &Weights<'_>,
        in_channels: usize,
        residual: bool,
        factor: usize,
        causal: bool,
    ) -> Result<Self> {
        Ok(Self {
            residual,
            factor,
            conv: CausalConv3d::load(
                &w.at("conv"),
                in_channels,
                in_channels * 8 / factor,
                3,
                causal,
            )?,
        })
    }

    /// `[b, c, t, h, w]` -> `[b, c / factor, 2t - 1, 2h, 2w]` (the first
    /// upsampled frame is dropped: a causal latent's first frame is one frame).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.dims()[1];
        let conv = self.conv.forward(x, None)?;
        let out = conv.depth_to_space_3d(UP, SubOrder::TimeHeightWidth, UP[0] - 1)?;
        if !self.residual {
            return Ok(out);
        }
        // The shortcut has c / 8 channels, repeated along the channel axis
        // up to the output's c / factor (PyTorch's `repeat` on dim 1).
        let shortcut = x.depth_to_space_3d(UP, SubOrder::TimeHeightWidth, UP[0] - 1)?;
        let dims = out.dims().to_vec();
        let (b, sc) = (dims[0], c / 8);
        let reps = (c / self.factor) / sc;
        let tiled = [b, reps, sc, dims[2], dims[3], dims[4]];
        let single = [b, 1, sc, dims[2], dims[3], dims[4]];
        Ok(out
            .reshape(&tiled)?
            .add(&shortcut.reshape(&single)?)?
            .reshape(&dims)?)
    }
}
