//! Shared helpers for the VAE tests: the fixture model, its cases and a
//! tolerance check.
#![allow(dead_code)]

use std::path::PathBuf;

use genfx::models::ltx::vae::{
    AutoencoderKLLTXVideo, SpatialTiling, TemporalTiling, TensorSource, Tiling, Volume,
};
use genfx::weights::WeightFiles;
use serde::Deserialize;

pub fn fixture_dir() -> PathBuf {
    genfx::testing::fixtures_dir().join("vae")
}

pub fn fixture_vae() -> AutoencoderKLLTXVideo {
    AutoencoderKLLTXVideo::load(&fixture_dir()).expect("fixture VAE loads")
}

#[derive(Deserialize)]
pub struct CaseList {
    pub encode: Vec<EncodeCase>,
    pub decode: Vec<DecodeCase>,
}

#[derive(Deserialize)]
pub struct EncodeCase {
    pub name: String,
}

#[derive(Deserialize)]
pub struct DecodeCase {
    pub name: String,
    pub decode_timestep: Vec<f32>,
    pub decode_noise_scale: Vec<f32>,
    pub tiling: Option<TilingCase>,
}

impl DecodeCase {
    /// The tiles the case decodes in, as the fixture script set them.
    pub fn tiling(&self) -> Tiling {
        match &self.tiling {
            None => Tiling::default(),
            Some(t) if t.kind == "spatial" => Tiling {
                spatial: Some(SpatialTiling {
                    min_height: t.min,
                    min_width: t.min,
                    stride_height: t.stride,
                    stride_width: t.stride,
                }),
                temporal: None,
            },
            Some(t) => Tiling {
                spatial: None,
                temporal: Some(TemporalTiling {
                    min_frames: t.min,
                    stride_frames: t.stride,
                }),
            },
        }
    }
}

#[derive(Deserialize)]
pub struct TilingCase {
    pub kind: String,
    pub min: usize,
    pub stride: usize,
}

pub fn cases() -> (WeightFiles, CaseList) {
    let dir = fixture_dir();
    let source = WeightFiles::open_file(&dir.join("cases.safetensors")).expect("cases.safetensors");
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
    (
        source,
        serde_json::from_str(&text).expect("cases.json parses"),
    )
}

pub fn tensor(source: &WeightFiles, name: &str) -> Volume {
    let (shape, data) = source
        .fetch(name)
        .expect("cases readable")
        .unwrap_or_else(|| panic!("case tensor {name} missing"));
    let dims: [usize; 5] = shape
        .try_into()
        .unwrap_or_else(|s| panic!("{name} is not 5-D: {s:?}"));
    Volume::new(dims, data).expect("case tensor shape")
}

/// Worst absolute error relative to the reference's largest magnitude.
pub fn relative_error(got: &Volume, want: &Volume) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let scale = want
        .data()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let worst = got
        .data()
        .iter()
        .zip(want.data())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    worst / scale
}

/// f32 against f32: max |ours - reference| <= 1e-4 * max |reference|.
pub const TOLERANCE: f32 = 1e-4;

pub fn assert_close(got: &Volume, want: &Volume, what: &str) {
    let err = relative_error(got, want);
    eprintln!("{what}: relative max error {err:.2e}");
    assert!(
        err <= TOLERANCE,
        "{what}: relative max error {err:.3e} > {TOLERANCE:e}"
    );
}
