//! `T5Attention` (self-attention only, as the encoder uses it): q, k, v, o
//! projections without biases and, unlike most transformers, no 1/sqrt(d)
//! scaling of the scores (T5 folds it into the initialisation of q).

use crate::tensor::Tensor;
use crate::weights::VarBuilder;

use super::position_bias::RelativePositionBias;
use super::{T5Config, T5Error};

pub struct T5Attention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    heads: usize,
    d_kv: usize,
    /// Present in the first block only.
    pub relative_attention_bias: Option<RelativePositionBias>,
}

impl T5Attention {
    pub fn load(vb: &VarBuilder, config: &T5Config, has_bias: bool) -> Result<Self, T5Error> {
        let (d, inner) = (config.d_model, config.inner_dim());
        let relative_attention_bias = if has_bias {
            let table = vb.get(
                &[config.relative_attention_num_buckets, config.num_heads],
                "relative_attention_bias.weight",
            )?;
            Some(RelativePositionBias::new(
                &table,
                config.relative_attention_max_distance,
            )?)
        } else {
            None
        };
        Ok(Self {
            q: vb.get(&[inner, d], "q.weight")?,
            k: vb.get(&[inner, d], "k.weight")?,
            v: vb.get(&[inner, d], "v.weight")?,
            o: vb.get(&[d, inner], "o.weight")?,
            heads: config.num_heads,
            d_kv: config.d_kv,
            relative_attention_bias,
        })
    }

    /// `x` `[batch, len, d_model]`, `bias` `[batch, heads, len, len]`
    /// (position bias plus padding mask).
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor, T5Error> {
        let (b, n) = (x.dims()[0], x.dims()[1]);
        let (h, dk) = (self.heads, self.d_kv);
        let split = |t: Tensor| t.reshape(&[b, n, h, dk]);
        let q = split(x.linear(&self.q, None)?)?.permute(&[0, 2, 1, 3])?;
        let k_t = split(x.linear(&self.k, None)?)?.permute(&[0, 2, 3, 1])?;
        let v = split(x.linear(&self.v, None)?)?.permute(&[0, 2, 1, 3])?;
        let weights = q.matmul(&k_t)?.add(bias)?.softmax_last_dim()?;
        let context = weights
            .matmul(&v)?
            .permute(&[0, 2, 1, 3])?
            .contiguous()?
            .reshape(&[b, n, h * dk])?;
        Ok(context.linear(&self.o, None)?)
    }
}
