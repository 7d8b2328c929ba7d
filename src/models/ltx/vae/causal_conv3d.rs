//! `LTXVideoCausalConv3d`: a 3-D convolution whose time axis is padded by
//! repeating the edge frames (only the first, before the clip, when causal).

use crate::backend::TimePadding;
use crate::tensor::Tensor;

use super::error::Result;
use super::weights::Weights;

pub struct CausalConv3d {
    /// `[out, in, k, k, k]`, PyTorch's layout.
    weight: Tensor,
    bias: Tensor,
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
        Ok(Self {
            weight: w.tensor(
                "weight",
                &[out_channels, in_channels, kernel, kernel, kernel],
            )?,
            bias: w.tensor("bias", &[out_channels])?,
            padding: if causal {
                TimePadding::Causal
            } else {
                TimePadding::Symmetric
            },
        })
    }

    /// Convolves `x`; `residual` (output-shaped) is added in the same pass.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        Ok(x.conv3d(&self.weight, Some(&self.bias), residual, self.padding)?)
    }
}
