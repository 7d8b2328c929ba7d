//! `cargo xtask bundle` and `cargo xtask install`.
//!
//! An OpenFX bundle is a folder: `GenFX.ofx.bundle/Contents/<arch>/GenFX.ofx`,
//! where `<arch>` is `Linux-x86-64`, `Win64` or `MacOS` and `GenFX.ofx` is the
//! plugin's shared library renamed.

use crate::util::{cargo, exec, root};
use std::path::{Path, PathBuf};

pub const BUNDLE_NAME: &str = "GenFX.ofx.bundle";

/// The bundle's architecture folder for the platform we build on; the
/// same rule as `genfx_host::bundle::arch_dir`, which loads what this writes
/// (xtask stays free of the host crate so that it builds quickly).
pub fn arch_dir() -> &'static str {
    if cfg!(target_os = "windows") {
        "Win64"
    } else if cfg!(target_os = "macos") {
        "MacOS"
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        "Linux-arm64"
    } else {
        "Linux-x86-64"
    }
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// Where `cargo xtask bundle` writes the bundle.
pub fn bundle_dir() -> PathBuf {
    target_dir().join("bundle").join(BUNDLE_NAME)
}

fn info_plist() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>CFBundleDevelopmentRegion</key><string>English</string>
  <key>CFBundleExecutable</key><string>GenFX.ofx</string>
  <key>CFBundleIdentifier</key><string>org.genfx.ofx</string>
  <key>CFBundleInfoDictionaryVersion</key><string>6.0</string>
  <key>CFBundleName</key><string>GenFX</string>
  <key>CFBundlePackageType</key><string>BNDL</string>
  <key>CFBundleShortVersionString</key><string>{v}</string>
  <key>CFBundleVersion</key><string>{v}</string>
</dict>
</plist>
"#,
        v = env!("CARGO_PKG_VERSION")
    )
}

/// Builds the plugin in release mode and lays out the bundle.
pub fn bundle() -> Result<PathBuf, String> {
    let mut build = cargo();
    build.args(["build", "--release", "-p", "genfx-ofx", "--lib"]);
    exec(build)?;
    let library = target_dir().join("release").join(format!(
        "{}genfx_ofx{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let bundle = bundle_dir();
    let contents = bundle.join("Contents");
    let arch = contents.join(arch_dir());
    std::fs::create_dir_all(&arch).map_err(|e| format!("{}: {e}", arch.display()))?;
    let binary = arch.join("GenFX.ofx");
    // Copy to a temporary name and rename, so a host scanning the folder never
    // sees half a file.
    let partial = arch.join("GenFX.ofx.partial");
    std::fs::copy(&library, &partial)
        .map_err(|e| format!("copy {} -> {}: {e}", library.display(), partial.display()))?;
    std::fs::rename(&partial, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    std::fs::write(contents.join("Info.plist"), info_plist())
        .map_err(|e| format!("Info.plist: {e}"))?;
    eprintln!("bundle: {}", binary.display());
    Ok(bundle)
}

/// The system-wide OpenFX plugin folder of this platform.
pub fn default_prefix() -> PathBuf {
    if cfg!(target_os = "windows") {
        PathBuf::from(r"C:\Program Files\Common Files\OFX\Plugins")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/OFX/Plugins")
    } else {
        PathBuf::from("/usr/OFX/Plugins")
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{} -> {}: {e}", entry.path().display(), target.display()))?;
        }
    }
    Ok(())
}

pub fn install(args: &[String]) -> Result<(), String> {
    let prefix = match args {
        [] => default_prefix(),
        [flag, dir] if flag == "--prefix" => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask install [--prefix DIR]".into()),
    };
    let bundle = bundle()?;
    let target = prefix.join(BUNDLE_NAME);
    copy_tree(&bundle, &target).map_err(|e| {
        format!("{e}\n(installing to {} may need administrator rights; or use --prefix DIR and add DIR to OFX_PLUGIN_PATH)", prefix.display())
    })?;
    println!("installed {}", target.display());
    Ok(())
}
