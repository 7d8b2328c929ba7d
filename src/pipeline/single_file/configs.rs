//! The configs a single-file LTX-Video checkpoint keeps in its metadata, in
//! LTX-Video's own terms (`Transformer3DModel`, `CausalVideoAutoencoder`,
//! `RectifiedFlowScheduler`), turned into the diffusers configs our models
//! are built from. Each function says in its error what it cannot build.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::models::ltx::transformer::TransformerConfig;
use crate::models::ltx::vae::VaeConfig;
use crate::sampler::schedule::{SchedulerConfig, TimeShiftType};

type Obj = Map<String, Value>;

fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn uint(o: &Obj, key: &str) -> Result<usize, String> {
    get(o, key)
        .ok_or_else(|| format!("`{key}` is missing"))?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| format!("`{key}` is not a whole number"))
}

fn uint_or(o: &Obj, key: &str, default: usize) -> Result<usize, String> {
    if get(o, key).is_none() {
        return Ok(default);
    }
    uint(o, key)
}

fn float_or(o: &Obj, key: &str, default: f64) -> Result<f64, String> {
    match get(o, key) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| format!("`{key}` is not a number")),
    }
}

fn flag_or(o: &Obj, key: &str, default: bool) -> Result<bool, String> {
    match get(o, key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("`{key}` is not true/false")),
    }
}

fn text_or<'a>(o: &'a Obj, key: &str, default: &'a str) -> Result<&'a str, String> {
    match get(o, key) {
        None => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| format!("`{key}` is not text")),
    }
}

/// Requires `key` to be `want` (or absent when `default` is `want`).
fn expect(o: &Obj, key: &str, default: &str, want: &str) -> Result<(), String> {
    let got = text_or(o, key, default)?;
    if got != want {
        return Err(format!("{key} \"{got}\" (GenFX runs \"{want}\")"));
    }
    Ok(())
}

fn class_is(o: &Obj, want: &str) -> Result<(), String> {
    match get(o, "_class_name").and_then(Value::as_str) {
        Some(c) if c == want => Ok(()),
        Some(c) => Err(format!("it is a {c}, not an LTX-Video {want}")),
        None => Err(format!("its config names no class (expected {want})")),
    }
}

/// `Transformer3DModel` -> diffusers `LTXVideoTransformer3DModel`.
pub fn transformer(o: &Obj) -> Result<TransformerConfig, String> {
    class_is(o, "Transformer3DModel")?;
    let qk_norm = match text_or(o, "qk_norm", "")? {
        "rms_norm" => "rms_norm_across_heads",
        other => return Err(format!("qk_norm \"{other}\" (GenFX runs \"rms_norm\")")),
    };
    expect(o, "standardization_norm", "layer_norm", "rms_norm")?;
    expect(
        o,
        "adaptive_norm",
        "single_scale_shift",
        "single_scale_shift",
    )?;
    expect(o, "positional_embedding_type", "rope", "rope")?;
    // Our RoPE has LTX-Video's base and maximum positions built in.
    let theta = float_or(o, "positional_embedding_theta", 10000.0)?;
    if theta != 10000.0 {
        return Err(format!(
            "positional_embedding_theta {theta} (GenFX runs 10000)"
        ));
    }
    if let Some(max_pos) = get(o, "positional_embedding_max_pos") {
        if max_pos != &serde_json::json!([20, 2048, 2048]) {
            return Err(format!(
                "positional_embedding_max_pos {max_pos} (GenFX runs [20, 2048, 2048])"
            ));
        }
    }
    let multiplier = float_or(o, "timestep_scale_multiplier", 1000.0)?;
    if multiplier != 1000.0 {
        return Err(format!(
            "timestep_scale_multiplier {multiplier} (GenFX runs 1000)"
        ));
    }
    let in_channels = uint(o, "in_channels")?;
    Ok(TransformerConfig {
        in_channels,
        out_channels: uint_or(o, "out_channels", in_channels)?,
        patch_size: 1,
        patch_size_t: 1,
        num_attention_heads: uint(o, "num_attention_heads")?,
        attention_head_dim: uint(o, "attention_head_dim")?,
        cross_attention_dim: uint(o, "cross_attention_dim")?,
        num_layers: uint(o, "num_layers")?,
        activation_fn: text_or(o, "activation_fn", "geglu")?.to_string(),
        qk_norm: qk_norm.to_string(),
        norm_elementwise_affine: flag_or(o, "norm_elementwise_affine", true)?,
        norm_eps: float_or(o, "norm_eps", 1e-5)?,
        caption_channels: uint(o, "caption_channels")?,
        attention_bias: flag_or(o, "attention_bias", false)?,
        // LTX-Video's attention always has an output bias.
        attention_out_bias: true,
        extra: BTreeMap::new(),
    })
}

/// One `[name, params]` entry of an LTX-Video VAE block list.
fn block(entry: &Value) -> Result<(&str, Obj), String> {
    let pair = entry
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("block {entry} is not [name, parameters]"))?;
    let name = pair[0]
        .as_str()
        .ok_or_else(|| format!("block {entry} has no name"))?;
    let params = match &pair[1] {
        Value::Object(p) => p.clone(),
        // The oldest configs give a bare layer count.
        Value::Number(n) => {
            let mut p = Obj::new();
            p.insert("num_layers".into(), Value::Number(n.clone()));
            p
        }
        other => return Err(format!("block {name} has parameters {other}")),
    };
    Ok((name, params))
}

fn blocks<'a>(o: &'a Obj, key: &str) -> Result<&'a Vec<Value>, String> {
    get(o, key)
        .or_else(|| get(o, "blocks"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("`{key}` is missing"))
}

const BEFORE_095: &str = "this is the VAE of LTX-Video before 0.9.5; GenFX needs a 0.9.5 or \
                          later checkpoint (ltx-video-2b-v0.9.5, ltxv-2b-0.9.6-*, ltxv-2b-0.9.8-*)";

/// `CausalVideoAutoencoder` (0.9.5+ layout) -> diffusers `AutoencoderKLLTXVideo`.
///
/// The 0.9.5 encoder alternates `res_x` blocks with `compress_*_res`
/// downsamplers and ends in a `res_x`; its decoder alternates `res_x` with
/// `compress_all` upsamplers and is timestep-conditioned. Older layouts
/// (plain `compress_all` encoder blocks, no decoder timestep) are refused.
pub fn vae(o: &Obj) -> Result<VaeConfig, String> {
    class_is(o, "CausalVideoAutoencoder")?;
    if get(o, "dims") != Some(&Value::from(3)) {
        return Err("dims is not 3 (a 2-D autoencoder)".into());
    }
    expect(o, "norm_layer", "group_norm", "pixel_norm")?;
    expect(o, "latent_log_var", "per_channel", "uniform")?;
    expect(o, "spatial_padding_mode", "zeros", "zeros")?;
    if flag_or(o, "use_quant_conv", true)? {
        return Err("use_quant_conv is set (not an LTX-Video 0.9.5+ VAE)".into());
    }
    if flag_or(o, "normalize_latent_channels", false)? {
        return Err("normalize_latent_channels is set (GenFX does not run it)".into());
    }
    if !flag_or(o, "timestep_conditioning", false)? {
        return Err(format!(
            "its decoder is not timestep-conditioned: {BEFORE_095}"
        ));
    }

    // Encoder: res_x (compress_*_res res_x)*.
    let enc = blocks(o, "encoder_blocks")?;
    let mut channels = vec![uint_or(o, "encoder_base_channels", 128)?];
    let mut layers = Vec::new();
    let mut downsample_type = Vec::new();
    for (i, entry) in enc.iter().enumerate() {
        let (name, p) = block(entry)?;
        let want_res = i % 2 == 0;
        match name {
            "res_x" if want_res => layers.push(uint(&p, "num_layers")?),
            "compress_space_res" | "compress_time_res" | "compress_all_res" if !want_res => {
                downsample_type.push(
                    match name {
                        "compress_space_res" => "spatial",
                        "compress_time_res" => "temporal",
                        _ => "spatiotemporal",
                    }
                    .to_string(),
                );
                let last = *channels.last().unwrap_or(&0);
                channels.push(last * uint_or(&p, "multiplier", 2)?);
            }
            "compress_all" | "compress_time" | "compress_space" | "res_x_y" => {
                return Err(format!("encoder block \"{name}\": {BEFORE_095}"))
            }
            other => {
                return Err(format!(
                    "encoder block {i} \"{other}\" where the 0.9.5 layout has {}",
                    if want_res {
                        "res_x"
                    } else {
                        "a compress_*_res downsampler"
                    }
                ))
            }
        }
    }
    if enc.len() % 2 == 0 || downsample_type.is_empty() {
        return Err(
            "the encoder's blocks do not end in a res_x block after its downsamplers".into(),
        );
    }

    // Decoder, listed in encoder order: res_x (compress_all res_x)*.
    let dec = blocks(o, "decoder_blocks")?;
    let mut dec_layers = Vec::new();
    let mut inject = Vec::new();
    let mut factors = Vec::new();
    let mut residual = Vec::new();
    for (i, entry) in dec.iter().enumerate() {
        let (name, p) = block(entry)?;
        match name {
            "res_x" if i % 2 == 0 => {
                dec_layers.push(uint(&p, "num_layers")?);
                inject.push(flag_or(&p, "inject_noise", false)?);
            }
            "compress_all" if i % 2 == 1 => {
                factors.push(uint_or(&p, "multiplier", 1)?);
                residual.push(flag_or(&p, "residual", false)?);
            }
            other => {
                return Err(format!(
                    "decoder block {i} \"{other}\" does not fit the 0.9.5 layout (res_x blocks \
                     between compress_all upsamplers)"
                ))
            }
        }
    }
    if dec.len() % 2 == 0 || factors.is_empty() {
        return Err("the decoder's blocks do not end in a res_x block after its upsamplers".into());
    }
    // Channels into each upsampler, from the last level up.
    let mut dec_channels = Vec::with_capacity(factors.len());
    let mut c = uint_or(o, "decoder_base_channels", 128)?;
    for f in &factors {
        c *= f;
        dec_channels.push(c);
    }

    let patch_size = uint_or(o, "patch_size", 1)?;
    let spatial_steps = downsample_type.iter().filter(|t| *t != "temporal").count();
    let temporal_steps = downsample_type.iter().filter(|t| *t != "spatial").count();
    let n_down = downsample_type.len();
    let n_up = factors.len();
    Ok(VaeConfig {
        in_channels: uint_or(o, "in_channels", 3)?,
        out_channels: uint_or(o, "out_channels", 3)?,
        latent_channels: uint(o, "latent_channels")?,
        block_out_channels: channels,
        down_block_types: vec!["LTXVideo095DownBlock3D".into(); n_down],
        decoder_block_out_channels: dec_channels,
        layers_per_block: layers,
        decoder_layers_per_block: dec_layers,
        spatio_temporal_scaling: vec![true; n_down],
        decoder_spatio_temporal_scaling: vec![true; n_up],
        decoder_inject_noise: inject,
        downsample_type,
        upsample_residual: residual,
        upsample_factor: factors,
        timestep_conditioning: true,
        patch_size,
        patch_size_t: 1,
        resnet_norm_eps: 1e-6,
        scaling_factor: float_or(o, "scaling_factor", 1.0)? as f32,
        encoder_causal: true,
        decoder_causal: flag_or(o, "causal_decoder", false)?,
        spatial_compression_ratio: Some(patch_size << spatial_steps),
        temporal_compression_ratio: Some(1 << temporal_steps),
    })
}

/// `RectifiedFlowScheduler` -> our flow-matching schedule settings, as
/// LTX-Video itself pairs them (`ltx_video/utils/diffusers_config_mapping.py`):
/// its "SD3" shifting is the exponential resolution-dependent shift between
/// 0.95 at 1024 latent tokens and 2.05 at 4096, stretched so the schedule
/// ends at `target_shift_terminal`; without shifting the timesteps are used
/// as they are. The `sampler` entry (the default spacing of steps) is not a
/// setting here: GenFX's Quality presets choose the steps.
pub fn scheduler(o: &Obj) -> Result<SchedulerConfig, String> {
    class_is(o, "RectifiedFlowScheduler")?;
    let train = uint_or(o, "num_train_timesteps", 1000)?;
    if train == 0 || train > 1_000_000 {
        return Err(format!("num_train_timesteps {train}"));
    }
    let base = SchedulerConfig {
        num_train_timesteps: train as u32,
        ..SchedulerConfig::default()
    };
    match get(o, "shifting").map(|v| v.as_str().ok_or("`shifting` is not text")) {
        None => Ok(base),
        Some(Err(e)) => Err(e.into()),
        Some(Ok("SD3")) => {
            let terminal = float_or(o, "target_shift_terminal", 0.0)?;
            Ok(SchedulerConfig {
                use_dynamic_shifting: true,
                base_shift: 0.95,
                max_shift: 2.05,
                base_image_seq_len: 1024.0,
                max_image_seq_len: 4096.0,
                shift_terminal: (terminal != 0.0).then_some(terminal),
                time_shift_type: TimeShiftType::Exponential,
                ..base
            })
        }
        Some(Ok(other)) => Err(format!(
            "shifting \"{other}\" (GenFX runs \"SD3\" or no shifting)"
        )),
    }
}
