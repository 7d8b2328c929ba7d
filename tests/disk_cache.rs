//! The disk shot cache: atomic entries, checksums, full disks, concurrent writers.

use genfx::engine::{
    Clip, EngineError, Frame, Job, JobObserver, Quality, Shot, ShotEngine, ShotRequest, Stage,
};
use genfx::pipeline::disk_cache::{shot_key, DiskCachedEngine, DiskShotCache, Lookup, ShotKey};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("genfx-dc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn frame(w: u32, h: u32, seed: f32) -> Frame {
    let rgb = (0..w * h * 3)
        .map(|i| (i as f32 * 0.37 + seed).sin())
        .collect();
    Frame::new(w, h, rgb).unwrap()
}

fn request() -> ShotRequest {
    ShotRequest {
        model: PathBuf::from("fake-model"),
        text_encoder: None,
        prompt: "a fox".into(),
        negative_prompt: String::new(),
        seed: 7,
        quality: Quality::Standard,
        guidance: 3.0,
        width: 8,
        height: 4,
        num_frames: 9,
        frame_rate: 24.0,
        strength: 1.0,
        job: Job::ExtendForward {
            context: Clip {
                frames: vec![frame(8, 4, 0.5)],
            },
        },
    }
}

/// Makes frames from the request and counts how often it is asked.
struct Counting(AtomicUsize);

impl ShotEngine for Counting {
    fn generate(&self, r: &ShotRequest, _: &dyn JobObserver) -> Result<Shot, EngineError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let frames = (0..r.num_frames)
            .map(|i| frame(r.width, r.height, r.seed as f32 + i as f32))
            .collect();
        Ok(Shot { frames })
    }
}

#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl JobObserver for Notes {
    fn progress(&self, _: Stage, _: u32, _: u32) {}
    fn should_abort(&self) -> bool {
        false
    }
    fn notice(&self, message: &str) {
        self.0.lock().push(message.to_string());
    }
}

fn fake_identity(p: &Path) -> Result<String, String> {
    Ok(format!("id:{}", p.display()))
}

fn engine(dir: &Path) -> (Arc<Counting>, DiskCachedEngine) {
    let inner = Arc::new(Counting(AtomicUsize::new(0)));
    let e =
        DiskCachedEngine::in_folder(inner.clone(), dir.to_path_buf()).with_identity(fake_identity);
    (inner, e)
}

fn same(a: &Shot, b: &Shot) -> bool {
    a.frames == b.frames
}

#[test]
fn a_second_render_reads_the_shot_from_disk() {
    let s = Scratch::new("hit");
    let (inner, e) = engine(&s.0);
    let notes = Notes::default();
    let first = e.generate(&request(), &notes).unwrap();
    let second = e.generate(&request(), &notes).unwrap();
    assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    assert!(same(&first, &second));
    // Another process (a fresh engine on the same folder) also hits.
    let (inner2, e2) = engine(&s.0);
    assert!(same(&e2.generate(&request(), &notes).unwrap(), &first));
    assert_eq!(inner2.0.load(Ordering::SeqCst), 0);
    let mut other = request();
    other.seed = 8;
    e.generate(&other, &notes).unwrap();
    assert_eq!(inner.0.load(Ordering::SeqCst), 2);
    assert!(notes.0.lock().is_empty());
}

#[test]
fn every_parameter_and_input_pixel_changes_the_key() {
    let base = request();
    let k = |r: &ShotRequest| shot_key("model-a", r);
    let mut seen = vec![k(&base), shot_key("model-b", &base)];
    type Change = Box<dyn Fn(&mut ShotRequest)>;
    let mut variants: Vec<Change> = vec![
        Box::new(|r| r.prompt.push('!')),
        Box::new(|r| r.negative_prompt = "blur".into()),
        Box::new(|r| r.seed += 1),
        Box::new(|r| r.quality = Quality::Steps(12)),
        Box::new(|r| r.guidance = 3.5),
        Box::new(|r| r.width = 16),
        Box::new(|r| r.height = 8),
        Box::new(|r| r.num_frames = 17),
        Box::new(|r| r.frame_rate = 25.0),
        Box::new(|r| r.strength = 0.9),
        Box::new(|r| {
            if let Job::ExtendForward { context } = &mut r.job {
                context.frames[0].rgb[5] += 1e-6;
            }
        }),
        Box::new(|r| {
            if let Job::ExtendForward { context } = &r.job {
                r.job = Job::ExtendBackward {
                    context: context.clone(),
                };
            }
        }),
        Box::new(|r| r.job = Job::Generate { reference: None }),
    ];
    // Moving text between prompt and negative prompt is a different request.
    variants.push(Box::new(|r| {
        r.prompt = "a fo".into();
        r.negative_prompt = "x".into();
    }));
    for change in &variants {
        let mut r = request();
        change(&mut r);
        let key = k(&r);
        assert!(!seen.contains(&key), "a change left the key as it was");
        seen.push(key);
    }
    assert_eq!(k(&request()), k(&base), "keys are deterministic");
}

fn key_entry(dir: &Path) -> (DiskShotCache, ShotKey, PathBuf) {
    let cache = DiskShotCache::open(dir).unwrap();
    let key = shot_key("m", &request());
    let path = cache.entry_path(&key);
    (cache, key, path)
}

#[test]
fn damaged_entries_are_discarded_and_regenerated() {
    let s = Scratch::new("corrupt");
    let (inner, e) = engine(&s.0);
    let notes = Notes::default();
    let good = e.generate(&request(), &notes).unwrap();
    let entry = std::fs::read_dir(&s.0)
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|p| p.extension().is_some_and(|x| x == "genfxshot"))
        .expect("an entry was written");
    // A flipped bit in the pixels.
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&entry, &bytes).unwrap();
    let again = e.generate(&request(), &notes).unwrap();
    assert!(same(&again, &good));
    assert_eq!(inner.0.load(Ordering::SeqCst), 2);
    assert!(
        notes.0.lock().iter().any(|n| n.contains("checksum")),
        "{:?}",
        notes.0.lock()
    );
    // The regenerated shot replaced the damaged entry.
    assert!(same(&e.generate(&request(), &notes).unwrap(), &good));
    assert_eq!(inner.0.load(Ordering::SeqCst), 2);
}

#[test]
fn torn_and_foreign_files_never_pass_as_shots() {
    let s = Scratch::new("torn");
    let (cache, key, path) = key_entry(&s.0);
    let shot = Shot {
        frames: vec![frame(8, 4, 1.0), frame(8, 4, 2.0)],
    };
    cache.put(&key, &shot).unwrap();
    let full = std::fs::read(&path).unwrap();
    for cut in [0, 10, 52, full.len() / 2, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        assert!(
            matches!(cache.get(&key), Lookup::Corrupt(_)),
            "cut at {cut}"
        );
        assert!(!path.exists(), "a damaged entry is removed");
    }
    // A whole, valid entry of another shot renamed into this one's place.
    let other = shot_key("other-model", &request());
    cache.put(&other, &shot).unwrap();
    std::fs::rename(cache.entry_path(&other), &path).unwrap();
    assert!(matches!(cache.get(&key), Lookup::Corrupt(r) if r.contains("another shot")));
    assert!(matches!(cache.get(&key), Lookup::Miss));
}

#[test]
fn a_killed_writer_leaves_only_a_temporary_file() {
    let s = Scratch::new("killed");
    let (cache, key, path) = key_entry(&s.0);
    // What a process killed mid-write leaves: a partial temporary file.
    let temp = s.0.join(format!(".{}.4242.0.tmp", key.hex()));
    std::fs::write(&temp, b"GFXSHOT1 partial").unwrap();
    assert!(matches!(cache.get(&key), Lookup::Miss));
    assert!(!path.exists());
    // Old leftovers are swept when the cache is opened; fresh ones (maybe a
    // live writer's) are left alone.
    DiskShotCache::open(&s.0).unwrap();
    assert!(temp.exists());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(old)
        .unwrap();
    DiskShotCache::open(&s.0).unwrap();
    assert!(!temp.exists());
}

fn full_disk(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Half the bytes reach the disk, then it is full.
    std::fs::write(path, &bytes[..bytes.len() / 2])?;
    // ENOSPC on Unix, ERROR_DISK_FULL on Windows.
    Err(std::io::Error::from_raw_os_error(if cfg!(windows) {
        112
    } else {
        28
    }))
}

#[test]
fn a_full_disk_loses_nothing_and_says_so() {
    let s = Scratch::new("full");
    let inner = Arc::new(Counting(AtomicUsize::new(0)));
    let e = DiskCachedEngine::in_folder(inner.clone(), s.0.clone()).with_identity(fake_identity);
    let notes = Notes::default();
    // The cache's writer fails like a full disk.
    let cache = DiskShotCache::open(&s.0).unwrap().with_writer(full_disk);
    let key = shot_key("m", &request());
    let shot = inner.generate(&request(), &notes).unwrap();
    let err = cache.put(&key, &shot).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        full_disk(&s.0.join("probe"), b"xx")
            .unwrap_err()
            .raw_os_error()
    );
    std::fs::remove_file(s.0.join("probe")).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&s.0).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "nothing half-written remains: {leftovers:?}"
    );
    assert!(matches!(cache.get(&key), Lookup::Miss));
    // Through the engine: the shot comes back, the user is told, and no
    // entry or temporary file is left.
    let e = e.with_writer(full_disk);
    let got = e.generate(&request(), &notes).unwrap();
    assert!(same(&got, &shot));
    assert!(
        notes.0.lock().iter().any(|n| n.contains("disk is full")),
        "{:?}",
        notes.0.lock()
    );
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 0);
    // The folder is unusable (a file stands in its way),
    // and the shot still comes back with a notice.
    let blocked = s.0.join("blocked");
    std::fs::write(&blocked, b"").unwrap();
    let e2 = DiskCachedEngine::in_folder(inner.clone(), blocked.join("shots"))
        .with_identity(fake_identity);
    let got = e2.generate(&request(), &notes).unwrap();
    assert!(same(&got, &shot));
    assert!(
        notes
            .0
            .lock()
            .iter()
            .any(|n| n.contains("generating without it")),
        "{:?}",
        notes.0.lock()
    );
}

#[test]
fn concurrent_writers_and_readers_never_see_a_partial_entry() {
    let s = Scratch::new("race");
    let shot = Shot {
        frames: (0..6).map(|i| frame(32, 16, i as f32)).collect(),
    };
    let key = shot_key("m", &request());
    let dir = s.0.clone();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.clone();
            let shot = shot.clone();
            std::thread::spawn(move || {
                let cache = DiskShotCache::open(&dir).unwrap();
                let mut hits = 0;
                for _ in 0..40 {
                    if t % 2 == 0 {
                        cache.put(&key, &shot).unwrap();
                    } else {
                        match cache.get(&key) {
                            Lookup::Hit(got) => {
                                assert_eq!(got.frames, shot.frames);
                                hits += 1;
                            }
                            Lookup::Miss => {}
                            Lookup::Corrupt(r) => panic!("reader saw a damaged entry: {r}"),
                        }
                    }
                }
                hits
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cache = DiskShotCache::open(&dir).unwrap();
    assert!(matches!(cache.get(&key), Lookup::Hit(_)));
    let temps = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(temps, 0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn model_identity_follows_contents_not_location() {
    let fixture = std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join("pipeline/model");
    let s = Scratch::new("identity");
    let copy = s.0.join("elsewhere/model");
    copy_dir(&fixture, &copy);
    let id = genfx::pipeline::disk_cache::model_identity(&fixture).unwrap();
    assert_eq!(
        genfx::pipeline::disk_cache::model_identity(&copy).unwrap(),
        id
    );
    // A fine-tune of the same shapes: one weight byte differs at a sampled offset.
    let weights = copy.join("transformer/diffusion_pytorch_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    assert_ne!(
        genfx::pipeline::disk_cache::model_identity(&copy).unwrap(),
        id
    );
}
