//! `LTXVideoDownsampler3d` and `LTXVideoUpsampler3d`: resolution changes by
//! space-to-depth / depth-to-space around a stride-1 causal conv, each with a
//! parameter-free shortcut (channel-group mean down, channel repeat up).

use crate::backend::cpu::space_depth::{
    add_channel_tiled, depth_to_space, group_mean_channels, space_to_depth, SubOrder,
};

use super::causal_conv3d::CausalConv3d;
use super::error::Result;
use super::volume::Volume;
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
    pub fn forward(&self, x: &Volume) -> Volume {
        let [st, sh, sw] = self.stride;
        // The first st-1 frames are prepended so the clip's first frame forms
        // a block of its own, as the causal latent layout requires.
        let padded = if st > 1 {
            let front = x.crop((0, st - 1), (0, usize::MAX), (0, usize::MAX));
            concat_frames(&front, x)
        } else {
            x.clone()
        };
        let [b, c, t, h, w] = padded.dims();
        let out_dims = [b, c * st * sh * sw, t / st, h / sh, w / sw];
        let packed = space_to_depth(
            padded.data(),
            padded.dims(),
            self.stride,
            SubOrder::TimeHeightWidth,
        );
        let shortcut = group_mean_channels(
            &packed,
            [b, out_dims[1], out_dims[2] * out_dims[3] * out_dims[4]],
            self.group_size,
        );

        let conv = self.conv.forward(&padded, None);
        let mut out = space_to_depth(
            conv.data(),
            conv.dims(),
            self.stride,
            SubOrder::TimeHeightWidth,
        );
        for (o, s) in out.iter_mut().zip(&shortcut) {
            *o += s;
        }
        let channels = self.conv.out_channels() * st * sh * sw;
        Volume::from_parts([b, channels, t / st, h / sh, w / sw], out)
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
    pub fn forward(&self, x: &Volume) -> Volume {
        let [b, c, t, h, w] = x.dims();
        let conv = self.conv.forward(x, None);
        let mut out = depth_to_space(
            conv.data(),
            conv.dims(),
            UP,
            SubOrder::TimeHeightWidth,
            UP[0] - 1,
        );
        let out_channels = c / self.factor;
        if self.residual {
            let shortcut =
                depth_to_space(x.data(), x.dims(), UP, SubOrder::TimeHeightWidth, UP[0] - 1);
            add_channel_tiled(&mut out, out_channels, &shortcut, c / 8, b);
        }
        Volume::from_parts([b, out_channels, 2 * t - 1, 2 * h, 2 * w], out)
    }
}

/// `a` followed by `b` along the frame axis.
pub(crate) fn concat_frames(a: &Volume, b: &Volume) -> Volume {
    let [n, c, ta, h, w] = a.dims();
    let tb = b.frames();
    let plane = h * w;
    let mut data = Vec::with_capacity(n * c * (ta + tb) * plane);
    for bc in 0..n * c {
        data.extend_from_slice(&a.data()[bc * ta * plane..(bc + 1) * ta * plane]);
        data.extend_from_slice(&b.data()[bc * tb * plane..(bc + 1) * tb * plane]);
    }
    Volume::from_parts([n, c, ta + tb, h, w], data)
}
