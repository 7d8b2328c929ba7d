//! The engine's two-pass recipe (first pass, latent upsampler, refinement,
//! scaling to the asked size) on the GPU against the same engine on the
//! CPU, on the tiny model marked distilled with the fixture's upsampler.
//! `cargo xtask test` runs it on the emulated device, `cargo xtask
//! test-gpu` on a card.
//!
//! Everything in f32 on the GPU: the frames agree to 2e-3 max abs, the
//! one-pass engine test's bound (`gpu_engine`): per step the velocity
//! differs by ~1e-5 relative, the upsampler's output by ~2e-6
//! (`gpu_upsampler`), the VAE's decode by ~1e-5.

mod gpu_common;
mod two_pass_common;

use genfx::backend::Device;
use genfx::engine::{Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::pipeline::engine::LtxEngine;
use genfx::tensor::DType;
use gpu_common::gpu_or_skip;
use parking_lot::Mutex;
use two_pass_common::distilled_model;

const TOL_F32: f32 = 2e-3;

#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl JobObserver for Notes {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
    fn notice(&self, message: &str) {
        self.0.lock().push(message.into());
    }
}

fn pixels(engine: &LtxEngine, request: &ShotRequest) -> Vec<f32> {
    let notes = Notes::default();
    let shot = engine.generate(request, &notes).unwrap();
    assert!(
        notes.0.lock().iter().any(|n| n.starts_with("two passes")),
        "{:?}",
        notes.0.lock()
    );
    shot.frames.into_iter().flat_map(|f| f.rgb).collect()
}

#[test]
fn the_two_pass_recipe_on_the_gpu_matches_the_cpu() {
    let Some(gpu) = gpu_or_skip("the_two_pass_recipe_on_the_gpu_matches_the_cpu") else {
        return;
    };
    let request = ShotRequest {
        text_encoder: None,
        model: distilled_model("gpu", true),
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: String::new(),
        seed: 7,
        quality: Quality::High,
        guidance: 1.0,
        width: 96,
        height: 64,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    };
    let want = pixels(&LtxEngine::new(Device::cpu()), &request);
    let device = Device::new(gpu);
    let got = pixels(&LtxEngine::with_dtype(device, DType::F32), &request);
    assert_eq!(got.len(), want.len());
    assert!(got.iter().all(|v| v.is_finite()));
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("two-pass frames, GPU f32 against CPU: max abs err {err:.2e}");
    assert!(err <= TOL_F32, "max abs err {err:e} > {TOL_F32:e}");
}
