//! The whole LTX engine on the GPU (text encoder, transformer, sampling loop
//! and VAE) against the same engine on the CPU, on the tiny random-weight
//! model of `tests/fixtures/pipeline/model`. `cargo xtask test` runs it on
//! the emulated device, `cargo xtask test-gpu` on a card.
//!
//! Tolerances on the decoded frames (values in [0, 1]):
//! - T5 and transformer in f32 on the GPU: 2e-3 max abs. The embeddings
//!   differ from the CPU's by ~3e-6 relative (`gpu_t5`), per step the
//!   velocity by ~1e-5 relative (the transformer GPU test's bound is 1e-3),
//!   a handful of Euler steps add that up, and the VAE's f32 decode on the
//!   GPU matches the CPU's to ~1e-5 relative (`gpu_vae`). Measured 1.9e-6.
//! - all in the card's 16-bit type (on the emulated H100, bf16): mean abs
//!   error 3e-2 and every value finite and in range. bf16 rounding (2^-8)
//!   in every block, over every step, moves individual pixels by more than
//!   any useful bound, so the mean is what is checked; a wrong kernel moves
//!   it by ~0.2. Measured 3.1e-3 with the VAE in bf16 too.

mod gpu_common;

use genfx::backend::Device;
use genfx::engine::{Job, Quality, ShotEngine, ShotRequest, Silent};
use genfx::pipeline::engine::LtxEngine;
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;
use gpu_common::gpu_or_skip;

fn request() -> ShotRequest {
    ShotRequest {
        model: fixtures_dir().join("pipeline/model"),
        text_encoder: None,
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: "blurry".into(),
        seed: 3,
        // Standard with explicit steps: CFG and STG both run.
        quality: Quality::Steps(3),
        guidance: 3.0,
        width: 64,
        height: 32,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::Generate { reference: None },
        windows: Default::default(),
    }
}

fn pixels(engine: &LtxEngine) -> Vec<f32> {
    engine
        .generate(&request(), &Silent)
        .unwrap()
        .frames
        .into_iter()
        .flat_map(|f| f.rgb)
        .collect()
}

#[test]
fn the_engine_on_the_gpu_matches_the_cpu() {
    let Some(gpu) = gpu_or_skip("the_engine_on_the_gpu_matches_the_cpu") else {
        return;
    };
    let device = Device::new(gpu);
    let want = pixels(&LtxEngine::new(Device::cpu()));

    let f32_on_gpu = pixels(&LtxEngine::with_dtype(device.clone(), DType::F32));
    let max = f32_on_gpu
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("f32 on {}: max abs err {max:.3e}", device.name());
    assert!(max <= 2e-3, "f32 on the GPU differs by {max}");

    let half = device.compute_dtype();
    let half_on_gpu = pixels(&LtxEngine::new(device.clone()));
    assert!(half_on_gpu
        .iter()
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    let mean = half_on_gpu
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / want.len() as f32;
    println!("{half} on {}: mean abs err {mean:.3e}", device.name());
    assert!(
        mean <= 3e-2,
        "{half} on the GPU differs by {mean} on average"
    );
}
