//! Long shots made in windows on the tiny random-weight model: exact
//! frame counts, seams that are the stated blend of the two windows'
//! decodes, and resumption from the windows folder after an abort.

use genfx::backend::Device;
use genfx::engine::{
    Clip, CollectFrames, EngineError, Frame, Job, JobObserver, Quality, ShotEngine, ShotRequest,
    Stage, WindowSettings,
};
use genfx::pipeline::disk_cache::{current_identity, shot_key};
use genfx::pipeline::engine::LtxEngine;
use genfx::pipeline::long_shot::{self, plan::WindowSize, seam, store::WindowStore};
use genfx::pipeline::plan::JobShape;
use genfx::testing::fixtures_dir;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

const WINDOW: u32 = 33;
const OVERLAP: u32 = 9;

fn request(job: Job, frames: u32) -> ShotRequest {
    ShotRequest {
        model: fixtures_dir().join("pipeline/model"),
        text_encoder: None,
        prompt: "0: a red fox runs through the snow\n1s: an owl flies over the fox".into(),
        negative_prompt: "blurry".into(),
        seed: 5,
        quality: Quality::Steps(2),
        guidance: 3.0,
        width: 32,
        height: 32,
        num_frames: frames,
        frame_rate: 24.0,
        strength: 1.0,
        job,
        windows: WindowSettings {
            length: Some(WINDOW),
            overlap: Some(OVERLAP),
            drift: Some(0.5),
        },
    }
}

fn clip(n: usize, shade: f32) -> Clip {
    Clip {
        frames: (0..n)
            .map(|i| {
                let rgb = (0..32 * 32 * 3)
                    .map(|p| ((p as f32 * 0.01 + i as f32 * 0.1 + shade).sin() + 1.0) / 2.0)
                    .collect();
                Frame::new(32, 32, rgb).unwrap()
            })
            .collect(),
    }
}

#[derive(Default)]
struct Watch {
    notes: Mutex<Vec<String>>,
    windows: Mutex<Vec<(u32, u32)>>,
    /// Abort once this window (from 0) has started denoising.
    abort_in: Option<u32>,
    current: AtomicU32,
    steps: AtomicU32,
}

impl JobObserver for Watch {
    fn progress(&self, stage: Stage, done: u32, _: u32) {
        if stage == Stage::Denoising {
            self.steps.store(done, Ordering::SeqCst);
        }
    }
    fn should_abort(&self) -> bool {
        self.abort_in
            .is_some_and(|k| self.current.load(Ordering::SeqCst) >= k)
    }
    fn notice(&self, message: &str) {
        self.notes.lock().push(message.into());
    }
    fn window(&self, index: u32, count: u32) {
        self.current.store(index, Ordering::SeqCst);
        self.windows.lock().push((index, count));
    }
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("genfx-long-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn make(
    r: &ShotRequest,
    w: &Watch,
    dir: Option<&std::path::Path>,
) -> Result<Vec<Frame>, EngineError> {
    let sink = CollectFrames::default();
    LtxEngine::new(Device::cpu()).generate_into(r, w, &sink, dir)?;
    Ok(sink.into_shot().frames)
}

fn shape(job: &Job) -> JobShape {
    match job {
        Job::Generate { .. } => JobShape::Generate { reference: None },
        Job::ExtendForward { context } => JobShape::ExtendForward {
            context: context.frames.len(),
        },
        Job::ExtendBackward { context } => JobShape::ExtendBackward {
            context: context.frames.len(),
        },
        Job::Fill { before, after } => JobShape::Fill {
            before: before.frames.len(),
            after: after.frames.len(),
        },
    }
}

/// Frame `i` of a stored window, interleaved.
fn window_frame(e: &long_shot::store::WindowEntry, i: usize) -> Vec<f32> {
    let plane = e.width * e.height;
    let mut rgb = vec![0.0; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            rgb[p * 3 + c] = e.video[c * plane * e.frames + i * plane + p];
        }
    }
    rgb
}

/// Every shown frame inside a seam is the ramp blend of the two windows'
/// stored decodes (then marked), and every other one a window's decode.
/// The plan of `r` and its stored windows in `dir`.
fn stored(
    r: &ShotRequest,
    dir: &std::path::Path,
) -> (
    long_shot::plan::LongPlan,
    Vec<long_shot::store::WindowEntry>,
) {
    let size = WindowSize::new(WINDOW as usize, Some(OVERLAP as usize), 8).unwrap();
    let plan = long_shot::plan::long_plan(shape(&r.job), r.num_frames as usize, size, 8).unwrap();
    let identity = current_identity(&r.model).unwrap();
    let shot = shot_key(&identity, r).0;
    let store = WindowStore::open(dir).unwrap();
    let count = plan.windows.len();
    let entries = (0..count)
        .map(|k| {
            store
                .get(&long_shot::window_key(&shot, size, 0.5, k, count))
                .unwrap()
                .expect("every window is stored")
        })
        .collect();
    (plan, entries)
}

fn check_seams(r: &ShotRequest, frames: &[Frame], dir: &std::path::Path) {
    let (plan, entries) = stored(r, dir);
    let count = plan.windows.len();
    let mut seams_checked = 0;
    for (i, &f) in plan.shown.iter().enumerate() {
        let inside: Vec<usize> = (0..count)
            .filter(|&k| plan.windows[k].start <= f && f < plan.windows[k].end())
            .collect();
        let mut expected = match inside.as_slice() {
            [k] => window_frame(&entries[*k], f - plan.windows[*k].start),
            [a, b] => {
                let j = f - plan.windows[*b].start;
                let mut x = window_frame(&entries[*a], f - plan.windows[*a].start);
                seam::blend_into(&mut x, &window_frame(&entries[*b], j), j, plan.overlap);
                seams_checked += 1;
                x
            }
            other => panic!("frame {f} in windows {other:?}"),
        };
        let mut one = [Frame::new(32, 32, std::mem::take(&mut expected)).unwrap()];
        genfx::provenance::mark_shot(&mut one, r);
        assert!(one[0].rgb == frames[i].rgb, "frame {i} (timeline {f})");
    }
    assert!(seams_checked >= OVERLAP as usize, "{seams_checked}");
}

#[test]
fn a_long_generate_is_exact_seamed_and_resumes_after_an_abort() {
    let dir = temp("generate");
    let r = request(Job::Generate { reference: None }, 200);
    let w = Watch::default();
    let frames = make(&r, &w, Some(&dir)).unwrap();
    assert_eq!(frames.len(), 200);
    assert!(frames
        .iter()
        .flat_map(|f| &f.rgb)
        .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
    // 33 + 7·24 = 201 ≥ 200: eight windows, each announced once.
    let windows = w.windows.lock().clone();
    assert_eq!(windows, (0..8).map(|k| (k, 8)).collect::<Vec<_>>());
    let notes = w.notes.lock().join("\n");
    assert!(
        notes.contains("8 windows of up to 33 frames, overlapping by 9"),
        "{notes}"
    );
    assert!(notes.contains("8 windows made, 0 reused"), "{notes}");
    check_seams(&r, &frames, &dir);

    // Different prompts over time give different windows than one prompt.
    // (The first window has the first prompt either way.)
    let plain = ShotRequest {
        prompt: "a red fox runs through the snow".into(),
        ..r.clone()
    };
    let plain_dir = temp("plain");
    make(&plain, &Watch::default(), Some(&plain_dir)).unwrap();
    let (_, timed) = stored(&r, &dir);
    let (_, single) = stored(&plain, &plain_dir);
    assert!(timed[0].latents == single[0].latents);
    assert!(timed[7].latents != single[7].latents);
    let _ = std::fs::remove_dir_all(&plain_dir);

    // Aborted during window 3: windows 1 and 2 are kept, the rerun
    // reuses them and gives the same frames.
    let resumed = temp("resume");
    let stop = Watch {
        abort_in: Some(2),
        ..Default::default()
    };
    assert_eq!(make(&r, &stop, Some(&resumed)), Err(EngineError::Aborted));
    let again = Watch::default();
    let frames_again = make(&r, &again, Some(&resumed)).unwrap();
    let notes = again.notes.lock().join("\n");
    assert!(notes.contains("6 windows made, 2 reused"), "{notes}");
    assert!(frames_again == frames);
    // A finished shot is read back whole from its windows.
    let third = Watch::default();
    assert!(make(&r, &third, Some(&resumed)).unwrap() == frames);
    assert!(third
        .notes
        .lock()
        .join("\n")
        .contains("0 windows made, 8 reused"));
    // Without a folder, the same frames.
    assert!(make(&r, &Watch::default(), None).unwrap() == frames);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&resumed);
}

#[test]
fn long_extends_and_fills_keep_real_frames_out_and_blend_their_seams() {
    for (name, job, n) in [
        (
            "forward",
            Job::ExtendForward {
                context: clip(9, 0.0),
            },
            100,
        ),
        (
            "backward",
            Job::ExtendBackward {
                context: clip(9, 1.0),
            },
            100,
        ),
        (
            "fill",
            Job::Fill {
                before: clip(9, 0.0),
                after: clip(9, 2.0),
            },
            100,
        ),
    ] {
        let dir = temp(name);
        let r = request(job, n);
        let w = Watch::default();
        let frames = make(&r, &w, Some(&dir)).unwrap();
        assert_eq!(frames.len(), n as usize, "{name}");
        assert!(frames.iter().flat_map(|f| &f.rgb).all(|v| v.is_finite()));
        check_seams(&r, &frames, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn bad_timed_prompts_and_window_settings_are_refused() {
    let mut r = request(Job::Generate { reference: None }, 40);
    r.prompt = "0: a fox\n5x: an owl".into();
    let err = make(&r, &Watch::default(), None).unwrap_err();
    assert!(err.to_string().contains("unknown unit 'x'"), "{err}");
    let mut r = request(Job::Generate { reference: None }, 40);
    r.windows.length = Some(30);
    let err = make(&r, &Watch::default(), None).unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidRequest(_)) && err.to_string().contains("8k+1"),
        "{err}"
    );
    let mut r = request(Job::Generate { reference: None }, 40);
    r.windows.drift = Some(2.0);
    assert!(matches!(
        make(&r, &Watch::default(), None),
        Err(EngineError::InvalidRequest(_))
    ));
}
