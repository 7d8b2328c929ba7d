//! Installs what the tests need on a fresh machine, into `.tools/` (ignored).
//!
//! NVRTC: the `nvidia-cuda-nvrtc` and `nvidia-cuda-runtime` wheels from PyPI,
//! installed with pip into `.tools/cuda`, so that the test that compiles every
//! kernel with NVRTC runs in CI without a CUDA toolkit (and without a GPU).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{cargo, exec, root};

/// NVRTC wheels, pinned to the CUDA 13 series (the `nvidia/cu13` layout).
const NVRTC_WHEELS: [&str; 2] = ["nvidia-cuda-nvrtc>=13,<14", "nvidia-cuda-runtime>=13,<14"];

/// Environment for the tests: `GENFX_NVRTC_LIB` naming the installed NVRTC.
pub fn prepare() -> Result<Vec<(String, String)>, String> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match ensure_nvrtc() {
        Ok(lib) => Ok(vec![("GENFX_NVRTC_LIB".into(), lib.display().to_string())]),
        Err(e) if in_ci => Err(e),
        Err(e) => {
            eprintln!("xtask: warning: {e}; the NVRTC kernel test will report itself skipped");
            Ok(Vec::new())
        }
    }
}

fn tools_dir() -> PathBuf {
    root().join(".tools").join("cuda")
}

fn find_nvrtc(dir: &Path) -> Option<PathBuf> {
    let lib = dir.join("nvidia").join("cu13").join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc.so") && !n.contains("builtins"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The first of `python3` and `python` that can run pip.
pub fn python_with_pip() -> Option<&'static str> {
    ["python3", "python"].into_iter().find(|p| {
        Command::new(p)
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The NVRTC library, installing the wheels first when they are missing.
pub fn ensure_nvrtc() -> Result<PathBuf, String> {
    let dir = tools_dir();
    if let Some(lib) = find_nvrtc(&dir) {
        return Ok(lib);
    }
    let python = python_with_pip().ok_or("no python with pip found to install the NVRTC wheels")?;
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--upgrade",
        "--target",
    ])
    .arg(&dir)
    .args(NVRTC_WHEELS);
    exec(pip)?;
    find_nvrtc(&dir).ok_or_else(|| {
        format!(
            "NVRTC wheels installed but no libnvrtc under {}",
            dir.display()
        )
    })
}

/// Builds the emulated CUDA driver, cuBLAS and cuBLASLt (`kernels/cuda-emu`,
/// `kernels/cublas-emu`, `kernels/cublaslt-emu`) and names them for the GPU tests, which then run
/// the CUDA backend on the CPU. Built here once, with the workspace's
/// features, rather than by each test binary.
pub fn emulated_device() -> Result<Vec<(String, String)>, String> {
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "genfx-cuda-emu",
        "-p",
        "genfx-cublas-emu",
        "-p",
        "genfx-cublaslt-emu",
    ]);
    exec(build)?;
    let dir = root().join("target").join("debug");
    let lib = |stem: &str| {
        dir.join(format!(
            "{}{stem}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
        .display()
        .to_string()
    };
    Ok(vec![
        ("GENFX_CUDA_DRIVER_LIB".into(), lib("genfx_cuda_emu")),
        ("GENFX_CUBLAS_LIB".into(), lib("genfx_cublas_emu")),
        ("GENFX_CUBLASLT_LIB".into(), lib("genfx_cublaslt_emu")),
        // exact-size device buffers, so that the emulator's bounds checks
        // see an allocation that is short by a few bytes
        ("GENFX_CUDA_NO_CACHING".into(), "1".into()),
    ])
}
