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
        // The bias (position bias and -inf-like padding) is f32, and the
        // scores meet it in f32, as transformers upcasts them for softmax
        // in 16-bit models: a bf16 bias would round the position bias to
        // 8 bits and the padding term to -inf. The probabilities go back to
        // the model's dtype for the product with v. In f32 these casts are
        // no-ops.
        let weights = q
            .matmul(&k_t)?
            .to_dtype(bias.dtype())?
            .add(bias)?
            .softmax_last_dim()?
            .to_dtype(x.dtype())?;
        let context = weights
            .matmul(&v)?
            .permute(&[0, 2, 1, 3])?
            .contiguous()?
            .reshape(&[b, n, h * dk])?;
        Ok(context.linear(&self.o, None)?)
    }
}
