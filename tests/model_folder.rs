//! Model folder checks on fake folders built from the tiny fixture model.

use genfx::pipeline::model_folder::{
    find_snapshot, ModelFolder, ModelFolderError, Problem, Variant, VARIANT_FILE,
};
use std::path::{Path, PathBuf};

fn fixture_model() -> PathBuf {
    std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join("pipeline/model")
}

/// A scratch folder removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("genfx-mf-{}-{name}", std::process::id()));
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

/// Copies the fixture model's layout into `dst`, weights as empty files.
fn fake_model(dst: &Path) {
    for entry in walk(&fixture_model()) {
        let rel = entry.strip_prefix(fixture_model()).unwrap();
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if entry.extension().is_some_and(|e| e == "safetensors") {
            std::fs::write(&to, b"").unwrap();
        } else {
            std::fs::copy(&entry, &to).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn problems(err: ModelFolderError) -> Vec<Problem> {
    match err {
        ModelFolderError::Problems { problems, .. } => problems.0,
        other => panic!("expected a list of problems, got {other}"),
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn the_fixture_model_is_a_valid_folder() {
    let m = ModelFolder::open(&fixture_model()).expect("fixture model opens");
    assert_eq!(m.variant, Variant::Dev);
    assert_eq!(m.scheduler.shift_terminal, Some(0.1));
    assert_eq!(m.transformer_weights.files.len(), 1);
    assert!(m.tokenizer_model.ends_with("tokenizer/spiece.model"));
}

#[test]
fn absent_empty_and_file_models_say_so() {
    assert_eq!(
        ModelFolder::open(Path::new("")).unwrap_err(),
        ModelFolderError::Empty
    );
    let missing = Path::new("/definitely/not/here/ltx");
    assert!(matches!(
        ModelFolder::open(missing),
        Err(ModelFolderError::NotFound(_))
    ));
    // A file that is neither a checkpoint nor a folder's model_index.json
    // (which stands for its folder: tests/single_file.rs).
    let file = fixture_model().join("transformer").join("config.json");
    assert!(matches!(
        ModelFolder::open(&file),
        Err(ModelFolderError::NotAFolder(_))
    ));
}

#[test]
fn every_missing_piece_is_listed_at_once() {
    let s = Scratch::new("missing");
    fake_model(&s.0);
    std::fs::remove_file(s.0.join("vae/diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::remove_file(s.0.join("tokenizer/spiece.model")).unwrap();
    std::fs::remove_dir_all(s.0.join("scheduler")).unwrap();
    let err = ModelFolder::open(&s.0).unwrap_err();
    let message = err.to_string();
    let list = problems(err);
    assert_eq!(list.len(), 3, "{message}");
    assert!(message.contains("VAE weights"), "{message}");
    assert!(message.contains("spiece.model"), "{message}");
    assert!(message.contains("scheduler config"), "{message}");
}

#[test]
fn pickle_weights_are_refused_with_the_reason() {
    let s = Scratch::new("pickle");
    fake_model(&s.0);
    let dir = s.0.join("transformer");
    std::fs::remove_file(dir.join("diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::write(dir.join("diffusion_pytorch_model.bin"), b"pickle").unwrap();
    let list = problems(ModelFolder::open(&s.0).unwrap_err());
    assert!(
        matches!(&list[..], [Problem::PickleOnly { component, .. }] if component == "transformer")
    );
}

#[test]
fn pre_095_vae_and_foreign_components_are_unsupported() {
    let s = Scratch::new("old");
    fake_model(&s.0);
    edit_json(&s.0.join("vae/config.json"), |v| {
        v["down_block_types"] = serde_json::json!(["LTXVideoDownBlock3D", "LTXVideoDownBlock3D"]);
    });
    edit_json(&s.0.join("transformer/config.json"), |v| {
        v["_class_name"] = "WanTransformer3DModel".into();
    });
    let err = ModelFolder::open(&s.0).unwrap_err();
    let message = err.to_string();
    let list = problems(err);
    assert_eq!(list.len(), 2, "{message}");
    assert!(message.contains("before 0.9.5"), "{message}");
    assert!(message.contains("WanTransformer3DModel"), "{message}");
}

#[test]
fn sharded_weights_need_every_shard() {
    let s = Scratch::new("shards");
    fake_model(&s.0);
    let te = s.0.join("text_encoder");
    std::fs::remove_file(te.join("model.safetensors")).unwrap();
    std::fs::write(te.join("model-00001-of-00002.safetensors"), b"").unwrap();
    std::fs::write(
        te.join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let list = problems(ModelFolder::open(&s.0).unwrap_err());
    assert!(
        matches!(&list[..], [Problem::Missing { path, .. }] if path.ends_with("model-00002-of-00002.safetensors")),
        "{list:?}"
    );
    std::fs::write(te.join("model-00002-of-00002.safetensors"), b"").unwrap();
    let m = ModelFolder::open(&s.0).unwrap();
    assert_eq!(m.text_encoder_weights.files.len(), 2);
}

#[test]
fn broken_configs_are_reported() {
    let s = Scratch::new("broken");
    fake_model(&s.0);
    std::fs::write(s.0.join("model_index.json"), b"{ not json").unwrap();
    edit_json(&s.0.join("scheduler/scheduler_config.json"), |v| {
        v["use_karras_sigmas"] = true.into();
    });
    let message = ModelFolder::open(&s.0).unwrap_err().to_string();
    assert!(message.contains("model_index.json"), "{message}");
    assert!(message.contains("use_karras_sigmas"), "{message}");
}

#[test]
fn a_variant_file_says_how_a_renamed_folder_is_sampled() {
    let s = Scratch::new("renamed");
    fake_model(&s.0);
    assert_eq!(ModelFolder::open(&s.0).unwrap().variant, Variant::Dev);
    std::fs::write(s.0.join(VARIANT_FILE), br#"{"variant": "distilled"}"#).unwrap();
    assert_eq!(ModelFolder::open(&s.0).unwrap().variant, Variant::Distilled);

    // It also overrides the name rule.
    let named = Scratch::new("my-distilled-copy");
    fake_model(&named.0);
    assert_eq!(
        ModelFolder::open(&named.0).unwrap().variant,
        Variant::Distilled
    );
    std::fs::write(named.0.join(VARIANT_FILE), br#"{"variant": "dev"}"#).unwrap();
    assert_eq!(ModelFolder::open(&named.0).unwrap().variant, Variant::Dev);

    for bad in [&br#"{"variant": "turbo"}"#[..], b"{}", b"not json"] {
        std::fs::write(s.0.join(VARIANT_FILE), bad).unwrap();
        let message = ModelFolder::open(&s.0).unwrap_err().to_string();
        assert!(message.contains(VARIANT_FILE), "{message}");
    }
}

#[test]
fn hugging_face_snapshots_are_found_by_repository_name() {
    let s = Scratch::new("hub");
    let repo =
        s.0.join("hub/models--Lightricks--LTX-Video-0.9.7-distilled");
    let old = repo.join("snapshots/0000old");
    let current = repo.join("snapshots/1111main");
    fake_model(&old);
    fake_model(&current);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "1111main\n").unwrap();
    let caches = vec![s.0.join("elsewhere"), s.0.join("hub")];
    let found = find_snapshot("Lightricks/LTX-Video-0.9.7-distilled", &caches).unwrap();
    assert_eq!(found, current);
    let m = ModelFolder::open(&found).unwrap();
    assert_eq!(m.variant, Variant::Distilled);
    let err = find_snapshot("Lightricks/LTX-Video-0.9.8-dev", &caches).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("Lightricks/LTX-Video-0.9.8-dev") && message.contains("huggingface-cli"),
        "{message}"
    );
    // Without refs/main, the newest snapshot is taken.
    std::fs::remove_file(repo.join("refs/main")).unwrap();
    assert!(find_snapshot("Lightricks/LTX-Video-0.9.7-distilled", &caches).is_ok());
}
