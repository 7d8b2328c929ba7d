//! Each effect generates a shot from the tiny random-weight LTX-Video model in
//! `tests/fixtures/pipeline/model`, through the real plugin, and a shot split
//! across processes is the shot one process renders.

mod common;

use common::*;
use genfx_host::source::FrameSource;
use genfx_host::{Bundle, Instance, InstanceSpec, Picture, Project};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const W: u32 = 64;
const H: u32 = 32;

/// Settings that keep a shot small: 9 frames, 64 pixels wide, no disk cache
/// (so every render here really generates); Extend and Fill also take one
/// real frame of context.
fn shot_values(plugin: &str) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = [
        ("prompt", "a paper boat drifting on a pond"),
        ("model", tiny_model().to_str().expect("UTF-8 path")),
        ("length", "9"),
        ("resolution", "64"),
        ("seed", "7"),
        ("cacheFolder", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if plugin != GENERATE {
        values.push(("contextFrames".into(), "1".into()));
    }
    values
}

fn create(
    bundle: &Arc<Bundle>,
    plugin: &str,
    context: &str,
    sources: BTreeMap<String, Arc<dyn FrameSource>>,
) -> Arc<Instance> {
    create_for(bundle, plugin, context, sources, 30.0)
}

/// As [`create`], in a project of `duration` frames.
fn create_for(
    bundle: &Arc<Bundle>,
    plugin: &str,
    context: &str,
    sources: BTreeMap<String, Arc<dyn FrameSource>>,
    duration: f64,
) -> Arc<Instance> {
    Instance::create(
        bundle,
        InstanceSpec {
            plugin: plugin.into(),
            context: context.into(),
            project: Project {
                width: W as f64,
                height: H as f64,
                fps: 24.0,
                duration,
            },
            sources,
            values: shot_values(plugin),
        },
    )
    .unwrap_or_else(|e| panic!("create {plugin} in {context}: {e}"))
}

fn generator(bundle: &Arc<Bundle>) -> Arc<Instance> {
    create(
        bundle,
        GENERATE,
        "OfxImageEffectContextGenerator",
        BTreeMap::new(),
    )
}

/// A generated picture is the project's size, finite, and not flat.
fn assert_generated(what: &str, p: &Picture) {
    assert_eq!((p.width, p.height), (W, H), "{what}: size");
    assert!(
        p.rgba.iter().all(|v| v.is_finite()),
        "{what}: non-finite pixel"
    );
    let (lo, hi) = p
        .rgba
        .chunks_exact(4)
        .map(|px| px[0])
        .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 1e-3, "{what}: flat picture ({lo}..{hi})");
}

#[test]
fn generate_extend_and_fill_each_render_a_generated_shot() {
    let bundle = natron();

    let generate = generator(&bundle);
    generate.clip_preferences().expect("clip preferences");
    let first = generate.render(0.0).expect("Generate frame 0");
    let last = generate.render(8.0).expect("Generate frame 8");
    assert_generated("Generate 0", &first);
    assert_generated("Generate 8", &last);
    assert!(
        first != last,
        "Generate: first and last frame are the same picture"
    );
    generate.destroy().expect("destroy");

    let source = clip(9, W, H, 5);
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source.clone());
    let extend = create(&bundle, EXTEND, GENERAL, sources);
    extend.clip_preferences().expect("clip preferences");
    let real = extend.render(4.0).expect("Extend real frame");
    assert!(
        real == *source.frame(4).unwrap().unwrap(),
        "real frame changed"
    );
    let new = extend.render(10.0).expect("Extend generated frame");
    assert_generated("Extend 10", &new);
    extend.destroy().expect("destroy");

    let (sources, _, _) = fill_sources(W, H, 6);
    let fill = create(&bundle, FILL, GENERAL, sources);
    fill.clip_preferences().expect("clip preferences");
    let (start, end) = fill.time_domain().expect("time domain");
    let middle = ((start + end) / 2.0).round();
    let gap = fill.render(middle).expect("Fill generated frame");
    assert_generated("Fill middle", &gap);
    fill.destroy().expect("destroy");

    still_healthy(&bundle);
}

fn render_generate(out: &Path, frames: &str) {
    let result = render_generate_with(out, frames, &[]);
    assert!(
        result.status.success(),
        "genfx render {frames} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn render_generate_with(out: &Path, frames: &str, extra: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .arg("render")
        .arg(bundle_path())
        .args([
            "--plugin",
            GENERATE,
            "--context",
            "generator",
            "--frames",
            frames,
        ])
        .arg("--out")
        .arg(out)
        .env("GENFX_CACHE_DIR", "off");
    for (k, v) in shot_values(GENERATE) {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    command.args(extra);
    command.output().expect("run genfx")
}

/// The Text encoder parameter (here through `genfx render --text-encoder`)
/// reaches the engine: naming the model's own T5 folder gives the frames the
/// automatic search gives, and naming nothing that exists fails saying so.
#[test]
fn the_text_encoder_setting_reaches_the_engine() {
    let root = std::env::temp_dir().join(format!("genfx-te-setting-{}", std::process::id()));
    let (auto, set, bad) = (root.join("auto"), root.join("set"), root.join("bad"));
    let _ = std::fs::remove_dir_all(&root);
    render_generate(&auto, "0-1");
    let te = tiny_model().join("text_encoder");
    let result = render_generate_with(&set, "0-1", &["--text-encoder", te.to_str().unwrap()]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(files(&auto), files(&set), "frames with the setting");
    // T5 as one file (its config in the metadata), as ComfyUI keeps it
    let one = root.join("one-file");
    let t5_file = genfx::testing::t5_as_single_file(&tiny_model(), &root.join("t5")).unwrap();
    let result = render_generate_with(&one, "0-1", &["--text-encoder", t5_file.to_str().unwrap()]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(files(&auto), files(&one), "frames with a single-file T5");
    let missing = root.join("no-such-t5.safetensors");
    let result = render_generate_with(&bad, "0-0", &["--text-encoder", missing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    eprintln!("{stderr}");
    assert!(!result.status.success());
    assert!(
        stderr.contains(&format!(
            "the Text encoder setting {} does not exist",
            missing.display()
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("output folder")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, content(&path))
        })
        .collect()
}

#[test]
fn two_processes_rendering_halves_match_one_process_rendering_all() {
    let root = std::env::temp_dir().join(format!("genfx-halves-{}", std::process::id()));
    let (whole, halves) = (root.join("whole"), root.join("halves"));
    let _ = std::fs::remove_dir_all(&root);
    render_generate(&whole, "0-8");
    // Two separate processes, each generating the shot for its own frames.
    render_generate(&halves, "0-3");
    render_generate(&halves, "4-8");
    let (a, b) = (files(&whole), files(&halves));
    assert_eq!(a.len(), 9, "frames of the whole render");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "frame names"
    );
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between the renders");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// What the engine rounded and a cache folder that cannot be written reach
/// the user as one persistent warning; the frames still render, and the
/// next frame of the same shot does not repeat the message.
#[test]
fn a_rounded_length_and_an_unwritable_cache_are_shown_as_a_warning() {
    let root = std::env::temp_dir().join(format!("genfx-full-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // A folder below a regular file can never be created: the disk copy
    // fails as on a full or read-only disk.
    let blocker = root.join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = blocker.join("shots");

    let bundle = natron();
    let generate = generator(&bundle);
    generate.set_param("length", "10").unwrap();
    generate
        .set_param("cacheFolder", cache.to_str().unwrap())
        .unwrap();
    generate.clip_preferences().expect("clip preferences");
    let last = generate.render(9.0).expect("the last of 10 frames");
    assert_generated("frame 9 of 10", &last);
    let warning = generate
        .persistent_message()
        .expect("the user is told what happened");
    assert!(warning.kind.contains("Warning"), "{warning:?}");
    assert!(
        warning.text.contains("keeping the first 10"),
        "{}",
        warning.text
    );
    assert!(
        warning.text.contains("could not be kept") && warning.text.contains("not-a-folder"),
        "{}",
        warning.text
    );
    let told = generate.messages().len();
    generate.render(3.0).expect("another frame of the shot");
    assert_eq!(
        generate.messages().len(),
        told,
        "the warning is not repeated"
    );
    assert_eq!(
        generate.persistent_message().map(|m| m.text),
        Some(warning.text)
    );
    generate.destroy().expect("destroy");
    still_healthy(&bundle);
    let _ = std::fs::remove_dir_all(&root);
}

/// Fill as a transition: the two ends are the clips' real frames and the
/// frames between are generated, whether the host gives the transition a
/// frame range or only drives its Transition parameter (the plugin then
/// reads the span from that parameter and must place the shot identically).
#[test]
fn fill_as_a_transition_with_and_without_a_host_frame_range() {
    let bundle = natron();
    let (outgoing, incoming) = (clip(11, W, H, 8), clip(11, W, H, 9));
    let make = || {
        let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
        sources.insert("SourceFrom".into(), outgoing.clone());
        sources.insert("SourceTo".into(), incoming.clone());
        // The transition spans frames 0..=10 of this host's project.
        let instance = create_for(
            &bundle,
            FILL,
            "OfxImageEffectContextTransition",
            sources,
            11.0,
        );
        instance.clip_preferences().expect("clip preferences");
        instance
    };

    let ranged = make();
    let start = ranged.render(0.0).expect("first frame");
    assert!(
        start == *outgoing.frame(0).unwrap().unwrap(),
        "outgoing end"
    );
    let end = ranged.render(10.0).expect("last frame");
    assert!(end == *incoming.frame(10).unwrap().unwrap(), "incoming end");
    let middle = ranged.render(5.0).expect("a generated frame");
    assert_generated("transition middle", &middle);
    ranged.destroy().expect("destroy");

    let unranged = make();
    unranged.effect.props.remove("OfxImageEffectPropFrameRange");
    let again = unranged
        .render(5.0)
        .expect("a generated frame without a range");
    assert!(
        again == middle,
        "the Transition parameter placed the shot differently"
    );
    let start = unranged.render(0.0).expect("first frame without a range");
    assert!(
        start == *outgoing.frame(0).unwrap().unwrap(),
        "outgoing end"
    );
    unranged.destroy().expect("destroy");
    still_healthy(&bundle);
}

/// A source shorter than Context frames still extends, from what it has,
/// and the user is told how many real frames conditioned the shot.
#[test]
fn a_short_source_extends_and_says_how_much_context_it_had() {
    let bundle = natron();
    let source = clip(3, W, H, 10);
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source);
    let extend = create(&bundle, EXTEND, GENERAL, sources);
    extend.set_param("contextFrames", "9").unwrap();
    extend.clip_preferences().expect("clip preferences");
    let new = extend.render(4.0).expect("a generated frame");
    assert_generated("Extend after a 3-frame source", &new);
    let warning = extend.persistent_message().expect("the user is told");
    assert!(
        warning.text.contains("gives 3 real frame(s)") && warning.text.contains("asks for 9"),
        "{}",
        warning.text
    );
    assert!(warning.text.contains("so 1 are used"), "{}", warning.text);
    extend.destroy().expect("destroy");
    still_healthy(&bundle);
}
