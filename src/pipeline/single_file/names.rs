//! Tensor names of a single-file LTX-Video checkpoint (the original
//! LTX-Video module tree) mapped to ours (diffusers'), exactly as diffusers'
//! `convert_ltx_transformer_checkpoint_to_diffusers` and
//! `convert_ltx_vae_checkpoint_to_diffusers` map them: the same ordered
//! substring replacements, applied one after the other, so a name comes out
//! as it does there. The VAE table is the 0.9.5 one; the caller has told the
//! layout from the checkpoint's metadata config (diffusers tells it from the
//! width of one convolution instead, which misreads small models).

/// Where the transformer's tensors live in a checkpoint.
pub const TRANSFORMER_PREFIX: &str = "model.diffusion_model.";
/// Where the VAE's tensors live in a checkpoint.
pub const VAE_PREFIX: &str = "vae.";

const TRANSFORMER_RENAMES: &[(&str, &str)] = &[
    ("model.diffusion_model.", ""),
    ("patchify_proj", "proj_in"),
    ("adaln_single", "time_embed"),
    ("q_norm", "norm_q"),
    ("k_norm", "norm_k"),
];

/// diffusers' `VAE_KEYS_RENAME_DICT` updated with its `VAE_095_RENAME_DICT`,
/// in the dictionary's iteration order (updated keys keep their place, new
/// keys come last).
const VAE_095_RENAMES: &[(&str, &str)] = &[
    ("vae.", ""),
    // decoder
    ("up_blocks.0", "mid_block"),
    ("up_blocks.1", "up_blocks.0.upsamplers.0"),
    ("up_blocks.2", "up_blocks.0"),
    ("up_blocks.3", "up_blocks.1.upsamplers.0"),
    ("up_blocks.4", "up_blocks.1"),
    ("up_blocks.5", "up_blocks.2.upsamplers.0"),
    ("up_blocks.6", "up_blocks.2"),
    ("up_blocks.7", "up_blocks.3.upsamplers.0"),
    ("up_blocks.8", "up_blocks.3"),
    ("up_blocks.9", "up_blocks.3"),
    // encoder
    ("down_blocks.0", "down_blocks.0"),
    ("down_blocks.1", "down_blocks.0.downsamplers.0"),
    ("down_blocks.2", "down_blocks.1"),
    ("down_blocks.3", "down_blocks.1.downsamplers.0"),
    ("down_blocks.4", "down_blocks.2"),
    ("down_blocks.5", "down_blocks.2.downsamplers.0"),
    ("down_blocks.6", "down_blocks.3"),
    ("down_blocks.7", "down_blocks.3.downsamplers.0"),
    ("down_blocks.8", "mid_block"),
    ("down_blocks.9", "mid_block"),
    // common
    ("conv_shortcut", "conv_shortcut.conv"),
    ("res_blocks", "resnets"),
    ("norm3.norm", "norm3"),
    ("per_channel_statistics.mean-of-means", "latents_mean"),
    ("per_channel_statistics.std-of-means", "latents_std"),
    ("last_time_embedder", "time_embedder"),
    ("last_scale_shift_table", "scale_shift_table"),
];

/// Statistics the checkpoints carry that the model does not use (diffusers
/// drops them too).
const VAE_DROPPED: &[&str] = &[
    "per_channel_statistics.channel",
    "per_channel_statistics.mean-of-means",
    "per_channel_statistics.mean-of-stds",
];

fn apply(name: &str, table: &[(&str, &str)]) -> String {
    table
        .iter()
        .fold(name.to_string(), |n, (from, to)| n.replace(from, to))
}

/// Our name for a stored transformer tensor, or `None` for one that is not
/// the transformer's.
pub fn transformer(stored: &str) -> Option<String> {
    stored
        .starts_with(TRANSFORMER_PREFIX)
        .then(|| apply(stored, TRANSFORMER_RENAMES))
}

/// Our name for a stored VAE tensor, or `None` for one that is not the
/// VAE's or that the model does not use.
pub fn vae(stored: &str) -> Option<String> {
    if !stored.starts_with(VAE_PREFIX) {
        return None;
    }
    let ours = apply(stored, VAE_095_RENAMES);
    (!VAE_DROPPED.iter().any(|d| ours.contains(d))).then_some(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformer_names_follow_diffusers() {
        assert_eq!(
            transformer("model.diffusion_model.patchify_proj.weight").as_deref(),
            Some("proj_in.weight")
        );
        assert_eq!(
            transformer("model.diffusion_model.transformer_blocks.3.attn1.q_norm.weight")
                .as_deref(),
            Some("transformer_blocks.3.attn1.norm_q.weight")
        );
        assert_eq!(
            transformer("model.diffusion_model.adaln_single.linear.bias").as_deref(),
            Some("time_embed.linear.bias")
        );
        assert_eq!(transformer("vae.decoder.conv_in.conv.weight"), None);
    }

    #[test]
    fn vae_names_follow_the_095_table() {
        let cases = [
            (
                "vae.decoder.up_blocks.0.res_blocks.1.conv1.conv.weight",
                Some("decoder.mid_block.resnets.1.conv1.conv.weight"),
            ),
            (
                "vae.decoder.up_blocks.1.conv.conv.bias",
                Some("decoder.up_blocks.0.upsamplers.0.conv.conv.bias"),
            ),
            (
                "vae.decoder.up_blocks.6.res_blocks.0.scale_shift_table",
                Some("decoder.up_blocks.2.resnets.0.scale_shift_table"),
            ),
            (
                "vae.decoder.last_scale_shift_table",
                Some("decoder.scale_shift_table"),
            ),
            (
                "vae.decoder.last_time_embedder.timestep_embedder.linear_1.weight",
                Some("decoder.time_embedder.timestep_embedder.linear_1.weight"),
            ),
            (
                "vae.encoder.down_blocks.7.conv.conv.weight",
                Some("encoder.down_blocks.3.downsamplers.0.conv.conv.weight"),
            ),
            (
                "vae.encoder.down_blocks.8.res_blocks.0.conv2.conv.weight",
                Some("encoder.mid_block.resnets.0.conv2.conv.weight"),
            ),
            (
                "vae.per_channel_statistics.std-of-means",
                Some("latents_std"),
            ),
            (
                "vae.per_channel_statistics.mean-of-means",
                Some("latents_mean"),
            ),
            ("vae.per_channel_statistics.channel", None),
            ("vae.per_channel_statistics.mean-of-stds", None),
            ("model.diffusion_model.proj_out.weight", None),
        ];
        for (stored, ours) in cases {
            assert_eq!(vae(stored).as_deref(), ours, "{stored}");
        }
    }
}
