//! The CPU with 16-bit weights: the fixture model's weights rounded to bf16
//! and stored as bf16 (kept so on the CPU, read in place from the map and
//! widened per op) give the same shot as the same values stored in f32.

use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::engine::{Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::pipeline::engine::LtxEngine;
use genfx::testing::{assert_close, fixtures_dir};
use half::bf16;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

struct Quiet;
impl JobObserver for Quiet {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
    fn notice(&self, _: &str) {}
}

/// Copies `src` to `dst`, rewriting every f32 safetensors tensor as bf16
/// (`as_bf16`) or as f32 holding the bf16-rounded values.
fn copy_rounded(src: &Path, dst: &Path, as_bf16: bool) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if from.is_dir() {
            copy_rounded(&from, &to, as_bf16);
        } else if from.extension().is_some_and(|e| e == "safetensors") {
            let bytes = std::fs::read(&from).unwrap();
            let file = SafeTensors::deserialize(&bytes).unwrap();
            let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
            for (name, view) in file.tensors() {
                assert_eq!(view.dtype(), Dtype::F32, "{name}");
                let rounded = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                let (dtype, data) = if as_bf16 {
                    (Dtype::BF16, rounded.flat_map(|x| x.to_le_bytes()).collect())
                } else {
                    let f: Vec<u8> = rounded.flat_map(|x| x.to_f32().to_le_bytes()).collect();
                    (Dtype::F32, f)
                };
                out.push((name, dtype, view.shape().to_vec(), data));
            }
            let views: Vec<(String, TensorView<'_>)> = out
                .iter()
                .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
                .collect();
            safetensors::serialize_to_file(views, None, &to).unwrap();
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genfx-half-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn shot(model: PathBuf) -> Vec<f32> {
    let request = ShotRequest {
        text_encoder: None,
        model,
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: "blurry".into(),
        seed: 5,
        quality: Quality::Steps(2),
        guidance: 3.0,
        width: 64,
        height: 32,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    };
    let shot = LtxEngine::new(Device::cpu())
        .generate(&request, &Quiet)
        .unwrap();
    shot.frames.into_iter().flat_map(|f| f.rgb).collect()
}

#[test]
fn bf16_weights_on_the_cpu_match_their_f32_values() {
    let src = fixtures_dir().join("pipeline/model");
    let (half, full) = (scratch("bf16"), scratch("f32"));
    copy_rounded(&src, &half, true);
    copy_rounded(&src, &full, false);
    let want = shot(full.clone());
    let got = shot(half.clone());
    assert_eq!(got.len(), want.len());
    // Same f32 values, same f32 arithmetic; only the order of the matmul's
    // sums may differ (the bf16 weight is multiplied panel by panel).
    assert_close("shot from bf16 weights", &got, &want, 1e-4);
    let _ = std::fs::remove_dir_all(half);
    let _ = std::fs::remove_dir_all(full);
}
