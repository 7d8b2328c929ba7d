//! A T5 encoder kept as one safetensors file with no `config.json`, as
//! ComfyUI users have it (`models/text_encoders/t5xxl_fp16.safetensors`,
//! `t5xxl_fp8_e4m3fn.safetensors`): transformers `T5EncoderModel` names
//! (`shared.weight`, `encoder.block.N.*`) or a bare stack without the
//! `encoder.`/`shared.` names (`embed_tokens.weight`, `block.N.*`), possibly
//! under a prefix (SD3-style bundles write `text_encoders.t5xxl.transformer.`),
//! the tied embedding stored once or twice.
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

/// The tensor every T5 encoder has (named in errors).
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

/// Where a file keeps the encoder's tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLayout {
    /// Prefix of the stack's tensors (`block.N.*`, `final_layer_norm.*`):
    /// `encoder.` for transformers' names, "" for a bare `T5Stack`, either
    /// after a bundle's own prefix.
    pub stack: String,
    /// The token embedding's full name (`shared.weight`, or
    /// `encoder.embed_tokens.weight` / `embed_tokens.weight`).
    pub embedding: String,
    /// Names of a second copy of the tied embedding, which may be present
    /// and unused.
    pub spare_embeddings: Vec<String>,
}

/// How `files` lays out a T5 encoder: transformers' `T5EncoderModel` names
/// (`shared.weight`, `encoder.*`) or a bare stack (`embed_tokens.weight`,
/// `block.*`, `final_layer_norm.*`), each possibly under one prefix; or an
/// error saying what the file is instead.
pub fn t5_layout(files: &WeightFiles, path: &Path) -> Result<FileLayout, T5Error> {
    let names = files.names();
    let first_q = "block.0.layer.0.SelfAttention.q.weight";
    // Every stack prefix: where final_layer_norm and block 0 sit together.
    let stacks: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix("final_layer_norm.weight"))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .filter(|p| files.contains(&format!("{p}{first_q}")))
        .filter(|p| !p.ends_with("decoder."))
        .collect();
    let hint = "GenFX needs the T5 v1.1 XXL encoder: t5xxl_fp16.safetensors (or \
                t5xxl_fp8_e4m3fn.safetensors) from comfyanonymous/flux_text_encoders, or the \
                text_encoder/ folder of PixArt-alpha/PixArt-XL-2-1024-MS";
    match stacks.as_slice() {
        [stack] => {
            let outer = stack.strip_suffix("encoder.").unwrap_or(stack);
            let candidates = [
                format!("{outer}shared.weight"),
                format!("{stack}embed_tokens.weight"),
            ];
            let present: Vec<String> = candidates
                .iter()
                .filter(|n| files.contains(n))
                .cloned()
                .collect();
            let Some(embedding) = present.first().cloned() else {
                return Err(T5Error::Config {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the T5 encoder in it has no token embedding ({} or {})",
                        candidates[0], candidates[1]
                    ),
                });
            };
            Ok(FileLayout {
                stack: stack.to_string(),
                embedding,
                spare_embeddings: present[1..].to_vec(),
            })
        }
        [_, _, ..] => Err(T5Error::Config {
            path: path.to_path_buf(),
            reason: format!(
                "holds {} T5 encoders (prefixes {stacks:?}); give a file with one",
                stacks.len()
            ),
        }),
        [] => {
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

/// The encoder's config, from the shapes of the tensors `layout` names.
pub fn infer_config(
    files: &WeightFiles,
    layout: &FileLayout,
    path: &Path,
) -> Result<T5Config, T5Error> {
    let prefix = layout.stack.as_str();
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
    let (vocab_size, d_model) = match files.shape(&layout.embedding) {
        Some(&[rows, cols]) => (rows, cols),
        other => {
            return Err(bad(format!(
                "{} has shape {other:?}, not a matrix",
                layout.embedding
            )))
        }
    };
    let num_layers = (0..)
        .take_while(|i| shape(&format!("block.{i}.layer.0.SelfAttention.q.weight")).is_some())
        .count();
    if num_layers == 0 {
        return Err(bad(format!(
            "no encoder blocks ({prefix}block.0.layer.0.SelfAttention.q.weight)"
        )));
    }
    let block0 = "block.0.layer.0.SelfAttention";
    let (buckets, num_heads) = matrix(&format!("{block0}.relative_attention_bias.weight"))?;
    let (inner, _) = matrix(&format!("{block0}.q.weight"))?;
    if num_heads == 0 || inner % num_heads != 0 {
        return Err(bad(format!(
            "query width {inner} does not split into {num_heads} heads"
        )));
    }
    let ff = "block.0.layer.1.DenseReluDense";
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
    // A file may state its config in its metadata (`config`: the JSON of
    // transformers' T5Config, as a file written from a model folder can
    // carry it). What shapes cannot tell — the relative-attention distance
    // and the norm epsilon — then comes from it, and the rest must agree.
    let stated = crate::weights::SafetensorsFile::open(path)
        .ok()
        .and_then(|f| f.metadata().get("config").cloned())
        .map(|text| {
            serde_json::from_str::<T5Config>(&text)
                .map_err(|e| bad(format!("the config in its metadata: {e}")))
        })
        .transpose()?;
    let config = match stated {
        None => config,
        Some(stated) => {
            let shape_of = |c: &T5Config| {
                (
                    c.vocab_size,
                    c.d_model,
                    c.d_kv,
                    c.d_ff,
                    c.num_layers,
                    c.num_heads,
                    c.relative_attention_num_buckets,
                )
            };
            if shape_of(&stated) != shape_of(&config) {
                return Err(bad(format!(
                    "the config in its metadata (vocabulary, d_model, d_kv, d_ff, layers, heads, \
                     buckets {:?}) does not match its tensors ({:?})",
                    shape_of(&stated),
                    shape_of(&config)
                )));
            }
            T5Config {
                relative_attention_max_distance: stated.relative_attention_max_distance,
                layer_norm_epsilon: stated.layer_norm_epsilon,
                ..config
            }
        }
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
