//! Shared by the engine's two-pass tests (CPU and GPU): a copy of the tiny
//! pipeline model marked distilled, with or without the fixture's latent
//! upsampler.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use genfx::testing::fixtures_dir;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The tiny model, marked distilled, with or without the upsampler.
pub fn distilled_model(name: &str, upsampler: bool) -> PathBuf {
    let root = std::env::temp_dir()
        .join(format!("genfx-two-pass-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&fixtures_dir().join("pipeline").join("model"), &root);
    std::fs::write(root.join("genfx.json"), r#"{"variant": "distilled"}"#).unwrap();
    if upsampler {
        copy_dir(
            &fixtures_dir()
                .join("upsampler")
                .join("two_pass")
                .join("model")
                .join("latent_upsampler"),
            &root.join("latent_upsampler"),
        );
    }
    root
}
