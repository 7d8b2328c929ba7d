//! Generation on the user's terms, through the real plugin and the tiny
//! random-weight LTX-Video model: in an interactive host a shot that is not
//! cached shows a stand-in until Generate is pressed; the button's job runs
//! off the host's thread, reports on the Status line and the progress bar,
//! and asks the host to render again; a background renderer generates on
//! the first render; thumbnails and draft renders never start a job.
//!
//! One process hosts the bundle once, so the tests share it and take turns
//! (a lock) to act as an interactive or a background host. Each test uses
//! its own seed, so no test finds another's shot in the memory cache.

mod common;

use common::*;
use genfx_host::objects::ParamValue;
use genfx_host::source::FrameSource;
use genfx_host::{Bundle, Instance, InstanceSpec, Picture, Project, RenderKind};
use parking_lot::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const W: u32 = 64;
const H: u32 = 32;
/// The plugin's placeholder values (shot/stand_in.rs).
const DARK: f32 = 0.05;
const LIGHT: f32 = 0.2;
const THUMBNAIL: RenderKind = RenderKind {
    draft: false,
    thumbnail: true,
};
const DRAFT: RenderKind = RenderKind {
    draft: true,
    thumbnail: false,
};

static HOST_MODE: Mutex<()> = Mutex::new(());

/// The bundle, acting as a background renderer or an interactive host
/// until the guard drops.
fn host(background: bool) -> (MutexGuard<'static, ()>, Arc<Bundle>) {
    let guard = HOST_MODE.lock();
    let bundle = natron();
    bundle.set_background(background);
    (guard, bundle)
}

fn create(
    bundle: &Arc<Bundle>,
    plugin: &str,
    context: &str,
    sources: BTreeMap<String, Arc<dyn FrameSource>>,
    seed: u32,
) -> Arc<Instance> {
    let mut values: Vec<(String, String)> = [
        ("prompt", "a paper boat drifting on a pond"),
        ("model", tiny_model().to_str().expect("UTF-8 path")),
        ("length", "9"),
        ("resolution", "64"),
        ("cacheFolder", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    values.push(("seed".into(), seed.to_string()));
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
                duration: 30.0,
            },
            sources,
            values,
        },
    )
    .unwrap_or_else(|e| panic!("create {plugin}: {e}"));
    instance.clip_preferences().expect("clip preferences");
    instance
}

fn generator(bundle: &Arc<Bundle>, seed: u32) -> Arc<Instance> {
    create(
        bundle,
        GENERATE,
        "OfxImageEffectContextGenerator",
        BTreeMap::new(),
        seed,
    )
}

fn status(instance: &Instance) -> String {
    match instance.param_value("status").expect("a Status parameter") {
        ParamValue::Text(t) => t.to_string_lossy().into_owned(),
        other => panic!("Status is not text: {other:?}"),
    }
}

/// Polls the Status line until `done` holds, returning every distinct
/// value seen in order.
fn wait_status(instance: &Instance, done: impl Fn(&str) -> bool) -> Vec<String> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let now = status(instance);
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if done(&now) {
            return seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "status never settled; seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The status line settles (the plugin writes it from its own thread).
fn settled_status(instance: &Instance) -> String {
    std::thread::sleep(Duration::from_millis(300));
    status(instance)
}

/// The striped placeholder: opaque, grey, only the two placeholder values,
/// both present.
fn is_placeholder(p: &Picture) -> bool {
    let (mut dark, mut light) = (0, 0);
    for px in p.rgba.chunks_exact(4) {
        if px[3] != 1.0 || px[0] != px[1] || px[1] != px[2] {
            return false;
        }
        if px[0] == DARK {
            dark += 1;
        } else if px[0] == LIGHT {
            light += 1;
        } else {
            return false;
        }
    }
    dark > light && light > 0
}

/// A generated picture is the project's size, finite, not flat and not
/// the placeholder.
fn assert_generated(what: &str, p: &Picture) {
    assert_eq!((p.width, p.height), (W, H), "{what}: size");
    assert!(p.rgba.iter().all(|v| v.is_finite()), "{what}: non-finite");
    let (lo, hi) = p
        .rgba
        .chunks_exact(4)
        .map(|px| px[0])
        .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 1e-3, "{what}: flat picture ({lo}..{hi})");
    assert!(!is_placeholder(p), "{what}: the placeholder");
}

/// "generating N %" values, in order, are whole percents that never go
/// back.
fn percents(seen: &[String]) -> Vec<u32> {
    seen.iter()
        .filter_map(|s| {
            s.strip_prefix("generating ")?
                .strip_suffix(" %")?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn an_interactive_host_shows_a_placeholder_until_generate_then_the_shot() {
    let (_mode, bundle) = host(false);
    let generate = generator(&bundle, 101);
    assert_eq!(status(&generate), "idle");

    let before = generate.render(0.0).expect("a frame before Generate");
    assert!(is_placeholder(&before), "not the placeholder");
    assert!(generate.progress().is_empty(), "a render started a job");
    assert!(generate.messages().is_empty(), "{:?}", generate.messages());
    assert_eq!(settled_status(&generate), "idle");
    assert_eq!(generate.render_requests(), 0);

    let pressed = Instant::now();
    generate.press("generate", 0.0).expect("press Generate");
    let press_took = pressed.elapsed();
    let seen = wait_status(&generate, |s| s == "cached");
    let job_took = pressed.elapsed();
    eprintln!("Generate returned after {press_took:?}; the shot was cached after {job_took:?}");
    // The button returns to the host at once; the job runs on.
    assert!(
        press_took * 4 < job_took,
        "Generate held the host's thread {press_took:?} of a {job_took:?} job"
    );
    // The first status polled may already be the job's progress: on a
    // fast CPU the tiny job reaches 10 % before the first poll.
    assert!(
        matches!(seen.first().map(String::as_str), Some("idle" | "queued"))
            || seen.first().is_some_and(|s| s.starts_with("generating")),
        "{seen:?}"
    );
    let p = percents(&seen);
    assert!(!p.is_empty(), "no progress on the status line: {seen:?}");
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s == "idle" || s == "queued" || s == "cached" || s.starts_with("generating ")),
        "{seen:?}"
    );

    // The host is asked to render again once the shot is ready.
    let asked = Instant::now();
    while generate.render_requests() == 0 {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "no re-render asked"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let bar = generate.progress();
    assert!(
        matches!(bar.first(), Some(genfx_host::Progress::Start { label }) if label.contains("generating 9 frames")),
        "{bar:?}"
    );
    assert_eq!(bar.last(), Some(&genfx_host::Progress::End), "{bar:?}");

    let first = generate.render(0.0).expect("frame 0 after Generate");
    let last = generate.render(8.0).expect("frame 8 after Generate");
    assert_generated("frame 0", &first);
    assert_generated("frame 8", &last);
    assert!(first != last, "first and last frame are the same");
    // Serving the cached shot starts nothing more.
    assert_eq!(generate.progress(), bar);
    generate.destroy().expect("destroy");
}

#[test]
fn on_first_render_generates_in_an_interactive_host() {
    let (_mode, bundle) = host(false);
    let generate = generator(&bundle, 102);
    generate.set_param("whenToGenerate", "1").unwrap();
    let frame = generate.render(4.0).expect("a frame");
    assert_generated("first render", &frame);
    assert!(!generate.progress().is_empty(), "no job");
    assert_eq!(
        wait_status(&generate, |s| s == "cached").last().unwrap(),
        "cached"
    );
    generate.destroy().expect("destroy");
}

#[test]
fn a_background_host_generates_on_first_render_and_thumbnails_serve_the_cache() {
    let (_mode, bundle) = host(true);
    let generate = generator(&bundle, 103);
    for (what, kind) in [("thumbnail", THUMBNAIL), ("draft", DRAFT)] {
        let p = generate.render_as(0.0, kind).expect(what);
        assert!(is_placeholder(&p), "{what}: not the placeholder");
    }
    assert!(
        generate.progress().is_empty(),
        "a thumbnail or draft started a job"
    );
    assert!(generate.messages().is_empty(), "{:?}", generate.messages());
    assert_eq!(settled_status(&generate), "idle");

    let full = generate.render(0.0).expect("first full render");
    assert_generated("background render", &full);
    assert!(
        !generate.progress().is_empty(),
        "no job in a background render"
    );
    let jobs = generate.progress();
    assert_eq!(generate.render_as(0.0, THUMBNAIL).unwrap(), full);
    let draft = generate.render_as(8.0, DRAFT).unwrap();
    assert_eq!(draft, generate.render(8.0).unwrap());
    assert_eq!(generate.progress(), jobs, "serving the cache ran a job");
    generate.destroy().expect("destroy");
}

#[test]
fn thumbnails_and_drafts_of_extend_and_fill_hold_the_real_frames() {
    let (_mode, bundle) = host(true);
    let source = clip(9, W, H, 104);
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source.clone());
    let extend = create(&bundle, EXTEND, GENERAL, sources, 104);
    let seam = source.frame(8).unwrap().unwrap();
    assert!(extend.render_as(10.0, THUMBNAIL).unwrap() == *seam);
    assert!(extend.render_as(16.0, DRAFT).unwrap() == *seam);
    let real = extend.render_as(3.0, THUMBNAIL).unwrap();
    assert!(real == *source.frame(3).unwrap().unwrap(), "real frame");
    assert!(extend.progress().is_empty(), "a job started");
    assert!(extend.messages().is_empty(), "{:?}", extend.messages());
    extend.destroy().expect("destroy");

    let (sources, before, after) = fill_sources(W, H, 105);
    let fill = create(&bundle, FILL, GENERAL, sources, 105);
    let (start, end) = fill.time_domain().expect("time domain");
    let (last_before, first_after) = (
        before.frame(8).unwrap().unwrap(),
        after.frame(0).unwrap().unwrap(),
    );
    let mut held = (0, 0);
    for t in start as i32..=end as i32 {
        let p = fill.render_as(t as f64, THUMBNAIL).unwrap();
        held.0 += (p == *last_before) as usize;
        held.1 += (p == *first_after) as usize;
        let real = (0..9).any(|f| {
            p == *before.frame(f).unwrap().unwrap() || p == *after.frame(f).unwrap().unwrap()
        });
        assert!(real, "Fill thumbnail at {t} is not a real frame");
    }
    // Each end is held across its half of the gap (plus its own frame).
    assert!(held.0 > 1 && held.1 > 1, "held {held:?}");
    assert!(fill.progress().is_empty(), "a job started");
    fill.destroy().expect("destroy");
}

#[test]
fn a_failed_generate_says_why_on_the_status_line_and_in_the_message_area() {
    let (_mode, bundle) = host(false);
    let generate = generator(&bundle, 107);
    let missing = std::env::temp_dir().join("genfx-no-such-model");
    generate
        .set_param("model", missing.to_str().unwrap())
        .unwrap();
    generate.press("generate", 0.0).expect("press Generate");
    let seen = wait_status(&generate, |s| s.starts_with("failed: "));
    let failed = seen.last().unwrap().clone();
    let message = generate
        .persistent_message()
        .expect("the failure is in the message area");
    assert!(message.kind.contains("Error"), "{message:?}");
    assert!(
        message.text.contains("genfx-no-such-model") && failed.contains("genfx-no-such-model"),
        "{failed} / {}",
        message.text
    );
    // Frames keep their stand-in, and the message stays.
    assert!(is_placeholder(&generate.render(0.0).unwrap()));
    assert_eq!(generate.persistent_message(), Some(message));
    generate.destroy().expect("destroy");
}

#[test]
fn extend_holds_the_seam_until_generate_then_shows_the_shot() {
    let (_mode, bundle) = host(false);
    let source = clip(9, W, H, 108);
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source.clone());
    let extend = create(&bundle, EXTEND, GENERAL, sources, 108);
    let seam = source.frame(8).unwrap().unwrap();
    assert!(
        extend.render(10.0).unwrap() == *seam,
        "not the held seam frame"
    );
    assert!(extend.progress().is_empty(), "a render started a job");
    // The button reads the real frames itself (InstanceChanged may fetch
    // images), so the shot is the one a render would ask for.
    extend.press("generate", 10.0).expect("press Generate");
    wait_status(&extend, |s| s == "cached");
    let new = extend.render(10.0).unwrap();
    assert_generated("Extend after Generate", &new);
    assert!(new != *seam);
    assert!(extend.render(3.0).unwrap() == *source.frame(3).unwrap().unwrap());
    extend.destroy().expect("destroy");
}

#[test]
fn a_shot_on_disk_is_served_without_a_job_after_memory_is_purged() {
    let (_mode, bundle) = host(true);
    let folder = std::env::temp_dir().join(format!("genfx-thumbs-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let make = || {
        let generate = generator(&bundle, 109);
        generate
            .set_param("cacheFolder", folder.to_str().unwrap())
            .unwrap();
        generate
    };
    let farm = make();
    let rendered = farm.render(2.0).expect("background render");
    assert_generated("background render", &rendered);
    // The render returns as soon as its frame exists; the job goes on to
    // finish the shot and put its entry in the cache folder.
    wait_status(&farm, |s| s == "cached");
    farm.purge_caches().expect("purge caches");
    farm.destroy().expect("destroy");

    bundle.set_background(false);
    let editor = make();
    let p = editor.render(2.0).expect("interactive render");
    assert!(p == rendered, "the shot on disk was not served");
    assert!(editor.render_as(2.0, THUMBNAIL).unwrap() == rendered);
    assert!(editor.progress().is_empty(), "a job ran");
    assert_eq!(
        wait_status(&editor, |s| s == "cached").last().unwrap(),
        "cached"
    );
    editor.destroy().expect("destroy");
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn a_destroyed_instance_is_not_called_by_its_job() {
    let (_mode, bundle) = host(false);
    let generate = generator(&bundle, 110);
    generate.press("generate", 0.0).expect("press Generate");
    wait_status(&generate, |s| s.starts_with("generating ") || s == "cached");
    generate.destroy().expect("destroy while the job runs");
    let calls = (
        generate.progress(),
        status(&generate),
        generate.render_requests(),
    );
    // Long enough for the tiny model's job to have finished or stopped.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        (
            generate.progress(),
            status(&generate),
            generate.render_requests()
        ),
        calls,
        "the job called the host about a destroyed instance"
    );
    still_healthy(&bundle);
}

/// What hosts are told about the new parameters: a push button, a status
/// line the user cannot edit that is not saved and asks for no render, a
/// hidden saved trigger that does, and the choice defaulting to the button.
#[test]
fn the_button_status_and_trigger_are_described_for_hosts() {
    let (_mode, bundle) = host(true);
    let generate = generator(&bundle, 111);
    let prop = |param: &str, name: &str| generate.param(param).unwrap().props.int(name, 0);
    assert_eq!(
        generate.param("generate").unwrap().type_name,
        "OfxParamTypePushButton"
    );
    assert_eq!(
        generate
            .param("status")
            .unwrap()
            .props
            .string("OfxParamPropStringMode", 0)
            .as_deref(),
        Some("OfxParamStringIsSingleLine")
    );
    assert_eq!(prop("status", "OfxParamPropEnabled"), Some(0));
    assert_eq!(prop("status", "OfxParamPropEvaluateOnChange"), Some(0));
    assert_eq!(prop("status", "OfxParamPropPersistant"), Some(0));
    assert_eq!(prop("status", "OfxParamPropCanUndo"), Some(0));
    assert_eq!(prop("shotsReady", "OfxParamPropSecret"), Some(1));
    assert_eq!(prop("shotsReady", "OfxParamPropEvaluateOnChange"), Some(1));
    assert_eq!(prop("shotsReady", "OfxParamPropPersistant"), Some(1));
    assert_eq!(prop("shotsReady", "OfxParamPropCanUndo"), Some(0));
    assert_eq!(
        generate.param_value("whenToGenerate").unwrap(),
        ParamValue::Ints(vec![0])
    );
    generate.destroy().expect("destroy");
}
