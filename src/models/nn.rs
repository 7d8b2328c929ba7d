//! Building blocks shared by model modules, named after their PyTorch
//! counterparts so that weight names (`weight`, `bias`) map directly.

use crate::tensor::{Result, Tensor};
use crate::weights::{VarBuilder, WeightError};

/// `torch.nn.Linear`: `y = x Wᵀ + b`, weight `[out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` and `bias` under `vb`.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            weight: vb.get(&[out_dim, in_dim], "weight")?,
            bias: Some(vb.get(&[out_dim], "bias")?),
        })
    }

    /// Loads `weight` only (a layer built with `bias=False`).
    pub fn no_bias(
        in_dim: usize,
        out_dim: usize,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        Ok(Self {
            weight: vb.get(&[out_dim, in_dim], "weight")?,
            bias: None,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// RMSNorm over the last dim, with or without a learned scale
/// (`torch.nn.RMSNorm` and diffusers' `RMSNorm` compute the same thing).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub weight: Option<Tensor>,
    pub eps: f32,
}

impl RmsNorm {
    pub fn new(
        dim: usize,
        eps: f32,
        affine: bool,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        let weight = if affine {
            Some(vb.get(&[dim], "weight")?)
        } else {
            None
        };
        Ok(Self { weight, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.rms_norm(self.weight.as_ref(), self.eps)
    }
}
