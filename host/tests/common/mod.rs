//! Shared by the host's integration tests: the real GenFX plugin, built and
//! laid out as a bundle, and synthetic source clips.
//!
//! The plugin under test is `genfx-ofx` built by cargo (`cargo build -p
//! genfx-ofx`, run from here so the library is never stale; a no-op when it is
//! fresh), in the same profile as the test, copied into
//! `target/<profile>/test-bundles/<test>/GenFX.ofx.bundle`. Set
//! `GENFX_OFX_BUNDLE` to test another bundle instead.
#![allow(dead_code)]

use genfx_host::source::{FrameSource, MemorySource};
use genfx_host::{Bundle, HostKind, Instance, InstanceSpec, Picture, Project};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

pub const EXTEND: &str = "org.genfx.Extend";
pub const GENERATE: &str = "org.genfx.Generate";
pub const FILL: &str = "org.genfx.Fill";
pub const GENERAL: &str = "OfxImageEffectContextGeneral";
pub const FILTER: &str = "OfxImageEffectContextFilter";

fn profile_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The bundle under test, built once per test process.
pub fn bundle_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = profile_dir();
        // Keep the plugin's log out of the user's folder.
        std::env::set_var("GENFX_LOG", dir.join("genfx-test.log"));
        if let Some(b) = std::env::var_os("GENFX_OFX_BUNDLE") {
            return PathBuf::from(b);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-p", "genfx-ofx", "--lib"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p genfx-ofx");
        assert!(status.success(), "cargo build -p genfx-ofx failed");
        let library = dir.join(format!(
            "{}genfx_ofx{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ));
        let test = std::env::current_exe()
            .ok()
            .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".into());
        let bundle = dir.join("test-bundles").join(test).join("GenFX.ofx.bundle");
        let binary_dir = bundle.join("Contents").join(genfx_host::bundle::arch_dir());
        std::fs::create_dir_all(&binary_dir).expect("bundle folder");
        let partial = binary_dir.join("GenFX.ofx.partial");
        std::fs::copy(&library, &partial)
            .unwrap_or_else(|e| panic!("copy {}: {e}", library.display()));
        std::fs::rename(&partial, binary_dir.join("GenFX.ofx")).expect("place GenFX.ofx");
        bundle
    })
}

pub fn natron() -> Arc<Bundle> {
    Bundle::open(bundle_path(), HostKind::Natron).expect("load the GenFX bundle as Natron")
}

/// A picture whose every pixel differs from its neighbours and from the same
/// pixel of other frames, in [0, 1] with alpha 1; `salt` varies clips.
pub fn picture(width: u32, height: u32, frame: u32, salt: u32) -> Picture {
    let mut p = Picture::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let i = ((y * width + x) * 4) as usize;
            let h = (x * 7919 + y * 104_729 + frame * 1_299_709 + salt * 15_485_863) % 65_536;
            p.rgba[i] = h as f32 / 65_535.0;
            p.rgba[i + 1] = ((h * 3 + 11) % 65_536) as f32 / 65_535.0;
            p.rgba[i + 2] = (frame as f32 + 1.0) / 64.0;
            p.rgba[i + 3] = 1.0;
        }
    }
    p
}

pub fn clip(frames: u32, width: u32, height: u32, salt: u32) -> Arc<MemorySource> {
    Arc::new(MemorySource::new(
        0,
        (0..frames)
            .map(|f| picture(width, height, f, salt))
            .collect(),
    ))
}

/// An instance's input clips by name.
pub type Sources = BTreeMap<String, Arc<dyn FrameSource>>;

/// Fill's two inputs, nine frames each: `Before` salted `salt`, `After`
/// salted `salt + 1`; the map for the instance and the two clips.
pub fn fill_sources(
    width: u32,
    height: u32,
    salt: u32,
) -> (Sources, Arc<MemorySource>, Arc<MemorySource>) {
    let (before, after) = (
        clip(9, width, height, salt),
        clip(9, width, height, salt + 1),
    );
    let mut sources = Sources::new();
    sources.insert("Before".into(), before.clone());
    sources.insert("After".into(), after.clone());
    (sources, before, after)
}

/// The tiny random-weight model folder the tests render with.
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("tests/fixtures/pipeline/model")
}

/// An Extend instance on `source`, created (Describe..CreateInstance) only.
pub fn extend(bundle: &Arc<Bundle>, context: &str, source: Arc<MemorySource>) -> Arc<Instance> {
    let (w, h) = source.size();
    let (first, last) = source.range();
    let mut sources: BTreeMap<String, Arc<dyn FrameSource>> = BTreeMap::new();
    sources.insert("Source".into(), source);
    Instance::create(
        bundle,
        InstanceSpec {
            plugin: EXTEND.into(),
            context: context.into(),
            project: Project {
                width: w as f64,
                height: h as f64,
                fps: 24.0,
                duration: (last - first + 1) as f64,
            },
            sources,
            values: vec![],
        },
    )
    .expect("create an Extend instance")
}

/// Checks the host (this process) is alive and well after a hostile case:
/// a fresh instance still renders a real frame exactly.
pub fn still_healthy(bundle: &Arc<Bundle>) {
    let source = clip(3, 8, 6, 99);
    let instance = extend(bundle, GENERAL, source.clone());
    instance.clip_preferences().expect("clip preferences");
    let got = instance.render(1.0).expect("render a real frame");
    assert_eq!(got, *source.frame(1).unwrap().unwrap());
    instance.destroy().expect("destroy");
}

/// What a file in an output or cache folder holds, for comparing runs: a
/// frame's pixels (its Content Credentials differ per run: a new signature,
/// time and instance id each time), any other file's bytes. A frame that
/// cannot be decoded (torn) compares as its bytes.
pub fn content(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let picture = path
        .extension()
        .is_some_and(|e| e == "png" || e == "exr")
        .then(|| genfx_host::files::read(path).ok())
        .flatten();
    match picture {
        Some(p) => p
            .rgba
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        None => bytes,
    }
}
