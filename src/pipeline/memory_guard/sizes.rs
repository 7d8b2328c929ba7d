//! Parameter counts of the three models from their configs alone, as
//! their loaders ask for tensors (`LtxVideoTransformer3DModel::new`,
//! `AutoencoderKLLTXVideo::from_source_on`, `T5EncoderModel::load`): the
//! guard must size a job before any weight is read, and for plans on
//! machines that have no weights at all. The tests hold each count to the
//! tiny fixture model's safetensors headers.

use crate::models::ltx::transformer::embeddings::TIMESTEP_CHANNELS;
use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::vae::VaeConfig;
use crate::models::t5::T5Config;

/// A linear layer's weight and, with `bias`, its bias.
fn linear(inputs: usize, outputs: usize, bias: bool) -> usize {
    inputs * outputs + if bias { outputs } else { 0 }
}

/// Parameters `LtxVideoTransformer3DModel::new` loads for `config`.
pub fn transformer_params(config: &TransformerConfig) -> usize {
    let dim = config.inner_dim();
    let (bias, out_bias) = (config.attention_bias, config.attention_out_bias);
    // q and k are RMS-normalised across heads with affine weights
    let attention = |kv_dim: usize| {
        2 * dim
            + linear(dim, dim, bias)
            + 2 * linear(kv_dim, dim, bias)
            + linear(dim, dim, out_bias)
    };
    let feed_forward = linear(dim, 4 * dim, true) + linear(4 * dim, dim, true);
    let block = attention(dim) + attention(config.cross_attention_dim) + feed_forward + 6 * dim;
    let time_embed =
        linear(TIMESTEP_CHANNELS, dim, true) + linear(dim, dim, true) + linear(dim, 6 * dim, true);
    let caption = linear(config.caption_channels, dim, true) + linear(dim, dim, true);
    config.num_layers * block
        + linear(config.in_channels, dim, true)
        + 2 * dim
        + time_embed
        + caption
        + linear(dim, config.out_channels, true)
}

/// Parameters `T5EncoderModel::load` loads for `config` (one copy of the
/// tied embedding).
pub fn t5_params(config: &T5Config) -> usize {
    let (d, inner, ff) = (config.d_model, config.inner_dim(), config.d_ff);
    let attention = 4 * d * inner + d;
    let feed_forward = 3 * d * ff + d;
    let position_bias = config.relative_attention_num_buckets * config.num_heads;
    config.vocab_size * d
        + config.num_layers * (attention + feed_forward)
        + if config.num_layers > 0 {
            position_bias
        } else {
            0
        }
        + d
}

/// The VAE's timestep embedder producing `dim` values from its 256-wide
/// sinusoidal projection.
const VAE_TIMESTEP_PROJECTION: usize = 256;

/// Parameters `AutoencoderKLLTXVideo::from_source_on` loads for `config`
/// (encoder, decoder and the latent statistics), or `None` for a config
/// the VAE does not build.
pub fn vae_params(config: &VaeConfig) -> Option<usize> {
    let encoder = config.encoder_plan().ok()?;
    let decoder = config.decoder_plan().ok()?;
    let conv = |cin: usize, cout: usize| cout * cin * 27 + cout;
    let resnet = |c: usize, tc: bool| 2 * conv(c, c) + if tc { 4 * c } else { 0 };
    let embedder = |dim: usize| linear(VAE_TIMESTEP_PROJECTION, dim, true) + linear(dim, dim, true);
    let tc = config.timestep_conditioning;
    let p = config.patch_size;

    let first = encoder.blocks.first().map_or(encoder.mid_channels, |b| b.0);
    let mut total = conv(config.in_channels * p * p, first);
    for &(cin, cout, layers, kind) in &encoder.blocks {
        total += layers * resnet(cin, false);
        if let Some(kind) = kind {
            let volume: usize = kind.stride().iter().product();
            total += conv(cin, cout / volume);
        }
    }
    total += encoder.mid_layers * resnet(encoder.mid_channels, false);
    total += conv(encoder.mid_channels, config.latent_channels + 1);

    let mid = decoder.mid_channels;
    total += conv(config.latent_channels, mid);
    total += decoder.mid_layers * resnet(mid, tc) + if tc { embedder(mid * 4) } else { 0 };
    for block in &decoder.up_blocks {
        if let Some((_, factor)) = block.upsampler {
            let cin = block.channels * factor;
            total += conv(cin, cin * 8 / factor);
        }
        total += block.layers * resnet(block.channels, tc);
        total += if tc { embedder(block.channels * 4) } else { 0 };
    }
    let last = decoder.out_block_channels;
    if tc {
        // timestep_scale_multiplier, the output embedder and its table
        total += 1 + embedder(last * 2) + 2 * last;
    }
    total += conv(last, config.out_channels * p * p);
    Some(total + 2 * config.latent_channels)
}
