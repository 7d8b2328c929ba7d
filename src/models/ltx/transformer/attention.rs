//! `LTXAttention` with `LTXVideoAttnProcessor`: q/k/v projections, RMSNorm
//! across all heads on q and k, optional rotary embedding, attention, and
//! the output projection (`to_out.0`; `to_out.1` is dropout).

use super::layer_skip::SkipMode;
use crate::models::nn::{Linear, RmsNorm};
use crate::tensor::{Result, Tensor};
use crate::weights::{VarBuilder, WeightError};

/// The q/k norms are built with a fixed eps in the reference.
const QK_NORM_EPS: f32 = 1e-5;

#[derive(Clone, Debug)]
pub struct Attention {
    pub heads: usize,
    pub head_dim: usize,
    pub norm_q: RmsNorm,
    pub norm_k: RmsNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
}

/// What attention needs besides its input: keys/values from elsewhere for
/// cross-attention, rope tables for self-attention, a padding bias.
#[derive(Clone, Copy, Default)]
pub struct AttentionContext<'a> {
    /// `[batch, kv_tokens, kv_dim]`; `None` means self-attention.
    pub encoder_hidden_states: Option<&'a Tensor>,
    /// `(cos, sin)`, `[batch, tokens, inner_dim]`.
    pub rotary: Option<(&'a Tensor, &'a Tensor)>,
    /// Additive `[batch, kv_tokens]` bias (-10000 on padding).
    pub key_bias: Option<&'a Tensor>,
}

impl Attention {
    pub fn new(
        query_dim: usize,
        kv_dim: usize,
        heads: usize,
        head_dim: usize,
        bias: bool,
        out_bias: bool,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        let inner = heads * head_dim;
        let linear = |i, o, with_bias, name: &str| {
            if with_bias {
                Linear::new(i, o, &vb.pp(name))
            } else {
                Linear::no_bias(i, o, &vb.pp(name))
            }
        };
        Ok(Self {
            heads,
            head_dim,
            norm_q: RmsNorm::new(inner, QK_NORM_EPS, true, &vb.pp("norm_q"))?,
            norm_k: RmsNorm::new(inner, QK_NORM_EPS, true, &vb.pp("norm_k"))?,
            to_q: linear(query_dim, inner, bias, "to_q")?,
            to_k: linear(kv_dim, inner, bias, "to_k")?,
            to_v: linear(kv_dim, inner, bias, "to_v")?,
            to_out: linear(inner, query_dim, out_bias, "to_out.0")?,
        })
    }

    /// `x` `[batch, tokens, query_dim]` to `[batch, tokens, query_dim]`.
    pub fn forward(&self, x: &Tensor, ctx: AttentionContext<'_>) -> Result<Tensor> {
        let kv_in = ctx.encoder_hidden_states.unwrap_or(x);
        let mut q = self.norm_q.forward(&self.to_q.forward(x)?)?;
        let mut k = self.norm_k.forward(&self.to_k.forward(kv_in)?)?;
        let v = self.to_v.forward(kv_in)?;
        if let Some((cos, sin)) = ctx.rotary {
            q = q.rope_interleaved(cos, sin)?;
            k = k.rope_interleaved(cos, sin)?;
        }
        let (b, n) = (q.dim(0)?, q.dim(1)?);
        let m = k.dim(1)?;
        let split = |t: &Tensor, tokens| t.reshape(&[b, tokens, self.heads, self.head_dim]);
        let out = Tensor::attention(
            &split(&q, n)?,
            &split(&k, m)?,
            &split(&v, m)?,
            ctx.key_bias,
            1.0 / (self.head_dim as f32).sqrt(),
        )?;
        self.to_out
            .forward(&out.reshape(&[b, n, self.heads * self.head_dim])?)
    }

    /// Self-attention weakened for spatio-temporal guidance: the values
    /// (`AttentionValues`) or the input itself (`AttentionSkip`) take the
    /// place of the attention output before the output projection, as
    /// LTX-Video's processor does under a skip-layer mask.
    pub fn forward_skipped(&self, x: &Tensor, mode: SkipMode) -> Result<Tensor> {
        match mode {
            SkipMode::AttentionValues => self.to_out.forward(&self.to_v.forward(x)?),
            SkipMode::AttentionSkip => self.to_out.forward(x),
            SkipMode::TransformerBlock => Ok(x.clone()),
        }
    }
}
