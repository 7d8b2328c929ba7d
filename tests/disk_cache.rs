//! The disk shot cache: atomic entries, checksums, full disks, concurrent writers.

use genfx::engine::{
    Clip, EngineError, Frame, Job, JobObserver, Quality, Shot, ShotEngine, ShotRequest, Stage,
};
use genfx::pipeline::disk_cache::{
    shot_key, shot_key_for_revision, DiskCachedEngine, DiskShotCache, Lookup, NoIdentity, ShotKey,
    ENGINE_REVISION,
};
use genfx::pipeline::temp_files;
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
        windows: Default::default(),
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

fn fake_identity(p: &Path) -> Result<String, NoIdentity> {
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
    // What a process killed mid-write leaves: a partial temporary file. Its
    // writer is on another machine (a shared folder), so only age tells it
    // is dead.
    let temp = s.0.join(format!(
        ".genfx-{}.genfxshot.farm-node-7.4242.0.tmp",
        key.hex()
    ));
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

/// Sets a file's modification time (the cache's record of last use).
fn age(path: &Path, secs_ago: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago))
        .unwrap();
}

#[test]
fn the_sweep_removes_only_genfx_temporaries_and_a_dead_writers_at_once() {
    let s = Scratch::new("sweep");
    let (_, key, _) = key_entry(&s.0);
    // Files of other programs in a shared folder, however old and however
    // much they look like temporaries, are never touched.
    let foreign = [".lock.tmp", ".Document.docx.tmp", "render.tmp", "notes.txt"];
    for f in foreign {
        std::fs::write(s.0.join(f), b"someone else's").unwrap();
        age(&s.0.join(f), 86_400);
    }
    // A GenFX writer of this machine killed a second ago: removed at once
    // (its process is gone), not an hour later.
    let dead = s.0.join(format!(
        ".genfx-{}.genfxshot.{}.99999999.3.tmp",
        key.hex(),
        temp_files::host_name()
    ));
    std::fs::write(&dead, b"GFXSHOT1 partial").unwrap();
    DiskShotCache::open(&s.0).unwrap();
    if std::path::Path::new("/proc/self").exists() {
        assert!(!dead.exists(), "a dead writer's temporary file stays");
    }
    for f in foreign {
        assert!(s.0.join(f).exists(), "{f} was removed");
    }
}

fn shot_of(n: usize, seed: f32) -> Shot {
    Shot {
        frames: (0..n).map(|i| frame(8, 4, seed + i as f32)).collect(),
    }
}

#[test]
fn the_folder_is_bounded_and_evicts_the_least_recently_used() {
    let s = Scratch::new("lru");
    let entry_len = {
        let c = DiskShotCache::open(&s.0).unwrap();
        let k = shot_key("probe", &request());
        c.put(&k, &shot_of(2, 0.0)).unwrap();
        let len = std::fs::metadata(c.entry_path(&k)).unwrap().len();
        std::fs::remove_file(c.entry_path(&k)).unwrap();
        len
    };
    // Room for three entries.
    let cache = DiskShotCache::open(&s.0)
        .unwrap()
        .with_limit(Some(3 * entry_len + entry_len / 2));
    let keys: Vec<ShotKey> = (0..5)
        .map(|i| shot_key(&format!("model-{i}"), &request()))
        .collect();
    for (i, k) in keys.iter().take(3).enumerate() {
        cache.put(k, &shot_of(2, i as f32)).unwrap();
        age(&cache.entry_path(k), 100 - i as u64 * 10);
    }
    // Reading the oldest makes it the most recently used.
    assert!(matches!(cache.get(&keys[0]), Lookup::Hit(_)));
    cache.put(&keys[3], &shot_of(2, 3.0)).unwrap();
    let present = |k: &ShotKey| cache.entry_path(k).exists();
    assert!(present(&keys[0]), "a just-read entry was evicted");
    assert!(!present(&keys[1]), "the least recently used entry stayed");
    assert!(present(&keys[2]) && present(&keys[3]));
    let total: u64 = cache.entries().iter().map(|(_, len, _)| len).sum();
    assert!(total <= 3 * entry_len + entry_len / 2);
    // Files that are not entries count for nothing and are never removed.
    std::fs::write(s.0.join("keep.me"), vec![0u8; 4 * entry_len as usize]).unwrap();
    cache.put(&keys[4], &shot_of(2, 4.0)).unwrap();
    assert!(s.0.join("keep.me").exists());
    assert_eq!(cache.entries().len(), 3);
    // A shot larger than the whole limit is refused, not stored.
    let tiny = DiskShotCache::open(&s.0).unwrap().with_limit(Some(16));
    assert!(tiny.put(&keys[1], &shot_of(2, 1.0)).is_err());
    assert!(!present(&keys[1]));
}

#[test]
fn hostile_keys_never_name_a_path_outside_the_folder() {
    let s = Scratch::new("hostile");
    let cache = DiskShotCache::open(&s.0).unwrap();
    for text in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        "a/b",
        "C:\\Windows\\win.ini",
        "00000000000000000000000000000000000000000000000000000000000000\0/",
        "0000000000000000000000000000000000000000000000000000000000000/00",
        "00000000000000000000000000000000000000000000000000000000000000000",
        "g000000000000000000000000000000000000000000000000000000000000000",
        "+0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert_eq!(ShotKey::from_hex(text), None, "{text:?} was taken as a key");
    }
    let good = shot_key("m", &request());
    assert_eq!(ShotKey::from_hex(&good.hex()), Some(good));
    // Whatever the 32 bytes, the entry is a plain name directly in the folder.
    let mut bytes = [0u8; 32];
    for b in 0..=255u8 {
        bytes.fill(b);
        bytes[b as usize % 32] = b'/';
        let path = cache.entry_path(&ShotKey(bytes));
        assert_eq!(path.parent(), Some(s.0.as_path()));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.'));
    }
    // An entry name that is a link to a file elsewhere is not served, and
    // only the link is removed.
    #[cfg(unix)]
    {
        let outside = s.0.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("precious.bin");
        std::fs::write(&victim, b"not a shot").unwrap();
        let entry = cache.entry_path(&good);
        std::os::unix::fs::symlink(&victim, &entry).unwrap();
        assert!(matches!(cache.get(&good), Lookup::Corrupt(_)));
        assert!(victim.exists() && !entry.exists());
        std::os::unix::fs::symlink(&victim, &entry).unwrap();
        let small = DiskShotCache::open(&s.0).unwrap().with_limit(Some(1));
        assert!(small.entries().is_empty(), "a link counted as an entry");
        drop(small);
        std::fs::remove_file(&entry).unwrap();
    }
}

#[test]
fn entries_of_another_engine_revision_or_model_are_never_served() {
    let s = Scratch::new("revision");
    let cache = DiskShotCache::open(&s.0).unwrap();
    let shot = shot_of(2, 0.0);
    let old = shot_key_for_revision(ENGINE_REVISION - 1, "model-a", &request());
    let now = shot_key_for_revision(ENGINE_REVISION, "model-a", &request());
    assert_eq!(now, shot_key("model-a", &request()));
    assert_ne!(old, now);
    let other_model = shot_key("model-b", &request());
    assert_ne!(other_model, now);
    cache.put(&old, &shot).unwrap();
    cache.put(&other_model, &shot).unwrap();
    assert!(matches!(cache.get(&now), Lookup::Miss));
    // Even renamed into this revision's place, the entry says whose it is.
    for foreign in [old, other_model] {
        std::fs::copy(cache.entry_path(&foreign), cache.entry_path(&now)).unwrap();
        assert!(
            matches!(cache.get(&now), Lookup::Corrupt(r) if r.contains("another shot")),
            "a foreign entry was served"
        );
    }
}

/// The fixture model copied where a test may change it.
fn model_copy(s: &Scratch) -> PathBuf {
    let fixture = std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join("pipeline/model");
    let copy = s.0.join("model");
    copy_dir(&fixture, &copy);
    copy
}

#[cfg(unix)]
#[test]
fn a_link_loop_in_the_model_folder_leaves_the_cache_on() {
    let s = Scratch::new("loop");
    let model = model_copy(&s);
    std::os::unix::fs::symlink(".", model.join("vae/again")).unwrap();
    std::os::unix::fs::symlink("spin", model.join("spin")).unwrap();
    std::os::unix::fs::symlink("/", model.join("everything")).unwrap();
    let inner = Arc::new(Counting(AtomicUsize::new(0)));
    let e = DiskCachedEngine::in_folder(inner.clone(), s.0.join("cache"));
    let mut r = request();
    r.model = model;
    let notes = Notes::default();
    let first = e.generate(&r, &notes).unwrap();
    let again = e.generate(&r, &notes).unwrap();
    assert!(same(&first, &again));
    assert_eq!(
        inner.0.load(Ordering::SeqCst),
        1,
        "the second run was not cached"
    );
    assert!(notes.0.lock().is_empty(), "{:?}", notes.0.lock());
}

#[test]
fn a_model_that_cannot_be_fingerprinted_says_so_and_still_generates() {
    let s = Scratch::new("unusable");
    // A folder that exists but is no model (a root or home folder given by
    // mistake): refused before walking it, and the user is told.
    std::fs::create_dir_all(s.0.join("home/docs")).unwrap();
    let inner = Arc::new(Counting(AtomicUsize::new(0)));
    let e = DiskCachedEngine::in_folder(inner.clone(), s.0.join("cache"));
    let mut r = request();
    r.model = s.0.join("home");
    let notes = Notes::default();
    e.generate(&r, &notes).unwrap();
    assert!(
        notes
            .0
            .lock()
            .iter()
            .any(|n| n.contains("not a model folder")),
        "{:?}",
        notes.0.lock()
    );
}

#[test]
fn replacing_the_weights_makes_a_new_key_within_one_process() {
    let s = Scratch::new("reweigh");
    let model = model_copy(&s);
    let inner = Arc::new(Counting(AtomicUsize::new(0)));
    let e = DiskCachedEngine::in_folder(inner.clone(), s.0.join("cache"));
    let mut r = request();
    r.model = model.clone();
    let notes = Notes::default();
    e.generate(&r, &notes).unwrap();
    e.generate(&r, &notes).unwrap();
    assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    // New weights of the same shapes; model_index.json untouched.
    let weights = model.join("vae/diffusion_pytorch_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, &bytes).unwrap();
    e.generate(&r, &notes).unwrap();
    assert_eq!(
        inner.0.load(Ordering::SeqCst),
        2,
        "an old shot was served for new weights"
    );
}

#[test]
fn cache_size_settings_are_read_or_refused_by_name() {
    use genfx::pipeline::disk_cache::parse_limit_gb;
    assert_eq!(parse_limit_gb("2"), Ok(Some(2 << 30)));
    assert_eq!(parse_limit_gb(" 0.5 "), Ok(Some(1 << 29)));
    assert_eq!(parse_limit_gb("0"), Ok(None));
    assert_eq!(parse_limit_gb("none"), Ok(None));
    for bad in ["-1", "lots", "", "NaN", "inf"] {
        assert!(
            parse_limit_gb(bad).unwrap_err().contains("gigabytes"),
            "{bad}"
        );
    }
}
