//! `LTXVideoTransformerBlock` and its `FeedForward`.

use super::attention::{Attention, AttentionContext};
use super::config::TransformerConfig;
use super::layer_skip::SkipMode;
use crate::models::nn::Linear;
use crate::tensor::{Result, Tensor, TensorError};
use crate::weights::{VarBuilder, WeightError};

/// diffusers `FeedForward(dim, activation_fn="gelu-approximate")`:
/// `net.0` is GELU(tanh) with its input projection, `net.1` dropout,
/// `net.2` the output projection. Hidden width is 4·dim.
#[derive(Clone, Debug)]
pub struct FeedForward {
    pub proj_in: Linear,
    pub proj_out: Linear,
}

impl FeedForward {
    pub fn new(dim: usize, vb: &VarBuilder) -> std::result::Result<Self, WeightError> {
        let hidden = 4 * dim;
        Ok(Self {
            proj_in: Linear::new(dim, hidden, &vb.pp("net.0.proj"))?,
            proj_out: Linear::new(hidden, dim, &vb.pp("net.2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_out
            .forward(&self.proj_in.forward(x)?.gelu_tanh()?)
    }
}

/// What every block shares in one forward pass.
#[derive(Clone, Copy)]
pub struct BlockContext<'a> {
    /// Projected captions `[batch, text_tokens, dim]`.
    pub encoder_hidden_states: &'a Tensor,
    /// `[batch, 1 or tokens, 6·dim]` from `AdaLayerNormSingle`.
    pub temb: &'a Tensor,
    /// `(cos, sin)` `[batch, tokens, dim]`.
    pub rotary: (&'a Tensor, &'a Tensor),
    /// Additive `[batch, text_tokens]` bias for padded prompt tokens.
    pub encoder_key_bias: Option<&'a Tensor>,
}

#[derive(Clone, Debug)]
pub struct TransformerBlock {
    pub dim: usize,
    pub norm_eps: f32,
    pub attn1: Attention,
    pub attn2: Attention,
    pub ff: FeedForward,
    /// `[6, dim]`: shift/scale/gate for attention, then for the feed-forward.
    pub scale_shift_table: Tensor,
}

impl TransformerBlock {
    pub fn new(
        config: &TransformerConfig,
        vb: &VarBuilder,
    ) -> std::result::Result<Self, WeightError> {
        let dim = config.inner_dim();
        let attn = |kv_dim, name: &str| {
            Attention::new(
                dim,
                kv_dim,
                config.num_attention_heads,
                config.attention_head_dim,
                config.attention_bias,
                config.attention_out_bias,
                &vb.pp(name),
            )
        };
        Ok(Self {
            dim,
            norm_eps: config.norm_eps as f32,
            attn1: attn(dim, "attn1")?,
            attn2: attn(config.cross_attention_dim, "attn2")?,
            ff: FeedForward::new(dim, &vb.pp("ff"))?,
            scale_shift_table: vb.get(&[6, dim], "scale_shift_table")?,
        })
    }

    /// `hidden` `[batch, tokens, dim]` through the block.
    pub fn forward(&self, hidden: &Tensor, ctx: &BlockContext<'_>) -> Result<Tensor> {
        self.forward_skipping(hidden, ctx, None)
    }

    /// The block, weakened by `skip` for a spatio-temporal guidance pass.
    pub fn forward_skipping(
        &self,
        hidden: &Tensor,
        ctx: &BlockContext<'_>,
        skip: Option<SkipMode>,
    ) -> Result<Tensor> {
        if skip == Some(SkipMode::TransformerBlock) {
            return Ok(hidden.clone());
        }
        let batch = hidden.dim(0)?;
        let temb_tokens = ctx.temb.dim(1)?;
        if ctx.temb.dims() != [batch, temb_tokens, 6 * self.dim] {
            return Err(TensorError::ShapeMismatch {
                op: "transformer block temb",
                lhs: hidden.dims().to_vec(),
                rhs: ctx.temb.dims().to_vec(),
            });
        }
        // [batch, temb_tokens, 6, dim]; each of the six is a strided view.
        let ada = ctx
            .temb
            .reshape(&[batch, temb_tokens, 6, self.dim])?
            .add(&self.scale_shift_table)?;
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] = six(ada.unbind(2)?)?;

        let norm = hidden
            .rms_norm(None, self.norm_eps)?
            .modulate(&shift_msa, &scale_msa)?;
        let attn = match skip {
            Some(mode) => self.attn1.forward_skipped(&norm, mode)?,
            None => self.attn1.forward(
                &norm,
                AttentionContext {
                    rotary: Some(ctx.rotary),
                    ..Default::default()
                },
            )?,
        };
        let hidden = hidden.gated_residual(&gate_msa, &attn)?;

        // Cross-attention reads the un-normalised stream and has no gate.
        let attn = self.attn2.forward(
            &hidden,
            AttentionContext {
                encoder_hidden_states: Some(ctx.encoder_hidden_states),
                key_bias: ctx.encoder_key_bias,
                ..Default::default()
            },
        )?;
        let hidden = hidden.add(&attn)?;

        let norm = hidden
            .rms_norm(None, self.norm_eps)?
            .modulate(&shift_mlp, &scale_mlp)?;
        let ff = self.ff.forward(&norm)?;
        hidden.gated_residual(&gate_mlp, &ff)
    }
}

fn six(parts: Vec<Tensor>) -> Result<[Tensor; 6]> {
    parts
        .try_into()
        .map_err(|_| TensorError::invalid("transformer block", "expected six modulation vectors"))
}
