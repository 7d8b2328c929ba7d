//! `LTXVideoResnetBlock3d` as the 0.9.5+ VAE uses it: RMS norm over channels,
//! optional timestep scale/shift, SiLU, causal conv, twice, plus the input.

use crate::backend::cpu::channel_norm::{rms_norm_channels, Modulation};

use super::causal_conv3d::CausalConv3d;
use super::error::Result;
use super::volume::Volume;
use super::weights::Weights;

/// The blocks' RMSNorm epsilon (fixed in the reference, not `resnet_norm_eps`).
pub const NORM_EPS: f32 = 1e-8;

pub struct ResnetBlock3d {
    channels: usize,
    conv1: CausalConv3d,
    conv2: CausalConv3d,
    /// `[4, channels]`: shift1, scale1, shift2, scale2 offsets.
    scale_shift_table: Option<Vec<f32>>,
}

impl ResnetBlock3d {
    pub fn load(
        w: &Weights<'_>,
        channels: usize,
        causal: bool,
        timestep_conditioning: bool,
    ) -> Result<Self> {
        Ok(Self {
            channels,
            conv1: CausalConv3d::load(&w.at("conv1"), channels, channels, 3, causal)?,
            conv2: CausalConv3d::load(&w.at("conv2"), channels, channels, 3, causal)?,
            scale_shift_table: if timestep_conditioning {
                Some(w.get("scale_shift_table", &[4, channels])?)
            } else {
                None
            },
        })
    }

    /// `temb` is the block's embedding, `[batch * 4 * channels]`, when the
    /// decoder is timestep-conditioned.
    pub fn forward(&self, x: &Volume, temb: Option<&[f32]>) -> Volume {
        let c = self.channels;
        let batch = x.batch();
        let mods = match (&self.scale_shift_table, temb) {
            (Some(table), Some(temb)) => {
                // Four [batch * c] vectors: temb viewed as [b, 4, c] plus table.
                let mut parts = vec![vec![0.0f32; batch * c]; 4];
                for b in 0..batch {
                    for (k, part) in parts.iter_mut().enumerate() {
                        for ch in 0..c {
                            part[b * c + ch] = temb[(b * 4 + k) * c + ch] + table[k * c + ch];
                        }
                    }
                }
                Some(parts)
            }
            _ => None,
        };
        let modulation = |i: usize| {
            mods.as_ref().map(|p| Modulation {
                shift: &p[2 * i],
                scale: &p[2 * i + 1],
            })
        };
        let h = Volume::from_parts(
            x.dims(),
            rms_norm_channels(x.data(), x.flat_dims(), NORM_EPS, modulation(0), true),
        );
        let h = self.conv1.forward(&h, None);
        let h = Volume::from_parts(
            h.dims(),
            rms_norm_channels(h.data(), h.flat_dims(), NORM_EPS, modulation(1), true),
        );
        self.conv2.forward(&h, Some(x))
    }
}
