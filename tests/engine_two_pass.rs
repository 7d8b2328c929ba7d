//! The engine's choice between one pass and the distilled two-pass recipe,
//! on a copy of the tiny pipeline model marked distilled: with the fixture's
//! latent upsampler in it the Standard preset runs two passes (and says
//! so), scaled back to the asked size, for a prompt and for an extension;
//! without one it runs one pass and says what to add.

mod two_pass_common;

use std::path::PathBuf;

use genfx::backend::Device;
use genfx::engine::{Clip, Frame, Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage};
use genfx::pipeline::engine::LtxEngine;
use parking_lot::Mutex;
use two_pass_common::distilled_model;

#[derive(Default)]
struct Watch {
    notes: Mutex<Vec<String>>,
    denoising: Mutex<Vec<(u32, u32)>>,
}

impl JobObserver for Watch {
    fn progress(&self, stage: Stage, done: u32, total: u32) {
        if stage == Stage::Denoising {
            self.denoising.lock().push((done, total));
        }
    }
    fn should_abort(&self) -> bool {
        false
    }
    fn notice(&self, message: &str) {
        self.notes.lock().push(message.into());
    }
}

fn request(model: PathBuf, job: Job) -> ShotRequest {
    ShotRequest {
        text_encoder: None,
        model,
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: String::new(),
        seed: 5,
        quality: Quality::Standard,
        guidance: 1.0,
        width: 96,
        height: 64,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job,
        windows: Default::default(),
    }
}

fn context() -> Clip {
    Clip {
        frames: (0..9)
            .map(|i| {
                let rgb = (0..96 * 64 * 3)
                    .map(|p| ((p as f32 * 0.013 + i as f32 * 0.1).sin() + 1.0) / 2.0)
                    .collect();
                Frame::new(96, 64, rgb).unwrap()
            })
            .collect(),
    }
}

#[test]
fn standard_runs_two_passes_with_an_upsampler_and_says_so() {
    let model = distilled_model("with", true);
    let engine = LtxEngine::new(Device::cpu());
    for job in [
        Job::Generate { reference: None },
        Job::ExtendForward { context: context() },
    ] {
        let w = Watch::default();
        let shot = engine.generate(&request(model.clone(), job), &w).unwrap();
        let notes = w.notes.lock().clone();
        println!("{notes:?}");
        let said = notes
            .iter()
            .find(|n| n.starts_with("two passes"))
            .unwrap_or_else(|| panic!("no two-pass notice in {notes:?}"));
        // 96x64 -> 32x32, upsampled to 64x64, scaled back to 96x64.
        assert!(said.contains("32x32") && said.contains("64x64"), "{said}");
        assert!(
            said.contains("scaled to 96x64") && !said.contains("  "),
            "{said}"
        );
        assert!(shot.frames.iter().all(|f| f.width == 96 && f.height == 64));
        assert!(shot
            .frames
            .iter()
            .flat_map(|f| &f.rgb)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        // Both passes report their steps: 8 distilled, then 3 refinement.
        let denoising = w.denoising.lock().clone();
        assert!(denoising.contains(&(8, 8)), "{denoising:?}");
        assert_eq!(denoising.last(), Some(&(3, 3)), "{denoising:?}");
    }
    // Draft stays one pass at the asked size.
    let mut draft = request(model, Job::Generate { reference: None });
    draft.quality = Quality::Draft;
    let w = Watch::default();
    engine.generate(&draft, &w).unwrap();
    assert!(w.notes.lock().iter().any(|n| n.contains("Draft")));
}

#[test]
fn without_an_upsampler_one_pass_runs_and_the_notice_says_what_to_add() {
    let model = distilled_model("without", false);
    let w = Watch::default();
    let shot = LtxEngine::new(Device::cpu())
        .generate(&request(model, Job::Generate { reference: None }), &w)
        .unwrap();
    assert_eq!(shot.frames.len(), 9);
    let notes = w.notes.lock().clone();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("single pass") && n.contains("ltxv-spatial-upscaler-0.9.8")),
        "{notes:?}"
    );
    assert_eq!(w.denoising.lock().last(), Some(&(8, 8)));
}

#[test]
fn a_broken_upsampler_costs_the_second_pass_and_a_new_one_is_seen() {
    let model = distilled_model("broken", false);
    let engine = LtxEngine::new(Device::cpu());
    let upscaler = model.join("ltxv-spatial-upscaler-0.9.8.safetensors");
    std::fs::write(&upscaler, b"not a safetensors file").unwrap();
    let w = Watch::default();
    let shot = engine
        .generate(
            &request(model.clone(), Job::Generate { reference: None }),
            &w,
        )
        .unwrap();
    assert_eq!(shot.frames.len(), 9);
    let notes = w.notes.lock().clone();
    println!("{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("single pass after all") && n.contains("ltxv-spatial-upscaler")),
        "{notes:?}"
    );
    // Replaced by a good one while the model stays loaded: two passes.
    std::fs::remove_file(&upscaler).unwrap();
    let good = genfx::testing::fixtures_dir()
        .join("upsampler")
        .join("spatial3d")
        .join("upscaler.safetensors");
    std::fs::copy(good, &upscaler).unwrap();
    let w = Watch::default();
    engine
        .generate(&request(model, Job::Generate { reference: None }), &w)
        .unwrap();
    let notes = w.notes.lock().clone();
    assert!(
        notes.iter().any(|n| n.starts_with("two passes")),
        "{notes:?}"
    );
}

/// A long shot of the distilled model runs the two-pass recipe in every
/// window: the refinement keeps the neighbour's latent frames exactly, so
/// neighbouring windows share them, and every frame is at the asked size.
#[test]
fn a_long_shot_runs_two_passes_per_window_and_windows_share_their_latents() {
    use genfx::engine::{CollectFrames, WindowSettings};
    use genfx::pipeline::disk_cache::{current_identity, shot_key};
    use genfx::pipeline::long_shot::{self, plan::WindowSize, store::WindowStore};
    let model = distilled_model("long", true);
    let dir = std::env::temp_dir().join(format!("genfx-two-pass-long-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // 33 + 2·24 = 81 ≥ 60: three windows.
    let r = ShotRequest {
        num_frames: 60,
        windows: WindowSettings {
            length: Some(33),
            overlap: Some(9),
            drift: Some(0.5),
        },
        ..request(model.clone(), Job::Generate { reference: None })
    };
    let w = Watch::default();
    let sink = CollectFrames::default();
    LtxEngine::new(Device::cpu())
        .generate_into(&r, &w, &sink, Some(&dir))
        .unwrap();
    let frames = sink.into_shot().frames;
    assert_eq!(frames.len(), 60);
    assert!(frames.iter().all(|f| f.width == 96 && f.height == 64));
    assert!(frames
        .iter()
        .flat_map(|f| &f.rgb)
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    let notes = w.notes.lock().join("\n");
    assert!(notes.contains("two passes per window"), "{notes}");
    // Each window: 8 distilled steps, then 3 refinement steps.
    let denoising = w.denoising.lock().clone();
    assert_eq!(denoising.iter().filter(|&&d| d == (3, 3)).count(), 3);
    assert_eq!(denoising.iter().filter(|&&d| d == (8, 8)).count(), 3);

    let size = WindowSize::new(33, Some(9), 8).unwrap();
    let shot = shot_key(&current_identity(&model).unwrap(), &r).0;
    let shot = long_shot::two_pass_shot(&shot, [(32, 32), (64, 64)]);
    let store = WindowStore::open(&dir).unwrap();
    let windows: Vec<_> = (0..3)
        .map(|k| {
            store
                .get(&long_shot::window_key(&shot, size, 0.5, k, 3))
                .unwrap()
                .expect("every window is stored under its two-pass key")
        })
        .collect();
    // Latents at the refinement size (64x64 / 32), two shared frames.
    let frame = |e: &long_shot::store::WindowEntry, f: usize| -> Vec<f32> {
        let [c, lf, h, w] = e.latent_dims;
        assert_eq!((h, w), (2, 2));
        (0..c)
            .flat_map(|ch| e.latents[(ch * lf + f) * h * w..(ch * lf + f + 1) * h * w].to_vec())
            .collect()
    };
    for k in 1..3 {
        let lf = windows[k - 1].latent_dims[1];
        for j in 0..2 {
            assert!(
                frame(&windows[k], j) == frame(&windows[k - 1], lf - 2 + j),
                "window {k} latent frame {j}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
