//! The LTX engine end to end on the tiny random-weight fixture model.

use genfx::backend::Device;
use genfx::engine::{
    Clip, EngineError, Frame, Job, JobObserver, Quality, ShotEngine, ShotRequest, Stage,
};
use genfx::pipeline::engine::LtxEngine;
use genfx::testing::fixtures_dir;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

fn request(job: Job) -> ShotRequest {
    ShotRequest {
        model: fixtures_dir().join("pipeline/model"),
        text_encoder: None,
        prompt: "a red fox runs through the snow".into(),
        negative_prompt: "blurry".into(),
        seed: 11,
        quality: Quality::Steps(2),
        guidance: 3.0,
        width: 64,
        height: 32,
        num_frames: 17,
        frame_rate: 24.0,
        strength: 1.0,
        job,
        windows: Default::default(),
    }
}

fn clip(n: usize, shade: f32) -> Clip {
    Clip {
        frames: (0..n)
            .map(|i| {
                let rgb = (0..64 * 32 * 3)
                    .map(|p| ((p as f32 * 0.01 + i as f32 * 0.1 + shade).sin() + 1.0) / 2.0)
                    .collect();
                Frame::new(64, 32, rgb).unwrap()
            })
            .collect(),
    }
}

#[derive(Default)]
struct Watch {
    notes: Mutex<Vec<String>>,
    steps: AtomicU32,
    abort_after: Option<u32>,
}

impl JobObserver for Watch {
    fn progress(&self, stage: Stage, done: u32, _: u32) {
        if stage == Stage::Denoising {
            self.steps.store(done, Ordering::SeqCst);
        }
    }
    fn should_abort(&self) -> bool {
        self.abort_after
            .is_some_and(|n| self.steps.load(Ordering::SeqCst) >= n)
    }
    fn notice(&self, message: &str) {
        self.notes.lock().push(message.into());
    }
}

fn engine() -> LtxEngine {
    LtxEngine::new(Device::cpu())
}

#[test]
fn a_prompt_makes_a_deterministic_shot() {
    let w = Watch::default();
    let shot = engine()
        .generate(&request(Job::Generate { reference: None }), &w)
        .unwrap();
    assert_eq!(shot.frames.len(), 17);
    assert!(shot.frames.iter().all(|f| f.width == 64 && f.height == 32));
    assert!(shot
        .frames
        .iter()
        .flat_map(|f| &f.rgb)
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    assert_eq!(w.steps.load(Ordering::SeqCst), 2);
    // Another engine (as another process or farm node would) makes the same frames.
    let again = engine()
        .generate(
            &request(Job::Generate { reference: None }),
            &Watch::default(),
        )
        .unwrap();
    assert_eq!(shot.frames, again.frames);
    let mut other = request(Job::Generate { reference: None });
    other.seed = 12;
    let different = engine().generate(&other, &Watch::default()).unwrap();
    assert_ne!(shot.frames, different.frames);
}

#[test]
fn extend_fill_and_reference_jobs_run() {
    for job in [
        Job::ExtendForward {
            context: clip(9, 0.0),
        },
        Job::ExtendBackward {
            context: clip(9, 1.0),
        },
        Job::Fill {
            before: clip(9, 0.0),
            after: clip(9, 2.0),
        },
        Job::Generate {
            reference: Some(clip(1, 0.5)),
        },
    ] {
        let mut r = request(job);
        // A fill of 15 puts the clip after on frame 9 + 15 = 24, a latent
        // frame: nothing to retime.
        if matches!(r.job, Job::Fill { .. }) {
            r.num_frames = 15;
        }
        let w = Watch::default();
        let shot = engine().generate(&r, &w).unwrap();
        assert_eq!(shot.frames.len(), r.num_frames as usize);
        assert!(w.notes.lock().is_empty(), "{:?}", w.notes.lock());
    }
}

#[test]
fn any_count_of_new_frames_is_served_exactly() {
    for (job, n) in [
        (
            Job::ExtendForward {
                context: clip(9, 0.0),
            },
            5,
        ),
        (
            Job::ExtendBackward {
                context: clip(1, 1.0),
            },
            12,
        ),
        (
            Job::Fill {
                before: clip(9, 0.0),
                after: clip(1, 2.0),
            },
            10,
        ),
    ] {
        let mut r = request(job);
        r.num_frames = n;
        let w = Watch::default();
        let shot = engine().generate(&r, &w).unwrap();
        assert_eq!(shot.frames.len(), n as usize);
        let notes = w.notes.lock().join("\n");
        if matches!(r.job, Job::Fill { .. }) {
            assert!(
                notes.contains("generating 7 frames and retiming them to 10"),
                "{notes}"
            );
        } else {
            assert!(notes.is_empty(), "{notes}");
        }
    }
}

#[test]
fn odd_lengths_sizes_and_contexts_are_rounded_and_reported() {
    let w = Watch::default();
    let mut r = request(Job::Generate { reference: None });
    r.width = 70;
    r.height = 40;
    r.num_frames = 20;
    let shot = engine().generate(&r, &w).unwrap();
    assert_eq!(shot.frames.len(), 20);
    assert_eq!((shot.frames[0].width, shot.frames[0].height), (64, 32));
    let notes = w.notes.lock().join("\n");
    assert!(notes.contains("generating at 64x32"), "{notes}");
    assert!(
        notes.contains("generating 25 frames and keeping the first 20"),
        "{notes}"
    );

    let w = Watch::default();
    engine()
        .generate(
            &request(Job::ExtendForward {
                context: clip(12, 0.0),
            }),
            &w,
        )
        .unwrap();
    assert!(w
        .notes
        .lock()
        .iter()
        .any(|n| n.contains("12 frames") && n.contains("9 are used")));

    // Frames at another size than the working resolution are refused.
    let mut r = request(Job::ExtendForward {
        context: clip(9, 0.0),
    });
    r.width = 96;
    assert!(matches!(
        engine().generate(&r, &Watch::default()),
        Err(EngineError::InvalidRequest(_))
    ));
}

#[test]
fn a_long_prompt_is_cut_and_reported() {
    let w = Watch::default();
    let mut r = request(Job::Generate { reference: None });
    r.prompt = "the fox runs across the snow ".repeat(60);
    engine().generate(&r, &w).unwrap();
    assert!(
        w.notes
            .lock()
            .iter()
            .any(|n| n.contains("prompt") && n.contains("cut")),
        "{:?}",
        w.notes.lock()
    );
}

#[test]
fn one_step_is_refused_where_the_schedule_cannot_end_on_its_terminal() {
    let mut r = request(Job::Generate { reference: None });
    r.quality = Quality::Steps(1);
    let err = engine().generate(&r, &Watch::default()).unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidRequest(m) if m.contains("at least 2 steps")),
        "{err}"
    );
}

#[test]
fn abort_stops_within_one_step() {
    let w = Watch {
        abort_after: Some(1),
        ..Default::default()
    };
    let mut r = request(Job::Generate { reference: None });
    r.quality = Quality::Steps(4);
    assert_eq!(engine().generate(&r, &w).unwrap_err(), EngineError::Aborted);
    assert_eq!(w.steps.load(Ordering::SeqCst), 1);
}

#[test]
fn a_missing_model_says_what_is_wrong() {
    let mut r = request(Job::Generate { reference: None });
    r.model = "/no/such/ltx-model".into();
    let err = engine().generate(&r, &Watch::default()).unwrap_err();
    assert!(
        matches!(&err, EngineError::NoModel(m) if m.contains("/no/such/ltx-model")),
        "{err}"
    );
}

#[test]
fn the_default_engine_generates_and_caches_on_disk() {
    let dir = std::env::temp_dir().join(format!("genfx-engine-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    genfx::pipeline::disk_cache::set_cache_folder(Some(dir.clone()));
    let e = genfx::engine::default_engine();
    let r = request(Job::Generate { reference: None });
    let first = e.generate(&r, &Watch::default()).unwrap();
    // One entry, and its provenance record beside it.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with(".genfxshot"), "{names:?}");
    assert_eq!(
        names[1],
        names[0].replace(".genfxshot", ".provenance.json"),
        "{names:?}"
    );
    let w = Watch::default();
    let second = genfx::engine::default_engine().generate(&r, &w).unwrap();
    assert_eq!(first.frames, second.frames);
    assert_eq!(w.steps.load(Ordering::SeqCst), 0, "served from the cache");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_encoder_weights_are_dropped_after_a_jobs_prompts_and_not_reloaded_for_the_same_prompt() {
    use genfx::pipeline::adapters::T5Prompts;
    use genfx::pipeline::components::PromptEncoder;

    let prompts =
        T5Prompts::load(&fixtures_dir().join("pipeline/model"), &Device::cpu(), 256).unwrap();
    let first = prompts.encode("a fox in the snow", 256).unwrap();
    assert!(prompts.encoder().is_loaded());
    prompts.release();
    assert!(!prompts.encoder().is_loaded());
    let loads = prompts.encoder().weight_loads();
    // The same prompt again comes from the embedding cache.
    assert_eq!(prompts.encode("a fox in the snow", 256).unwrap(), first);
    assert_eq!(prompts.encoder().weight_loads(), loads);
    assert!(!prompts.encoder().is_loaded());
    // A new prompt loads the weights once more.
    prompts.encode("a cat on a windowsill", 256).unwrap();
    assert_eq!(prompts.encoder().weight_loads(), loads + 1);
}

#[test]
fn absurd_sizes_and_lengths_are_refused_and_long_contexts_are_cut() {
    use genfx::pipeline::engine::{MAX_CONTEXT_FRAMES, MAX_NEW_FRAMES, MAX_SIDE};

    for (width, height, frames) in [
        (MAX_SIDE + 32, 32, 9),
        (64, u32::MAX, 9),
        (64, 32, MAX_NEW_FRAMES + 1),
        (64, 32, 0),
    ] {
        let mut r = request(Job::Generate { reference: None });
        (r.width, r.height, r.num_frames) = (width, height, frames);
        match engine().generate(&r, &Watch::default()) {
            Err(EngineError::InvalidRequest(msg)) => assert!(!msg.is_empty()),
            other => panic!("{width}x{height}x{frames}: {other:?}"),
        }
    }

    // A whole long clip as context: the frames next to the seam, at most
    // the limit, are used, and the user is told.
    let w = Watch::default();
    let mut r = request(Job::ExtendForward {
        context: clip(MAX_CONTEXT_FRAMES + 13, 0.0),
    });
    r.num_frames = 4;
    let shot = engine().generate(&r, &w).unwrap();
    assert_eq!(shot.frames.len(), 4);
    let notes = w.notes.lock().join("\n");
    assert!(
        notes.contains(&format!("so {MAX_CONTEXT_FRAMES} are used")),
        "{notes}"
    );
}

#[test]
fn every_generated_frame_carries_the_mark_and_real_frames_do_not() {
    use genfx::provenance::watermark::{key_from_env, payload_for, Detector};
    // The tiny model's random weights make blotchy noise; at 512x256 the
    // mark's cells are 4 pixels wide, enough to average it down.
    let (w, h) = (512u32, 256u32);
    let context = Clip {
        frames: (0..9)
            .map(|i| {
                let rgb = (0..(w * h * 3) as usize)
                    .map(|p| ((p as f32 * 0.001 + i as f32 * 0.1).sin() + 1.0) / 2.0)
                    .collect();
                Frame::new(w, h, rgb).unwrap()
            })
            .collect(),
    };
    let req = ShotRequest {
        width: w,
        height: h,
        num_frames: 16,
        ..request(Job::ExtendForward { context })
    };
    let shot = engine().generate(&req, &Watch::default()).unwrap();
    let mut det = Detector::new(key_from_env());
    for f in &shot.frames {
        det.add_frame(&f.rgb, 3, f.width as usize, f.height as usize)
            .unwrap();
    }
    let d = det.result();
    assert!(d.marked, "{d:?}");
    assert_eq!(
        d.payload,
        Some(payload_for(genfx::provenance::shot_key(&req)))
    );
    let Job::ExtendForward { context } = &req.job else {
        unreachable!()
    };
    let mut real = Detector::new(key_from_env());
    for f in &context.frames {
        real.add_frame(&f.rgb, 3, w as usize, h as usize).unwrap();
    }
    assert!(!real.result().marked);
}
