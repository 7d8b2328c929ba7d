//! The pieces of a T5 block, named as in transformers' `modeling_t5`.

use crate::tensor::Tensor;
use crate::weights::VarBuilder;

use super::attention::T5Attention;
use super::{T5Config, T5Error};

/// `T5LayerNorm`: RMS norm without mean subtraction or bias.
pub struct T5LayerNorm {
    weight: Tensor,
    eps: f32,
}

impl T5LayerNorm {
    pub fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self, T5Error> {
        Ok(Self {
            weight: vb.get(&[config.d_model], "weight")?,
            eps: config.layer_norm_epsilon,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, T5Error> {
        Ok(x.rms_norm(Some(&self.weight), self.eps)?)
    }
}

/// `T5DenseGatedActDense`: `wo(gelu_new(wi_0 x) * wi_1 x)`.
pub struct T5DenseGatedActDense {
    wi_0: Tensor,
    wi_1: Tensor,
    wo: Tensor,
}

impl T5DenseGatedActDense {
    pub fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self, T5Error> {
        let (d, ff) = (config.d_model, config.d_ff);
        Ok(Self {
            wi_0: vb.get(&[ff, d], "wi_0.weight")?,
            wi_1: vb.get(&[ff, d], "wi_1.weight")?,
            wo: vb.get(&[d, ff], "wo.weight")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, T5Error> {
        let gate = x.linear(&self.wi_0, None)?.gelu_tanh()?;
        let hidden = gate.mul(&x.linear(&self.wi_1, None)?)?;
        Ok(hidden.linear(&self.wo, None)?)
    }
}

/// `T5LayerSelfAttention`: pre-norm attention with a residual.
pub struct T5LayerSelfAttention {
    pub self_attention: T5Attention,
    layer_norm: T5LayerNorm,
}

impl T5LayerSelfAttention {
    pub fn load(vb: &VarBuilder, config: &T5Config, has_bias: bool) -> Result<Self, T5Error> {
        Ok(Self {
            self_attention: T5Attention::load(&vb.pp("SelfAttention"), config, has_bias)?,
            layer_norm: T5LayerNorm::load(&vb.pp("layer_norm"), config)?,
        })
    }

    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor, T5Error> {
        let normed = self.layer_norm.forward(x)?;
        Ok(x.add(&self.self_attention.forward(&normed, bias)?)?)
    }
}

/// `T5LayerFF`: pre-norm gated feed-forward with a residual.
pub struct T5LayerFF {
    dense_relu_dense: T5DenseGatedActDense,
    layer_norm: T5LayerNorm,
}

impl T5LayerFF {
    pub fn load(vb: &VarBuilder, config: &T5Config) -> Result<Self, T5Error> {
        Ok(Self {
            dense_relu_dense: T5DenseGatedActDense::load(&vb.pp("DenseReluDense"), config)?,
            layer_norm: T5LayerNorm::load(&vb.pp("layer_norm"), config)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor, T5Error> {
        let normed = self.layer_norm.forward(x)?;
        Ok(x.add(&self.dense_relu_dense.forward(&normed)?)?)
    }
}

/// `T5Block` of the encoder: `layer.0` attention, `layer.1` feed-forward.
pub struct T5Block {
    pub attention: T5LayerSelfAttention,
    ff: T5LayerFF,
}

impl T5Block {
    pub fn load(vb: &VarBuilder, config: &T5Config, has_bias: bool) -> Result<Self, T5Error> {
        let layer = vb.pp("layer");
        Ok(Self {
            attention: T5LayerSelfAttention::load(&layer.pp(0), config, has_bias)?,
            ff: T5LayerFF::load(&layer.pp(1), config)?,
        })
    }

    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor, T5Error> {
        let x = self.attention.forward(x, bias)?;
        self.ff.forward(&x)
    }
}
