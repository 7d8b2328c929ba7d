//! The targets: each hands arbitrary bytes to one of GenFX's parsers.

use std::path::Path;

use genfx::models::ltx::latent_upsampler::UpsamplerConfig;
use genfx::models::ltx::transformer::TransformerConfig;
use genfx::models::ltx::vae::VaeConfig;
use genfx::models::t5::T5Config;
use genfx::pipeline::disk_cache::{self, ShotKey};
use genfx::pipeline::single_file::Checkpoint;
use genfx::sampler::schedule::{Schedule, ScheduleSource, SchedulerConfig};
use genfx::tensor::DType;
use genfx::tokenizer::{SentencePiece, TokenizerConfig, TokenizerJson};
use genfx::weights::{SafetensorsFile, WeightFiles};
use sha2::{Digest, Sha256};

use crate::scratch;

pub type Target = fn(&[u8]);

/// Every target, by the name `cargo xtask fuzz` uses.
const TARGETS: [(&str, Target); 15] = [
    ("safetensors", safetensors),
    ("shard_index", shard_index),
    ("transformer_config", transformer_config),
    ("vae_config", vae_config),
    ("t5_config", t5_config),
    ("scheduler_config", scheduler_config),
    ("upsampler_config", upsampler_config),
    ("upsampler_file", upsampler_file),
    ("tokenizer_config", tokenizer_config),
    ("spiece_model", spiece_model),
    ("tokenizer_json", tokenizer_json),
    ("single_file", single_file),
    ("disk_cache", disk_cache_entry),
    ("png", png),
    ("exr", exr),
];

pub const NAMES: [&str; TARGETS.len()] = {
    let mut names = [""; TARGETS.len()];
    let mut i = 0;
    while i < TARGETS.len() {
        names[i] = TARGETS[i].0;
        i += 1;
    }
    names
};

pub fn by_name(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A prompt for the tokenizers once they have parsed: normalisation,
/// spaces, digits and characters outside any small vocabulary.
const PROMPT: &str = "A  cat\u{3000}jumps over 12 fences, ÉCOLE café 🐈\tat dusk.";

/// `*.safetensors`: the header (offsets, shapes, dtypes, metadata) as
/// `SafetensorsFile::open` checks it, then every tensor read as each dtype.
fn safetensors(data: &[u8]) {
    let path = scratch::file("model.safetensors", data);
    let Ok(file) = SafetensorsFile::open(&path) else {
        return;
    };
    let names: Vec<String> = file.names().map(str::to_string).collect();
    for name in &names {
        let _ = file.shape(name);
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let _ = file.read(name, dtype);
        }
    }
}

/// `*.safetensors.index.json`, beside one real shard (`model.safetensors`,
/// holding the tensor `a`) that it may or may not name.
fn shard_index(data: &[u8]) {
    let shard = scratch::dir().join("model.safetensors");
    if !shard.exists() {
        scratch::file(
            "model.safetensors",
            &tiny_safetensors(&[("a", "F32", &[1])], None),
        );
    }
    let index = scratch::file("model.safetensors.index.json", data);
    if let Ok(files) = WeightFiles::open_index(&index) {
        for name in files.names() {
            let _ = files.shape(name);
        }
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `transformer/config.json`.
fn transformer_config(data: &[u8]) {
    if let Some(text) = text(data) {
        if let Ok(config) = TransformerConfig::from_json(text, Path::new("config.json")) {
            let _ = config.inner_dim();
        }
    }
}

/// `vae/config.json`: parsed, then validated (which plans the encoder and
/// decoder from it).
fn vae_config(data: &[u8]) {
    if let Some(text) = text(data) {
        if let Ok(config) = VaeConfig::from_json(text, "config.json") {
            let _ = config.validate();
        }
    }
}

/// `text_encoder/config.json`.
fn t5_config(data: &[u8]) {
    if let Some(text) = text(data) {
        if let Ok(config) = T5Config::from_json(text, Path::new("config.json")) {
            let _ = config.inner_dim();
        }
    }
}

/// `scheduler/scheduler_config.json`, then schedules built from it the
/// ways the pipeline builds them.
fn scheduler_config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(config) = SchedulerConfig::from_json(text) else {
        return;
    };
    let mu = config.calculate_shift(4096);
    for source in [
        ScheduleSource::Steps(1),
        ScheduleSource::Steps(8),
        ScheduleSource::Timesteps(vec![1000.0, 500.0, 1.0]),
        ScheduleSource::Sigmas(vec![1.0, 0.5, 0.0]),
    ] {
        let _ = Schedule::build(&config, &source, Some(mu));
    }
}

/// `latent_upsampler/config.json`.
fn upsampler_config(data: &[u8]) {
    let path = scratch::file("config.json", data);
    if let Ok(config) = UpsamplerConfig::from_config_json(&path) {
        let _ = config.output_size(3, 4, 6);
    }
}

/// A single-file upsampler (`ltxv-spatial-upscaler-*.safetensors`): the
/// header read for its `config` metadata.
fn upsampler_file(data: &[u8]) {
    let path = scratch::file("upscaler.safetensors", data);
    let _ = UpsamplerConfig::from_safetensors_metadata(&path);
}

/// `tokenizer/tokenizer_config.json`.
fn tokenizer_config(data: &[u8]) {
    if let Some(text) = text(data) {
        let _ = TokenizerConfig::from_json(text, Path::new("tokenizer_config.json"));
    }
}

/// `tokenizer/spiece.model` (SentencePiece protobuf), then a prompt
/// encoded with it.
fn spiece_model(data: &[u8]) {
    if let Ok(model) = SentencePiece::from_bytes(data, Path::new("spiece.model")) {
        let _ = model.encode(PROMPT.as_bytes());
        let _ = model.piece_to_id("</s>");
    }
}

/// `tokenizer.json` (HF tokenizers), then a prompt encoded with it.
fn tokenizer_json(data: &[u8]) {
    if let Some(text) = text(data) {
        if let Ok(model) = TokenizerJson::from_str(text, Path::new("tokenizer.json")) {
            let _ = model.encode(PROMPT);
            let _ = model.piece_to_id("</s>");
        }
    }
}

/// A single-file LTX-Video checkpoint whose `config` metadata is the input,
/// with the tensors `Checkpoint::open` checks against it (shaped as in
/// `tests/fixtures/single_file/ltxv-tiny.safetensors`, so the seed, that
/// file's own metadata, passes every check).
fn single_file(data: &[u8]) {
    let Some(config) = text(data) else { return };
    let bytes = tiny_safetensors(
        &[
            (
                "model.diffusion_model.patchify_proj.weight",
                "F32",
                &[24, 8],
            ),
            (
                "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight",
                "F32",
                &[0],
            ),
            (
                "model.diffusion_model.transformer_blocks.1.attn1.to_q.weight",
                "F32",
                &[0],
            ),
            ("vae.per_channel_statistics.std-of-means", "F32", &[8]),
        ],
        Some(config),
    );
    let path = scratch::file("ltxv.safetensors", &bytes);
    let _ = Checkpoint::open(&path);
}

/// A disk-cache entry (`<key>.genfxshot`). Entries carry a SHA-256 of their
/// body, which mutation would almost never keep right: an input whose
/// first byte is even becomes the body after the magic and key, with the
/// checksum made to match; an odd one is the entry as is.
fn disk_cache_entry(data: &[u8]) {
    let key = ShotKey([7; 32]);
    match data.split_first() {
        Some((flag, rest)) if flag % 2 == 0 => {
            let mut entry = b"GFXSHOT1".to_vec();
            entry.extend_from_slice(&key.0);
            entry.extend_from_slice(rest);
            let sum: [u8; 32] = Sha256::digest(&entry).into();
            entry.extend_from_slice(&sum);
            let _ = disk_cache::decode(&entry, &key);
        }
        Some((_, rest)) => {
            let _ = disk_cache::decode(rest, &key);
        }
        None => {}
    }
}

/// A PNG input of `genfx` (`--input`, `detect`). Chunk CRCs are recomputed
/// first, or nearly every mutation would stop at the first CRC check.
fn png(data: &[u8]) {
    let path = scratch::file("input.png", &fix_png_crcs(data));
    let _ = genfx_host::files::read_png(&path);
}

/// An EXR input of `genfx`.
fn exr(data: &[u8]) {
    let path = scratch::file("input.exr", data);
    let _ = genfx_host::files::read_exr(&path);
}

/// A safetensors file of zero-filled tensors `(name, dtype, shape)`, with a
/// `config` metadata entry when given.
fn tiny_safetensors(tensors: &[(&str, &str, &[usize])], config: Option<&str>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if let Some(config) = config {
        header.insert(
            "__metadata__".into(),
            serde_json::json!({ "config": config }),
        );
    }
    let mut offset = 0usize;
    for (name, dtype, shape) in tensors {
        let width = if *dtype == "F32" { 4 } else { 2 };
        let end = offset + width * shape.iter().product::<usize>();
        header.insert(
            (*name).into(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header).expect("a JSON map serialises");
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.resize(out.len() + offset, 0);
    out
}

/// `data` with the CRC of every whole chunk after the PNG signature set
/// right (a truncated last chunk is left as it is).
fn fix_png_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = 8;
    while at + 12 <= out.len() {
        let len = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= out.len()) else {
            break;
        };
        let crc = crc32(&out[at + 4..end]);
        out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
    out
}

/// The CRC-32 (IEEE) PNG chunks carry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
