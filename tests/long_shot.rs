//! Long shots made in windows on the tiny random-weight model: 200-frame
//! Generate, Extend (both ways) and Fill with exact frame counts, seams
//! that are the stated blend of the two windows' decodes, real frames
//! never shown nor drift-matched, and resumption from the windows folder
//! after an abort.

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
    let drift = r.windows.drift.expect("the tests set a drift strength");
    let count = plan.windows.len();
    let entries = (0..count)
        .map(|k| {
            store
                .get(&long_shot::window_key(&shot, size, drift, k, count))
                .unwrap()
                .expect("every window is stored")
        })
        .collect();
    (plan, entries)
}

/// Every shown frame inside a seam is the ramp blend of the two windows'
/// stored decodes (then marked), and every other one a window's decode.
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

/// Latent frames of window `k` of `plan` that hold real frames.
fn real_latent_frames(plan: &long_shot::plan::LongPlan, k: usize) -> Vec<usize> {
    plan.windows[k]
        .real
        .iter()
        .flat_map(|r| r.at / 8..r.at / 8 + (r.frames - 1) / 8 + 1)
        .collect()
}

/// Latent frame `f` of a stored window, all channels.
fn latent_frame(e: &long_shot::store::WindowEntry, f: usize) -> Vec<f32> {
    let [c, lf, h, w] = e.latent_dims;
    (0..c)
        .flat_map(|ch| e.latents[(ch * lf + f) * h * w..(ch * lf + f + 1) * h * w].to_vec())
        .collect()
}

#[test]
fn long_extends_and_fills_keep_real_frames_out_and_blend_their_seams() {
    for (name, job) in [
        (
            "forward",
            Job::ExtendForward {
                context: clip(9, 0.0),
            },
        ),
        (
            "backward",
            Job::ExtendBackward {
                context: clip(9, 1.0),
            },
        ),
        (
            "fill",
            Job::Fill {
                before: clip(9, 0.0),
                after: clip(9, 2.0),
            },
        ),
    ] {
        let dir = temp(name);
        let r = request(job, 200);
        let w = Watch::default();
        let frames = make(&r, &w, Some(&dir)).unwrap();
        assert_eq!(frames.len(), 200, "{name}");
        assert!(frames
            .iter()
            .flat_map(|f| &f.rgb)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        check_seams(&r, &frames, &dir);

        // Real frames are never shown as new ones...
        let (plan, entries) = stored(&r, &dir);
        let real: Vec<usize> = plan
            .windows
            .iter()
            .flat_map(|win| {
                win.real
                    .iter()
                    .flat_map(move |x| win.start + x.at..win.start + x.at + x.frames)
            })
            .collect();
        assert!(!real.is_empty(), "{name}: the plan places no real frames");
        assert!(
            plan.shown.iter().all(|f| !real.contains(f)),
            "{name}: a real frame is shown as a new one"
        );
        // ...and drift matching leaves their latents as the denoiser gave
        // them: the window made first, with drift matching off, has the
        // same latents at its real frames and other ones elsewhere.
        let first = plan.making_order()[0];
        let fixed = real_latent_frames(&plan, first);
        assert!(
            !fixed.is_empty(),
            "{name}: the first window has no real frames"
        );
        let off_dir = temp(&format!("{name}-nodrift"));
        let mut off = r.clone();
        off.windows.drift = Some(0.0);
        make(&off, &Watch::default(), Some(&off_dir)).unwrap();
        let size = WindowSize::new(WINDOW as usize, Some(OVERLAP as usize), 8).unwrap();
        let shot = shot_key(&current_identity(&off.model).unwrap(), &off).0;
        let count = plan.windows.len();
        let undrifted = WindowStore::open(&off_dir)
            .unwrap()
            .get(&long_shot::window_key(&shot, size, 0.0, first, count))
            .unwrap()
            .expect("the first window is stored");
        let lf = entries[first].latent_dims[1];
        for f in 0..lf {
            let (a, b) = (
                latent_frame(&entries[first], f),
                latent_frame(&undrifted, f),
            );
            if fixed.contains(&f) {
                assert!(a == b, "{name}: real latent frame {f} was changed");
            } else {
                assert!(a != b, "{name}: new latent frame {f} was not drift-matched");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&off_dir);
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

/// Paths of the windows `r` keeps in `dir`, in window order.
fn window_paths(r: &ShotRequest, dir: &std::path::Path) -> Vec<PathBuf> {
    let size = WindowSize::new(WINDOW as usize, Some(OVERLAP as usize), 8).unwrap();
    let plan = long_shot::plan::long_plan(shape(&r.job), r.num_frames as usize, size, 8).unwrap();
    let shot = shot_key(&current_identity(&r.model).unwrap(), r).0;
    let store = WindowStore::open(dir).unwrap();
    let count = plan.windows.len();
    let drift = r.windows.drift.unwrap();
    (0..count)
        .map(|k| store.path(&long_shot::window_key(&shot, size, drift, k, count)))
        .collect()
}

#[test]
fn the_cache_size_limit_counts_windows_and_evicts_the_least_recently_used() {
    use genfx::pipeline::disk_cache::{DiskCachedEngine, DiskShotCache, ShotKey};
    use std::time::{Duration, SystemTime};
    let dir = temp("evict");
    let cached = |limit: Option<u64>| {
        DiskCachedEngine::in_folder(
            std::sync::Arc::new(LtxEngine::new(Device::cpu())),
            dir.clone(),
        )
        .with_limit(limit)
    };
    // 33 + 3·24 = 105: four windows of 33 frames, equal in size.
    let a = request(Job::Generate { reference: None }, 105);
    let b = ShotRequest {
        seed: 6,
        ..a.clone()
    };
    cached(None)
        .generate_into(&a, &Watch::default(), &CollectFrames::default(), None)
        .unwrap();
    let old = window_paths(&a, &dir);
    let size = std::fs::metadata(&old[0]).unwrap().len();
    assert!(old
        .iter()
        .all(|p| std::fs::metadata(p).unwrap().len() == size));
    // A shot entry used before all of them, and a's windows last used in
    // the order 0, 1, 2, 3.
    let one = Frame::new(32, 32, vec![0.5; 32 * 32 * 3]).unwrap();
    let shot_key = ShotKey([9; 32]);
    let shots = DiskShotCache::open(&dir).unwrap();
    shots
        .put(&shot_key, &genfx::engine::Shot { frames: vec![one] })
        .unwrap();
    let hour_ago = |h: u64| SystemTime::now() - Duration::from_secs(3600 * h);
    let set_used = |p: &std::path::Path, t: SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    set_used(&shots.entry_path(&shot_key), hour_ago(10));
    for (k, p) in old.iter().enumerate() {
        set_used(p, hour_ago(5 - k as u64));
    }
    // Window 0's lock is held (as by a process writing it): never evicted.
    let store = WindowStore::open(&dir).unwrap();
    let key0 = long_shot::window_key(
        &shot_key_of(&a),
        WindowSize::new(WINDOW as usize, Some(OVERLAP as usize), 8).unwrap(),
        0.5,
        0,
        4,
    );
    assert_eq!(store.path(&key0), old[0]);
    let lock = store.try_lock(&key0).unwrap().expect("no one holds it");

    // Room for b's four windows and two more: the shot entry, then a's
    // windows 1 and 2 (the least recently used but the locked 0) go.
    let limit = 6 * size + size / 2;
    let w = Watch::default();
    let sink = CollectFrames::default();
    cached(Some(limit))
        .generate_into(&b, &w, &sink, None)
        .unwrap();
    assert_eq!(sink.into_shot().frames.len(), 105);
    assert!(w
        .notes
        .lock()
        .join("\n")
        .contains("4 windows made, 0 reused"));
    assert!(
        !shots.entry_path(&shot_key).exists(),
        "the shot entry stayed"
    );
    let present: Vec<bool> = old.iter().map(|p| p.exists()).collect();
    assert_eq!(present, [true, false, false, true], "a's windows");
    assert!(
        window_paths(&b, &dir).iter().all(|p| p.exists()),
        "b's windows"
    );
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".genfxwin") || n.ends_with(".genfxshot")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(total <= limit, "{total} bytes kept over a limit of {limit}");
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

fn shot_key_of(r: &ShotRequest) -> [u8; 32] {
    shot_key(&current_identity(&r.model).unwrap(), r).0
}
