//! `LTXVideoCausalConv3d`: a 3-D convolution whose time axis is padded by
//! repeating the edge frames (only the first, before the clip, when causal).

use crate::backend::cpu::conv3d::{conv3d, Conv3dWeights, TimePadding};

use super::error::Result;
use super::volume::Volume;
use super::weights::Weights;

pub struct CausalConv3d {
    weights: Conv3dWeights,
    padding: TimePadding,
}

impl CausalConv3d {
    /// Loads `<prefix>.conv.weight` `[out, in, k, k, k]` and `.conv.bias`.
    pub fn load(
        w: &Weights<'_>,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        causal: bool,
    ) -> Result<Self> {
        let w = w.at("conv");
        let weight = w.get(
            "weight",
            &[out_channels, in_channels, kernel, kernel, kernel],
        )?;
        let bias = w.get("bias", &[out_channels])?;
        let weights = Conv3dWeights::new(&weight, &bias, out_channels, in_channels, [kernel; 3])?;
        let padding = if causal {
            TimePadding::Causal
        } else {
            TimePadding::Symmetric
        };
        Ok(Self { weights, padding })
    }

    pub fn out_channels(&self) -> usize {
        self.weights.out_channels()
    }

    /// Convolves `x`; `residual` (output-shaped) is added in the same pass.
    pub fn forward(&self, x: &Volume, residual: Option<&Volume>) -> Volume {
        let [b, _, t, h, w] = x.dims();
        let out = conv3d(
            x.data(),
            x.dims(),
            &self.weights,
            self.padding,
            residual.map(|r| r.data()),
        );
        Volume::from_parts([b, self.weights.out_channels(), t, h, w], out)
    }
}
