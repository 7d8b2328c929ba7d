//! `LTXVideoResnetBlock3d` as the 0.9.5+ VAE uses it: RMS norm over channels,
//! optional timestep scale/shift, SiLU, causal conv, twice, plus the input.

use crate::tensor::Tensor;

use super::causal_conv3d::CausalConv3d;
use super::error::Result;
use super::weights::Weights;

/// The blocks' RMSNorm epsilon (fixed in the reference, not `resnet_norm_eps`).
pub const NORM_EPS: f32 = 1e-8;

pub struct ResnetBlock3d {
    conv1: CausalConv3d,
    conv2: CausalConv3d,
    /// `[4, channels]`: shift1, scale1, shift2, scale2 offsets.
    scale_shift_table: Option<Tensor>,
}

/// Row `k` of `[b, rows, c]` as a `[b, c]` tensor.
pub(crate) fn row(t: &Tensor, k: usize) -> Result<Tensor> {
    Ok(t.narrow(1, k, 1)?.squeeze(1)?.contiguous()?)
}

impl ResnetBlock3d {
    pub fn load(
        w: &Weights<'_>,
        channels: usize,
        causal: bool,
        timestep_conditioning: bool,
    ) -> Result<Self> {
        Ok(Self {
            conv1: CausalConv3d::load(&w.at("conv1"), channels, channels, 3, causal)?,
            conv2: CausalConv3d::load(&w.at("conv2"), channels, channels, 3, causal)?,
            scale_shift_table: if timestep_conditioning {
                Some(w.tensor("scale_shift_table", &[4, channels])?)
            } else {
                None
            },
        })
    }

    /// `temb` is the block's embedding `[batch, 4 * channels]` when the
    /// decoder is timestep-conditioned.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let mods = match (&self.scale_shift_table, temb) {
            (Some(table), Some(temb)) => {
                let [b, c] = [x.dims()[0], x.dims()[1]];
                // temb viewed as [b, 4, c] plus the table, per batch item.
                Some(temb.reshape(&[b, 4, c])?.add(table)?)
            }
            _ => None,
        };
        let modulation = |i: usize| -> Result<Option<(Tensor, Tensor)>> {
            mods.as_ref()
                .map(|m| Ok((row(m, 2 * i + 1)?, row(m, 2 * i)?)))
                .transpose()
        };
        let m = modulation(0)?;
        let h = x.channel_rms_norm(m.as_ref().map(|(s, t)| (s, t)), NORM_EPS, true)?;
        let h = self.conv1.forward(&h, None)?;
        let m = modulation(1)?;
        let h = h.channel_rms_norm(m.as_ref().map(|(s, t)| (s, t)), NORM_EPS, true)?;
        self.conv2.forward(&h, Some(x))
    }
}
