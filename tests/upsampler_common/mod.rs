//! Shared by the latent upsampler's CPU parity and GPU tests: the fixture
//! (`tools/fixtures/upsampler.py`), its cases and the tiny VAE's latent
//! statistics.

#![allow(dead_code)]

use std::path::PathBuf;

use genfx::backend::Device;
use genfx::pipeline::adapters::LtxVae;
use genfx::pipeline::components::{LatentStatistics, VideoCodec};
use genfx::pipeline::upsample::UpsampleSettings;
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use genfx::weights::WeightFiles;

pub fn dir() -> PathBuf {
    fixtures_dir().join("upsampler")
}

/// The fixture's variants (one single file each) and settings.
pub struct Cases {
    pub files: WeightFiles,
    pub variants: Vec<String>,
    pub settings: Vec<(String, UpsampleSettings)>,
    pub doc: serde_json::Value,
}

pub fn cases() -> Cases {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("cases.json parses");
    let mut variants: Vec<String> = doc["variants"]
        .as_object()
        .expect("variants")
        .keys()
        .cloned()
        .collect();
    variants.sort();
    let settings = doc["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .map(|s| {
            (
                s[0].as_str().expect("name").to_string(),
                UpsampleSettings {
                    adain_factor: s[1].as_f64().expect("adain") as f32,
                    tone_map_compression: s[2].as_f64().expect("tone map") as f32,
                },
            )
        })
        .collect();
    Cases {
        files: WeightFiles::open_file(&dir().join("cases.safetensors")).expect("cases"),
        variants,
        settings,
        doc,
    }
}

/// A case tensor as f32 with its dims.
pub fn tensor(files: &WeightFiles, name: &str) -> (Vec<usize>, Vec<f32>) {
    let dims = files
        .shape(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_vec();
    let t = files
        .load(name, &dims, DType::F32, &Device::cpu())
        .expect(name);
    (dims, t.to_vec_f32().expect(name))
}

/// The tiny pipeline VAE's statistics, read as the engine reads them.
pub fn statistics() -> LatentStatistics {
    let vae = LtxVae::load(&fixtures_dir().join("pipeline").join("model").join("vae"))
        .expect("fixture VAE");
    vae.latent_statistics().expect("statistics")
}

/// `[1, C, f, h, w]` dims as the pipeline's `[C, f, h, w]`.
pub fn dims4(dims: &[usize]) -> [usize; 4] {
    assert_eq!(dims.len(), 5);
    assert_eq!(dims[0], 1);
    [dims[1], dims[2], dims[3], dims[4]]
}

/// `z * std / scaling_factor + mean` per channel of `[C, ..]`.
pub fn denormalize(z: &[f32], stats: &LatentStatistics) -> Vec<f32> {
    let per = z.len() / stats.mean.len();
    z.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i / per;
            v * stats.std[c] / stats.scaling_factor + stats.mean[c]
        })
        .collect()
}
