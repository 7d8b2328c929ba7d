//! `genfx generate` killed with SIGKILL at random moments — while it
//! generates, writes its cache entry, reads it back or writes frames — many
//! times in a row. After every kill:
//! - every cache entry on disk is whole (its checksum holds and it holds the
//!   reference shot), and every frame under its final name is the reference
//!   frame pixel for pixel (its Content Credentials differ per run): a kill
//!   leaves at most a temporary file;
//! - the next run serves the whole entry or generates again, and writes the
//!   reference frames, and the leftovers of the killed run are gone.
//!
//! `GENFX_KILL9_RUNS` sets how many kills (default 50, the bar);
//! `GENFX_KILL9_SEED` replays a sequence of kill times (the seed is printed).

#![cfg(unix)]

mod common;

use genfx::pipeline::disk_cache::{DiskShotCache, Lookup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tiny_model() -> PathBuf {
    std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .join("tests/fixtures")
        })
        .join("pipeline/model")
}

fn generate(cache: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_genfx"));
    c.arg("generate")
        .arg("--model")
        .arg(tiny_model())
        .args(["--prompt", "a lighthouse in fog", "--seed", "3"])
        .args([
            "--width", "256", "--height", "128", "--frames", "9", "--steps", "2",
        ])
        .arg("--out")
        .arg(out)
        .env("GENFX_CACHE_DIR", cache)
        .env("GENFX_DEVICE", "cpu")
        .env("GENFX_LOG", cache.with_extension("log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs to the end; returns how long it took.
fn run_whole(cache: &Path, out: &Path) -> Duration {
    let t = Instant::now();
    let result = generate(cache, out).output().expect("run genfx generate");
    assert!(
        result.status.success(),
        "genfx generate failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    t.elapsed()
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".genfx-") && name.ends_with(".tmp")
}

/// The files of `dir` by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|list| {
            list.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, common::content(&e.path()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// xorshift64*: kill times that a seed replays.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the kills hit, for the report.
#[derive(Default, Debug)]
struct Tally {
    cold: usize,
    warm: usize,
    finished_before_kill: usize,
    left_cache_temp: usize,
    left_frame_temp: usize,
    partial_frames: usize,
    no_entry: usize,
}

#[test]
fn kill_9_never_leaves_a_torn_entry_or_frame() {
    let runs: usize = std::env::var("GENFX_KILL9_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("GENFX_KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("kill -9 test: {runs} kills, GENFX_KILL9_SEED={seed}");
    let mut rng = Rng(seed);
    let root = std::env::temp_dir().join(format!("genfx-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // The reference: one uninterrupted cold run and one warm run, timed.
    let ref_cache = root.join("ref-cache");
    let ref_out = root.join("ref-out");
    let cold_time = run_whole(&ref_cache, &ref_out);
    let warm_time = run_whole(&ref_cache, &root.join("ref-out-warm"));
    let reference = files(&ref_out);
    assert_eq!(reference.len(), 9, "{:?}", reference.keys());
    assert_eq!(files(&root.join("ref-out-warm")), reference);
    let ref_store = DiskShotCache::open(&ref_cache).unwrap();
    let entries = ref_store.entries();
    assert_eq!(entries.len(), 1);
    let key = entries[0].0;
    let Lookup::Hit(ref_shot) = ref_store.get(&key) else {
        panic!("the reference entry does not read back");
    };
    eprintln!("uninterrupted: cold {cold_time:?}, warm {warm_time:?}");

    let cache = root.join("cache");
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..runs {
        // Every other run starts without the entry, so kills land in the
        // generation and the entry's write; the others in reading it and
        // writing frames.
        let cold = i % 2 == 0;
        if cold {
            let _ = std::fs::remove_dir_all(&cache);
            tally.cold += 1;
        } else {
            tally.warm += 1;
        }
        let span = if cold { cold_time } else { warm_time };
        let out = root.join(format!("out-{i}"));
        let mut child = generate(&cache, &out)
            .spawn()
            .expect("start genfx generate");
        let t0 = Instant::now();
        let u = rng.unit();
        let at = if rng.unit() < 0.5 {
            // Anywhere in the run.
            std::thread::sleep(span.mul_f64(u * 1.05));
            t0.elapsed()
        } else {
            // The moment a write is under way: the first file of the entry
            // (cold runs) or of a frame (warm runs) is seen, whatever its
            // name, then up to 1 ms more.
            let watched = if cold { &cache } else { &out };
            while t0.elapsed() < span * 3 {
                let writing =
                    std::fs::read_dir(watched).is_ok_and(|mut list| list.next().is_some());
                if writing || child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            std::thread::sleep(Duration::from_secs_f64(u * 1e-3));
            t0.elapsed()
        };
        if child.try_wait().expect("poll").is_some() {
            tally.finished_before_kill += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        // What the killed run left: temporaries at most, never a torn file.
        let left = files(&cache);
        if left.keys().any(|n| is_temp(n)) {
            tally.left_cache_temp += 1;
        }
        let frames = files(&out);
        if frames.keys().any(|n| is_temp(n)) {
            tally.left_frame_temp += 1;
        }
        let finals: Vec<_> = frames.iter().filter(|(n, _)| !is_temp(n)).collect();
        if !finals.is_empty() && finals.len() < reference.len() {
            tally.partial_frames += 1;
        }
        for (name, bytes) in &finals {
            assert!(
                reference.get(*name) == Some(bytes),
                "run {i} (killed at {at:?}): {name} is torn or wrong ({} bytes)",
                bytes.len()
            );
        }
        let entry_names: Vec<_> = left.keys().filter(|n| n.ends_with(".genfxshot")).collect();
        if entry_names.is_empty() {
            tally.no_entry += 1;
        }
        for name in entry_names {
            assert_eq!(
                name,
                &format!("{}.genfxshot", key.hex()),
                "run {i}: an entry under another name"
            );
        }
        if let Some(bytes) = left.get(&format!("{}.genfxshot", key.hex())) {
            // Read from a copy, so this check sweeps nothing of the cache
            // folder: the next run must clean up by itself.
            let inspect = root.join("inspect");
            let _ = std::fs::remove_dir_all(&inspect);
            std::fs::create_dir_all(&inspect).unwrap();
            std::fs::write(inspect.join(format!("{}.genfxshot", key.hex())), bytes).unwrap();
            let store = DiskShotCache::open(&inspect).unwrap();
            match store.get(&key) {
                Lookup::Hit(shot) => assert!(
                    shot.frames == ref_shot.frames,
                    "run {i}: the entry holds another shot"
                ),
                Lookup::Miss => {}
                Lookup::Corrupt(why) => panic!("run {i} (killed at {at:?}): torn entry: {why}"),
            }
        }

        // The next run serves the whole entry or generates again, writes
        // the reference frames, and removes the killed run's leftovers.
        run_whole(&cache, &out);
        assert_eq!(files(&out), reference, "run {i}: frames after resuming");
        assert!(
            !files(&cache).keys().any(|n| is_temp(n)),
            "run {i}: a killed writer's temporary file stayed in the cache"
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    let elapsed = started.elapsed();
    eprintln!("kill -9 test: {runs} kills and resumes in {elapsed:?}; {tally:?}");
    let _ = std::fs::remove_dir_all(&root);
}
