//! The upsampler's building blocks: zero-padded 3×3(×3) convolutions,
//! `torch.nn.GroupNorm` and the `ResBlock` of the reference.

use crate::backend::TimePadding;
use crate::tensor::{Result, Tensor};
use crate::weights::{VarBuilder, WeightError};

use super::config::GROUPS;

/// `torch.nn.GroupNorm`'s default epsilon, which the reference keeps.
const GROUP_NORM_EPS: f32 = 1e-5;

/// `Conv3d(kernel_size=3, padding=1)` or, applied to every frame alone,
/// `Conv2d(kernel_size=3, padding=1)`, on `[b, c, f, h, w]`.
pub struct Conv {
    /// `[out, in, kt, 3, 3]`: kt is 3, or 1 for the 2-D convolution.
    weight: Tensor,
    bias: Tensor,
}

impl Conv {
    /// Loads `weight` (`[out, in, 3, 3, 3]`, or `[out, in, 3, 3]` when not
    /// `three_d`) and `bias` under `vb`.
    pub fn load(
        vb: &VarBuilder,
        in_channels: usize,
        out_channels: usize,
        three_d: bool,
    ) -> std::result::Result<Self, WeightError> {
        let weight = if three_d {
            vb.get(&[out_channels, in_channels, 3, 3, 3], "weight")?
        } else {
            // A 2-D kernel is a 3-D one a frame deep.
            let w = vb.get(&[out_channels, in_channels, 3, 3], "weight")?;
            w.reshape(&[out_channels, in_channels, 1, 3, 3])
                .map_err(|source| WeightError::Tensor {
                    name: format!("{}.weight", vb.prefix()),
                    source,
                })?
        };
        Ok(Self {
            weight,
            bias: vb.get(&[out_channels], "bias")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kt = self.weight.dims()[2];
        if kt == 1 {
            // No frames to pad: each output frame reads its own frame only.
            return x.conv3d(&self.weight, Some(&self.bias), None, TimePadding::Causal);
        }
        // The backend's convolutions replicate edge frames (LTX's causal
        // padding); the reference pads time with zeros. One zero frame on
        // each side, then the symmetric padding only ever repeats zeros,
        // and the two extra output frames are dropped.
        let dims = x.dims();
        let zero = Tensor::zeros(
            &[dims[0], dims[1], 1, dims[3], dims[4]],
            x.dtype(),
            x.device(),
        )?;
        let padded = Tensor::cat(&[&zero, x, &zero], 2)?;
        let y = padded.conv3d(&self.weight, Some(&self.bias), None, TimePadding::Symmetric)?;
        y.narrow(2, 1, dims[2])?.contiguous()
    }
}

/// `torch.nn.GroupNorm(32, channels)` over `[b, c, f, h, w]`: statistics of
/// each group of c/32 channels over all its positions.
pub struct GroupNorm {
    /// `[1, c, 1, 1, 1]`, to broadcast over the activations.
    weight: Tensor,
    bias: Tensor,
}

impl GroupNorm {
    pub fn load(vb: &VarBuilder, channels: usize) -> std::result::Result<Self, WeightError> {
        let shaped = |name: &str| -> std::result::Result<Tensor, WeightError> {
            vb.get(&[channels], name)?
                .reshape(&[1, channels, 1, 1, 1])
                .map_err(|source| WeightError::Tensor {
                    name: format!("{}.{name}", vb.prefix()),
                    source,
                })
        };
        Ok(Self {
            weight: shaped("weight")?,
            bias: shaped("bias")?,
        })
    }

    /// The norm, then `+ residual` when given, then SiLU when `silu`.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>, silu: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let per_group = x.elem_count() / (dims[0] * GROUPS);
        // A group's channels are adjacent, so each group is one contiguous
        // row: LayerNorm without affine terms over the rows is GroupNorm's
        // normalisation (biased variance, the same epsilon).
        let normed = x
            .contiguous()?
            .reshape(&[dims[0] * GROUPS, per_group])?
            .layer_norm(None, None, GROUP_NORM_EPS)?
            .reshape(&dims)?;
        let mut y = normed.mul(&self.weight)?.add(&self.bias)?;
        if let Some(r) = residual {
            y = y.add(r)?;
        }
        if silu {
            y = y.silu()?;
        }
        Ok(y)
    }
}

/// `ResBlock`: conv, norm, SiLU, conv, norm, then SiLU of the sum with the
/// input.
pub struct ResBlock {
    conv1: Conv,
    norm1: GroupNorm,
    conv2: Conv,
    norm2: GroupNorm,
}

impl ResBlock {
    pub fn load(
        vb: &VarBuilder,
        channels: usize,
        three_d: bool,
    ) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            conv1: Conv::load(&vb.pp("conv1"), channels, channels, three_d)?,
            norm1: GroupNorm::load(&vb.pp("norm1"), channels)?,
            conv2: Conv::load(&vb.pp("conv2"), channels, channels, three_d)?,
            norm2: GroupNorm::load(&vb.pp("norm2"), channels)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(&self.conv1.forward(x)?, None, true)?;
        let h = self.conv2.forward(&h)?;
        self.norm2.forward(&h, Some(x), true)
    }
}
