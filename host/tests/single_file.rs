//! A shot from an LTX-Video single-file checkpoint (the tiny one in
//! tests/fixtures/single_file, the pipeline fixture's weights in the original
//! layout) through the real plugin and through `genfx generate`: the frames
//! are those of the same model as a diffusers folder whose scheduler config
//! is what the checkpoint's metadata says. The Model parameter is a file
//! path, so a host's file browser can pick the checkpoint; a damaged file
//! reaches the user as a message.

mod common;

use common::*;
use genfx_host::describe;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("make folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            copy_dir(&path, &to.join(path.file_name().unwrap()));
        } else {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).expect("copy");
        }
    }
}

/// Both layouts of one model under a fresh folder: `checkpoint/` (the
/// single file with T5 beside it) and `folder/` (the diffusers folder with
/// the checkpoint's scheduler settings).
struct Layouts {
    root: PathBuf,
    checkpoint: PathBuf,
    folder: PathBuf,
}

impl Layouts {
    fn new(tag: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("genfx-host-single-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let model = fixtures().join("pipeline/model");
        let beside = root.join("checkpoint");
        std::fs::create_dir_all(&beside).unwrap();
        let checkpoint = beside.join("ltxv-tiny.safetensors");
        std::fs::copy(
            fixtures().join("single_file/ltxv-tiny.safetensors"),
            &checkpoint,
        )
        .unwrap();
        copy_dir(&model.join("text_encoder"), &beside.join("text_encoder"));
        copy_dir(&model.join("tokenizer"), &beside.join("tokenizer"));

        let folder = root.join("folder");
        copy_dir(&model, &folder);
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join("single_file/expected.json")).unwrap(),
        )
        .unwrap();
        std::fs::write(
            folder.join("scheduler/scheduler_config.json"),
            expected["scheduler"].to_string(),
        )
        .unwrap();
        Self {
            root,
            checkpoint,
            folder,
        }
    }
}

impl Drop for Layouts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn frames(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("output folder")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, content(&path))
        })
        .collect()
}

fn genfx() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .env("GENFX_CACHE_DIR", "off")
        .env("GENFX_DEVICE", "cpu");
    command
}

fn plugin_render(model: &Path, out: &Path) -> Output {
    let mut command = genfx();
    command
        .arg("render")
        .arg(bundle_path())
        .args([
            "--plugin",
            GENERATE,
            "--context",
            "generator",
            "--frames",
            "0-8",
        ])
        .args(["--size", "64x32"])
        .arg("--out")
        .arg(out);
    for (k, v) in [
        ("prompt", "a paper boat drifting on a pond"),
        ("model", model.to_str().expect("UTF-8 path")),
        ("length", "9"),
        ("resolution", "64"),
        ("seed", "7"),
        ("cacheFolder", "off"),
    ] {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    command.output().expect("run genfx render")
}

fn cli_generate(model: &Path, out: &Path) -> Output {
    cli_generate_with(model, &[], out)
}

/// `genfx generate` on `model` with `extra` arguments (e.g. a Text encoder).
fn cli_generate_with(model: &Path, extra: &[&std::ffi::OsStr], out: &Path) -> Output {
    genfx()
        .arg("generate")
        .arg("--model")
        .arg(model)
        .args(extra)
        .args([
            "--prompt",
            "a paper boat drifting on a pond",
            "--frames",
            "9",
        ])
        .args([
            "--width", "64", "--height", "32", "--seed", "7", "--steps", "3",
        ])
        .arg("--out")
        .arg(out)
        .output()
        .expect("run genfx generate")
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_same(what: &str, a: &Path, b: &Path) {
    let (a, b) = (frames(a), frames(b));
    assert_eq!(a.len(), 9, "{what}: frames");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{what}: {name} differs between the layouts"
        );
    }
}

#[test]
fn the_plugin_renders_the_checkpoint_as_the_same_model_in_a_folder() {
    let l = Layouts::new("plugin");
    let (a, b) = (l.root.join("out-checkpoint"), l.root.join("out-folder"));
    assert_ok(
        "render from the checkpoint",
        &plugin_render(&l.checkpoint, &a),
    );
    assert_ok("render from the folder", &plugin_render(&l.folder, &b));
    assert_same("plugin", &a, &b);
}

#[test]
fn genfx_generate_takes_the_checkpoint_as_model() {
    let l = Layouts::new("cli");
    let (a, b) = (l.root.join("out-checkpoint"), l.root.join("out-folder"));
    assert_ok(
        "generate from the checkpoint",
        &cli_generate(&l.checkpoint, &a),
    );
    assert_ok("generate from the folder", &cli_generate(&l.folder, &b));
    assert_same("genfx generate", &a, &b);
}

/// The checkpoint with T5 as one file (its config in the metadata, as a
/// ComfyUI-style `t5xxl` file beside the checkpoint): the same frames as
/// the folder with its `text_encoder/`.
#[test]
fn genfx_generate_takes_a_single_file_t5_beside_the_checkpoint() {
    let l = Layouts::new("cli-t5file");
    let (a, b) = (l.root.join("out-t5file"), l.root.join("out-folder"));
    let t5 = genfx::testing::t5_as_single_file(&l.folder, &l.root.join("t5")).unwrap();
    let text_encoder = ["--text-encoder".as_ref(), t5.as_os_str()];
    let with_file = cli_generate_with(&l.checkpoint, &text_encoder, &a);
    assert_ok("generate with a single-file T5", &with_file);
    assert_ok("generate from the folder", &cli_generate(&l.folder, &b));
    assert_same("genfx generate, single-file T5", &a, &b);

    // the same with the tokenizer as tokenizer.json (as ComfyUI ships it)
    let t5_dir = t5.parent().unwrap();
    std::fs::remove_file(t5_dir.join("tokenizer/spiece.model")).unwrap();
    std::fs::copy(
        fixtures().join("tokenizer_json/pipeline/tokenizer.json"),
        t5_dir.join("tokenizer.json"),
    )
    .unwrap();
    let c = l.root.join("out-tokenizer-json");
    let with_json = cli_generate_with(&l.checkpoint, &text_encoder, &c);
    assert_ok("generate with tokenizer.json", &with_json);
    assert_same("genfx generate, tokenizer.json", &c, &b);
}

#[test]
fn a_damaged_checkpoint_is_a_message_not_a_crash() {
    let l = Layouts::new("damaged");
    let bytes = std::fs::read(&l.checkpoint).unwrap();
    std::fs::write(&l.checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    let out = cli_generate(&l.checkpoint, &l.root.join("out"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("genfx generate: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("damaged or incomplete"), "{stderr}");

    let out = plugin_render(&l.checkpoint, &l.root.join("out-plugin"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("genfx render: {stderr}");
    assert!(!out.status.success());
    assert!(stderr.contains("damaged or incomplete"), "{stderr}");
}

#[test]
fn the_model_parameter_is_a_file_path_a_browser_can_pick_a_checkpoint_with() {
    let listing = describe::list(&natron()).expect("describe the bundle");
    for plugin in &listing {
        for context in &plugin.contexts {
            let model = context
                .params
                .iter()
                .find(|p| p.name == "model")
                .expect("a model parameter");
            assert_eq!(
                model.string_mode.as_deref(),
                Some("OfxParamStringIsFilePath"),
                "{} {}",
                plugin.id,
                context.context
            );
            assert!(model.hint.contains(".safetensors"), "{}", model.hint);
        }
    }
}
