//! Long shots through the real plugin: a 200-frame Generate, Extend and
//! Fill made by the tiny random-weight model in windows of 33 frames that
//! share 9 (eight windows each). Each gives exactly 200 new frames, all
//! finite, real frames untouched; Generate's frame 0 is served while later
//! windows are still being made. The seams' values are the engine's
//! (`tests/long_shot.rs` checks them against the blend formula).

mod common;

use common::*;
use genfx_host::source::FrameSource;
use genfx_host::{Bundle, Instance, InstanceSpec, Picture, Progress, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const W: u32 = 64;
const H: u32 = 32;
const N: u32 = 200;

fn create(
    bundle: &Arc<Bundle>,
    plugin: &str,
    context: &str,
    sources: BTreeMap<String, Arc<dyn FrameSource>>,
    cache: &str,
) -> Arc<Instance> {
    let mut values: Vec<(String, String)> = [
        ("prompt", "0: a lighthouse in fog\n4s: waves on the rocks"),
        ("model", tiny_model().to_str().expect("UTF-8 path")),
        ("length", "200"),
        ("resolution", "64"),
        ("seed", "11"),
        ("quality", "3"),
        ("steps", "2"),
        ("windowLength", "33"),
        ("windowOverlap", "9"),
        ("cacheFolder", cache),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if plugin != GENERATE {
        values.push(("contextFrames".into(), "1".into()));
    }
    let instance = Instance::create(
        bundle,
        InstanceSpec {
            plugin: plugin.into(),
            context: context.into(),
            project: Project {
                width: W as f64,
                height: H as f64,
                fps: 24.0,
                duration: N as f64,
            },
            sources,
            values,
        },
    )
    .unwrap_or_else(|e| panic!("create {plugin}: {e}"));
    instance.clip_preferences().expect("clip preferences");
    instance
}

fn assert_finite(what: &str, p: &Picture) {
    assert_eq!((p.width, p.height), (W, H), "{what}: size");
    assert!(p.rgba.iter().all(|v| v.is_finite()), "{what}: non-finite");
}

/// Renders every frame of `first..first + N`: each a finite picture, and
/// consecutive frames not all the same (the shot moves).
fn render_new_frames(what: &str, instance: &Instance, first: i32) {
    let mut previous: Option<Picture> = None;
    let mut distinct = 0;
    for t in first..first + N as i32 {
        let p = instance
            .render(t as f64)
            .unwrap_or_else(|e| panic!("{what} frame {t}: {e}"));
        assert_finite(&format!("{what} frame {t}"), &p);
        if previous.as_ref().is_some_and(|q| *q != p) {
            distinct += 1;
        }
        previous = Some(p);
    }
    eprintln!("{what}: {distinct} of {} consecutive frames differ", N - 1);
    assert!(distinct > N as usize / 4, "{what}: {distinct} changes");
}

fn bar_ended(instance: &Instance) -> bool {
    instance.progress().contains(&Progress::End)
}

/// The tests of this process that host the bundle take turns: one acts as
/// an interactive host, the other as a background renderer.
static HOST_MODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cache folder whose window writes each take a while, so frame 0 is
/// served long before the last window is made whatever the machine's
/// speed; removed (and the delay ended) on drop.
struct SlowCache(PathBuf);

impl SlowCache {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("genfx-longplug-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::env::set_var("GENFX_WINDOW_WRITE_DELAY_MS", "80");
        Self(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 path")
    }
}

impl Drop for SlowCache {
    fn drop(&mut self) {
        std::env::remove_var("GENFX_WINDOW_WRITE_DELAY_MS");
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn long_generate_extend_and_fill_give_exactly_their_new_frames() {
    let _turn = HOST_MODE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = SlowCache::new("render");
    let bundle = natron();
    bundle.set_background(true);

    let generate = create(
        &bundle,
        GENERATE,
        "OfxImageEffectContextGenerator",
        BTreeMap::new(),
        cache.path(),
    );
    assert_eq!(generate.time_domain().unwrap(), (0.0, N as f64 - 1.0));
    let t = Instant::now();
    let first = generate.render(0.0).expect("Generate frame 0");
    let first_took = t.elapsed();
    assert_finite("Generate frame 0", &first);
    // Frame 0 is served while the later windows are still being made.
    assert!(
        !bar_ended(&generate),
        "frame 0 came only after the whole shot ({first_took:?})"
    );
    render_new_frames("Generate", &generate, 0);
    let whole = t.elapsed();
    eprintln!("Generate: frame 0 after {first_took:?}, all {N} after {whole:?}");
    let t = Instant::now();
    while !bar_ended(&generate) {
        assert!(t.elapsed() < Duration::from_secs(30), "the bar never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The bar covered the whole shot, in order.
    let fractions: Vec<f64> = generate
        .progress()
        .iter()
        .filter_map(|p| match p {
            Progress::Update(f) => Some(*f),
            _ => None,
        })
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(
        fractions.iter().any(|f| *f > 0.4 && *f < 0.6),
        "{fractions:?}"
    );
    generate.destroy().expect("destroy");
    drop(cache);

    let source = clip(9, W, H, 21);
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source.clone());
    // Extend and Fill in memory only: every shot here is really made.
    let extend = create(&bundle, EXTEND, GENERAL, sources, "off");
    assert_eq!(extend.time_domain().unwrap(), (0.0, 8.0 + N as f64));
    render_new_frames("Extend", &extend, 9);
    for t in 0..9 {
        let real = extend.render(t as f64).expect("Extend real frame");
        assert!(real == *source.frame(t).unwrap().unwrap(), "real frame {t}");
    }
    extend.destroy().expect("destroy");

    let (sources, _, _) = fill_sources(W, H, 22);
    let fill = create(&bundle, FILL, GENERAL, sources, "off");
    assert_eq!(fill.time_domain().unwrap(), (9.0, 8.0 + N as f64));
    render_new_frames("Fill", &fill, 9);
    fill.destroy().expect("destroy");

    still_healthy(&bundle);
}

/// `genfx render` over a long range goes through the same path: every frame
/// of a 200-frame shot in windows is written to its file.
#[test]
fn genfx_render_writes_every_frame_of_a_long_shot() {
    let out = std::env::temp_dir().join(format!("genfx-longplug-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_genfx"))
        .arg("render")
        .arg(bundle_path())
        .args(["--plugin", GENERATE, "--context", "generator"])
        .args(["--frames", "0-199", "--size", "64x32"])
        .arg("--out")
        .arg(&out)
        .args(["--set", "prompt=a kite over dunes"])
        .arg("--set")
        .arg(format!("model={}", tiny_model().display()))
        .args(["--set", "length=200", "--set", "resolution=64"])
        .args(["--set", "quality=3", "--set", "steps=2"])
        .args(["--set", "windowLength=33", "--set", "windowOverlap=9"])
        .args(["--set", "cacheFolder=off"])
        .env("GENFX_DEVICE", "cpu")
        // Room for a few frames only: the rest are read back from disk.
        .env("GENFX_CACHE_MEMORY_MB", "1")
        .output()
        .expect("run genfx render");
    assert!(
        result.status.success(),
        "genfx render failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let files = std::fs::read_dir(&out).unwrap().flatten().count();
    assert_eq!(files, N as usize);
    let _ = std::fs::remove_dir_all(&out);
}

fn render_command(cache: &Path, out: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_genfx"));
    c.arg("render")
        .arg(bundle_path())
        .args(["--plugin", GENERATE, "--context", "generator"])
        .args(["--frames", "0-199", "--size", "64x32"])
        .arg("--out")
        .arg(out)
        .args(["--set", "prompt=a kite over dunes", "--set", "seed=4"])
        .arg("--set")
        .arg(format!("model={}", tiny_model().display()))
        .args(["--set", "length=200", "--set", "resolution=64"])
        .args(["--set", "quality=3", "--set", "steps=2"])
        .args(["--set", "windowLength=33", "--set", "windowOverlap=9"])
        .arg("--set")
        .arg(format!("cacheFolder={}", cache.display()))
        .env("GENFX_DEVICE", "cpu")
        .env_remove("GENFX_WINDOW_WRITE_DELAY_MS");
    c
}

/// Each output file's content: a frame's pixels (its Content Credentials
/// differ per run), any other file's bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let content = common::content(&e.path());
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

/// `genfx render` killed with SIGKILL while its long shot streams leaves no
/// shot entry in the cache folder (never a torn one); the next render
/// reuses the finished windows and writes the frames of an uninterrupted
/// render.
#[cfg(unix)]
#[test]
fn a_killed_render_of_a_long_shot_resumes_with_the_same_frames() {
    use std::io::{BufRead, BufReader};
    let root = std::env::temp_dir().join(format!("genfx-longplug-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let whole = render_command(&root.join("cache-a"), &root.join("a"))
        .output()
        .expect("run genfx render");
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );

    let cache = root.join("cache-b");
    let mut child = render_command(&cache, &root.join("b"))
        .env("GENFX_WINDOW_WRITE_DELAY_MS", "100")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start genfx render");
    // Frame 0 exists once the first windows are done; kill it then.
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line.unwrap_or_default().starts_with("frame 0 ") {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".genfxshot"))
        .collect();
    assert!(entries.is_empty(), "a shot entry after a kill: {entries:?}");

    let rerun = render_command(&cache, &root.join("b"))
        .output()
        .expect("run genfx render again");
    let told = String::from_utf8_lossy(&rerun.stderr).into_owned();
    assert!(rerun.status.success(), "{told}");
    let reused: usize = told
        .split(" reused from the windows folder")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of reused windows in:\n{told}"));
    assert!(reused >= 1, "{told}");
    let (a, b) = (files(&root.join("a")), files(&root.join("b")));
    assert_eq!(a.len(), N as usize);
    assert!(a == b, "the resumed render's frames differ");
    let _ = std::fs::remove_dir_all(&root);
}

/// The stand-in an interactive host shows before a shot exists: grey
/// stripes of two values (shot/stand_in.rs).
fn is_stand_in(p: &Picture) -> bool {
    let grey = |px: &[f32]| px[0] == px[1] && px[1] == px[2];
    let first = p.rgba[0];
    p.rgba.chunks_exact(4).all(grey)
        && p.rgba.chunks_exact(4).any(|px| (px[0] - first).abs() > 0.1)
        && p.rgba
            .chunks_exact(4)
            .all(|px| px[0] == 0.05 || px[0] == 0.2)
}

fn status(instance: &Instance) -> String {
    match instance.param_value("status").expect("a Status parameter") {
        genfx_host::objects::ParamValue::Text(t) => t.to_string_lossy().into_owned(),
        other => panic!("Status is not text: {other:?}"),
    }
}

/// In an interactive host, Generate's first frames are shown while later
/// windows are made: the host is asked to render again as they arrive, and
/// the Status line says which window is being made.
#[test]
fn an_interactive_host_shows_frame_zero_while_later_windows_are_made() {
    let _turn = HOST_MODE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = SlowCache::new("interactive");
    let bundle = natron();
    bundle.set_background(false);
    let generate = create(
        &bundle,
        GENERATE,
        "OfxImageEffectContextGenerator",
        BTreeMap::new(),
        cache.path(),
    );
    let before = generate.render(0.0).expect("frame 0 before Generate");
    assert!(is_stand_in(&before), "not the stand-in before Generate");
    generate.press("generate", 0.0).expect("press Generate");
    let t = Instant::now();
    let (frame, seen) = loop {
        assert!(t.elapsed() < Duration::from_secs(60), "frame 0 never came");
        if generate.render_requests() > 0 {
            let p = generate.render(0.0).expect("frame 0");
            if !is_stand_in(&p) {
                break (p, status(&generate));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_finite("frame 0", &frame);
    assert!(
        seen.starts_with("generating ") && seen.contains(" of 8)"),
        "frame 0 was shown only when the shot was {seen:?}"
    );
    // The last frame is the stand-in until its window is made, then the
    // shot's.
    let t = Instant::now();
    while status(&generate) != "cached" {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            status(&generate)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = generate.render(N as f64 - 1.0).expect("the last frame");
    assert!(!is_stand_in(&last));
    assert_finite("the last frame", &last);
    generate.destroy().expect("destroy");
    bundle.set_background(true);
    drop(cache);
}
