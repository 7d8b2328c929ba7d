//! The plugin's cache folder through the real bundle, one `genfx render`
//! process per step (so nothing is served from memory): a damaged entry is
//! generated again, never shown; new weights in the same model folder make a
//! new shot although `model_index.json` did not change; the folder stays
//! within the effect's Cache size.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn render(model: &Path, cache: &Path, out: &Path, seed: u32, extra: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(out);
    let mut command = Command::new(env!("CARGO_BIN_EXE_genfx"));
    command
        .arg("render")
        .arg(bundle_path())
        .args(["--plugin", GENERATE, "--context", "generator"])
        .args(["--frames", "0-8", "--size", "64x32"])
        .arg("--out")
        .arg(out)
        .env("GENFX_DEVICE", "cpu");
    let seed = seed.to_string();
    let values = [
        ("prompt", "a kite over dunes"),
        ("model", model.to_str().unwrap()),
        ("length", "9"),
        ("resolution", "64"),
        ("seed", seed.as_str()),
        ("cacheFolder", cache.to_str().unwrap()),
    ];
    for (k, v) in values.iter().chain(extra) {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    let result = command.output().expect("run genfx render");
    assert!(
        result.status.success(),
        "genfx render failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn frames(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                content(&e.path()),
            )
        })
        .collect()
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "genfxshot"))
        .collect();
    v.sort();
    v
}

#[test]
fn damaged_entries_are_regenerated_and_new_weights_make_new_shots() {
    let root = std::env::temp_dir().join(format!("genfx-plugin-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let model = root.join("model");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("tests/fixtures/pipeline/model"),
        &model,
    );
    let cache = root.join("cache");
    let out = root.join("out");

    render(&model, &cache, &out, 7, &[]);
    let first = frames(&out);
    assert_eq!(first.len(), 9);
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "{stored:?}");

    // Damage the pixels of the entry: the next process must not show them.
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&stored[0], &bytes).unwrap();
    render(&model, &cache, &out, 7, &[]);
    assert!(frames(&out) == first, "a damaged entry was served");
    assert!(
        std::fs::read(&stored[0]).unwrap() != bytes,
        "the damaged entry was not replaced"
    );

    // New weights (same shapes) in the same folder, model_index.json untouched.
    let weights = model.join("vae/diffusion_pytorch_model.safetensors");
    let mut w = std::fs::read(&weights).unwrap();
    // One low mantissa bit of every f32 (or every other bf16): a change of
    // under 1 % per weight, always finite.
    let header = u64::from_le_bytes(w[..8].try_into().unwrap()) as usize + 8;
    for i in (header + 2..w.len()).step_by(4) {
        w[i] ^= 0x01;
    }
    std::fs::write(&weights, &w).unwrap();
    render(&model, &cache, &out, 7, &[]);
    assert!(frames(&out) != first, "the old weights' shot was served");
    assert_eq!(entries(&cache).len(), 2);

    // A Cache size that holds one shot: older ones are evicted.
    let one_shot_gb =
        std::fs::metadata(&stored[0]).unwrap().len() as f64 * 1.5 / (1u64 << 30) as f64;
    let size = format!("{one_shot_gb:.12}");
    render(&model, &cache, &out, 8, &[("cacheSizeGB", size.as_str())]);
    assert_eq!(entries(&cache).len(), 1, "the folder outgrew its size");
    let _ = std::fs::remove_dir_all(&root);
}
