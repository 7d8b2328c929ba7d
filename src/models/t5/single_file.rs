//! A T5 encoder kept as one safetensors file with no `config.json`, as
//! ComfyUI users have it (`models/text_encoders/t5xxl_fp16.safetensors`,
//! `t5xxl_fp8_e4m3fn.safetensors`): transformers `T5EncoderModel` names,
//! possibly under a prefix (SD3-style bundles write
//! `text_encoders.t5xxl.transformer.`), the tied embedding stored once.
//!
//! The config is read from the tensor shapes: vocabulary and width from
//! `shared.weight`, layers from the `encoder.block.N` present, heads from
//! the position-bias table, head width from the query projection, feed-
//! forward width from `wi_0`. What shapes cannot say is T5 v1.1's fixed
//! value (gated-GELU, ε = 1e-6, relative positions saturating at 128), the
//! architecture every T5 text encoder of a video or image model uses.

use std::path::Path;

use crate::weights::WeightFiles;

use super::{T5Config, T5Error};

/// The tensor every T5 encoder has and nothing else does; its name gives
/// the file's prefix.
const MARKER: &str = "encoder.final_layer_norm.weight";

/// T5 v1.1's values for what a weights file does not record.
const V1_1_MAX_DISTANCE: usize = 128;
const V1_1_EPSILON: f32 = 1e-6;

/// What a text-encoder file that is not T5 is, from its names, for the
/// error message.
fn what_else(names: &[&str]) -> Option<&'static str> {
    let any = |p: &str| names.iter().any(|n| n.contains(p));
    let clip_layout = any("embeddings.token_embedding.") && any("self_attn.");
    if any("text_model.") || any("transformer.resblocks.") || clip_layout {
        Some("a CLIP text encoder (clip_l / clip_g style `text_model.*` tensors)")
    } else if any("model.diffusion_model.") {
        Some("a diffusion model checkpoint (`model.diffusion_model.*` tensors)")
    } else if any("model.layers.") {
        Some("a decoder-only language model (`model.layers.*` tensors, e.g. Llama, Gemma or Qwen)")
    } else if any("DenseReluDense.wi.weight") {
        Some("an original T5 (ReLU feed-forward), not the T5 v1.1 encoder LTX-Video uses")
    } else if any("decoder.block.") && !any(MARKER) {
        Some("a T5 decoder")
    } else {
        None
    }
}

/// The name prefix of the T5 tensors in `files` ("" for plain HF names,
/// or ending in `.`), or an error saying what the file is instead.
pub fn t5_prefix(files: &WeightFiles, path: &Path) -> Result<String, T5Error> {
    let names = files.names();
    let found: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(MARKER))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .collect();
    let hint = "GenFX needs the T5 v1.1 XXL encoder: t5xxl_fp16.safetensors (or \
                t5xxl_fp8_e4m3fn.safetensors) from comfyanonymous/flux_text_encoders, or the \
                text_encoder/ folder of PixArt-alpha/PixArt-XL-2-1024-MS";
    match found.as_slice() {
        [prefix] if what_else(&names) != Some("a T5 decoder") => Ok(prefix.to_string()),
        [_, _, ..] => Err(T5Error::Config {
            path: path.to_path_buf(),
            reason: format!(
                "holds {} T5 encoders (prefixes {found:?}); give a file with one",
                found.len()
            ),
        }),
        _ => {
            let what = what_else(&names).map_or_else(
                || {
                    format!(
                        "not a T5 text encoder (no {MARKER}; its tensors are e.g. {:?})",
                        &names[..names.len().min(3)]
                    )
                },
                |w| format!("{w}, not a T5 text encoder"),
            );
            Err(T5Error::Config {
                path: path.to_path_buf(),
                reason: format!("this is {what}. {hint}"),
            })
        }
    }
}

/// The encoder's config, from the shapes under `prefix`.
pub fn infer_config(files: &WeightFiles, prefix: &str, path: &Path) -> Result<T5Config, T5Error> {
    let bad = |reason: String| T5Error::Config {
        path: path.to_path_buf(),
        reason,
    };
    let shape = |name: &str| {
        files
            .shape(&format!("{prefix}{name}"))
            .map(<[usize]>::to_vec)
    };
    let matrix = |name: &str| match shape(name).as_deref() {
        Some(&[rows, cols]) => Ok((rows, cols)),
        Some(other) => Err(bad(format!(
            "{prefix}{name} has shape {other:?}, not a matrix"
        ))),
        None => Err(bad(format!("{prefix}{name} is missing"))),
    };
    let (vocab_size, d_model) = matrix("shared.weight")
        .or_else(|_| matrix("encoder.embed_tokens.weight"))
        .map_err(|_| bad(format!("no token embedding ({prefix}shared.weight)")))?;
    let num_layers = (0..)
        .take_while(|i| {
            shape(&format!("encoder.block.{i}.layer.0.SelfAttention.q.weight")).is_some()
        })
        .count();
    if num_layers == 0 {
        return Err(bad(format!(
            "no encoder blocks ({prefix}encoder.block.0.layer.0.SelfAttention.q.weight)"
        )));
    }
    let block0 = "encoder.block.0.layer.0.SelfAttention";
    let (buckets, num_heads) = matrix(&format!("{block0}.relative_attention_bias.weight"))?;
    let (inner, _) = matrix(&format!("{block0}.q.weight"))?;
    if num_heads == 0 || inner % num_heads != 0 {
        return Err(bad(format!(
            "query width {inner} does not split into {num_heads} heads"
        )));
    }
    let ff = "encoder.block.0.layer.1.DenseReluDense";
    if shape(&format!("{ff}.wi.weight")).is_some() {
        return Err(bad(
            "this is an original T5 (ReLU feed-forward, `wi.weight`), not the T5 v1.1 encoder \
             LTX-Video uses"
                .into(),
        ));
    }
    let (d_ff, _) = matrix(&format!("{ff}.wi_0.weight"))?;
    let config = T5Config {
        vocab_size,
        d_model,
        d_kv: inner / num_heads,
        d_ff,
        num_layers,
        num_heads,
        relative_attention_num_buckets: buckets,
        relative_attention_max_distance: V1_1_MAX_DISTANCE,
        layer_norm_epsilon: V1_1_EPSILON,
        feed_forward_proj: "gated-gelu".into(),
        dense_act_fn: None,
    };
    config.validate().map_err(bad)?;
    let xxl = (d_model, num_layers, num_heads, d_ff) == (4096, 24, 64, 10240);
    log::info!(
        "{}: T5 encoder read from its shapes: {num_layers} layers, d_model {d_model}, {num_heads} \
         heads, d_ff {d_ff}, vocabulary {vocab_size}{}",
        path.display(),
        if xxl {
            " (T5 v1.1 XXL)"
        } else {
            " (not XXL: a test or another size)"
        }
    );
    Ok(config)
}
