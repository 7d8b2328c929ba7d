//! Embeds the CUDA kernels of `kernels/*.cu` in the engine.
//!
//! Each kernel file becomes one self-contained module source: our own
//! `#include "..."` headers are inlined and the emulator-only regions
//! (`#ifdef GENFX_SIMT`) are dropped, so NVRTC needs no include path at run
//! time. When nvcc is found (`NVCC`, `CUDA_PATH/bin`, `CUDA_HOME/bin`, or on
//! `PATH`) each module is also compiled to PTX for sm_80, sm_89 and sm_90 and
//! the PTX embedded; otherwise the CUDA backend compiles the sources with NVRTC
//! at first use.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHS: [&str; 3] = ["sm_80", "sm_89", "sm_90"];

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = root.join("kernels");
    println!("cargo:rerun-if-changed={}", kernels.display());
    for var in ["NVCC", "CUDA_PATH", "CUDA_HOME", "PATH", "GENFX_NO_NVCC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "cu"));
    files.sort();

    let nvcc = find_nvcc();
    let mut generated = String::from("pub const MODULES: &[KernelModule] = &[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("kernel file names are UTF-8");
        let mut seen = HashSet::new();
        let source = match amalgamate(file, &mut seen) {
            Ok(s) => s,
            Err(e) => panic!("kernels/{name}.cu: {e}"),
        };
        let source_path = out.join(format!("{name}.cu"));
        std::fs::write(&source_path, &source).expect("OUT_DIR is writable");

        let mut ptx_entries = String::new();
        if let Some(nvcc) = &nvcc {
            for arch in ARCHS {
                let ptx_path = out.join(format!("{name}.{arch}.ptx"));
                match compile_ptx(nvcc, &source_path, &ptx_path, arch) {
                    Ok(()) => {
                        let _ = write!(
                            ptx_entries,
                            "(\"{arch}\", include_str!({:?})), ",
                            ptx_path.display().to_string()
                        );
                    }
                    Err(e) => {
                        println!("cargo:warning=nvcc could not compile kernels/{name}.cu for {arch} ({e}); NVRTC will compile it at run time");
                        ptx_entries.clear();
                        break;
                    }
                }
            }
        }
        let _ = writeln!(
            generated,
            "    KernelModule {{ name: {name:?}, source: include_str!({:?}), ptx: &[{ptx_entries}] }},",
            source_path.display().to_string()
        );
    }
    generated.push_str("];\n");
    let _ = writeln!(
        generated,
        "pub const PTX_FROM_NVCC: bool = {};",
        nvcc.is_some()
    );
    std::fs::write(out.join("kernels_embedded.rs"), generated).expect("OUT_DIR is writable");
}

/// Inlines `#include "local.cuh"` (once each) and drops the emulator-only
/// branches of `#ifdef GENFX_SIMT` / `#ifndef GENFX_SIMT` blocks.
fn amalgamate(file: &Path, seen: &mut HashSet<PathBuf>) -> Result<String, String> {
    let canonical = file
        .canonicalize()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if !seen.insert(canonical) {
        return Ok(String::new());
    }
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut out = String::new();
    // Stack of open conditionals: Some(keep) for a GENFX_SIMT one (keep =
    // whether the current branch is the CUDA one), None for any other.
    let mut stack: Vec<Option<bool>> = Vec::new();
    let keeping = |stack: &[Option<bool>]| stack.iter().all(|s| s.unwrap_or(true));
    for line in text.lines() {
        let t = line.trim_start();
        let directive = t.strip_prefix('#').map(str::trim_start);
        match directive {
            Some(d) if d.starts_with("ifdef GENFX_SIMT") => {
                stack.push(Some(false));
                continue;
            }
            Some(d) if d.starts_with("ifndef GENFX_SIMT") => {
                stack.push(Some(true));
                continue;
            }
            Some(d) if d.starts_with("if") => stack.push(None),
            Some(d) if d.starts_with("else") => {
                if let Some(Some(keep)) = stack.last_mut() {
                    *keep = !*keep;
                    continue;
                }
            }
            Some(d) if d.starts_with("endif") => {
                if let Some(Some(_)) = stack.pop() {
                    continue;
                }
            }
            _ => {}
        }
        if !keeping(&stack) {
            continue;
        }
        if let Some(d) = directive {
            if d.starts_with("pragma once") {
                continue;
            }
            if let Some(rest) = d.strip_prefix("include") {
                let rest = rest.trim();
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    out.push_str(&amalgamate(&dir.join(name), seen)?);
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if !stack.is_empty() {
        return Err(format!("{}: unbalanced #if/#endif", file.display()));
    }
    Ok(out)
}

fn find_nvcc() -> Option<PathBuf> {
    if std::env::var_os("GENFX_NO_NVCC").is_some() {
        return None;
    }
    let works = |p: &Path| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(p) = std::env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return works(&p).then_some(p);
    }
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Some(root) = std::env::var_os(var) {
            let p = PathBuf::from(root).join("bin").join("nvcc");
            if works(&p) {
                return Some(p);
            }
        }
    }
    let p = PathBuf::from("nvcc");
    works(&p).then_some(p)
}

fn compile_ptx(nvcc: &Path, source: &Path, ptx: &Path, arch: &str) -> Result<(), String> {
    let output = Command::new(nvcc)
        .args(["-ptx", "-std=c++17", "-O3", "-Werror", "all-warnings"])
        .arg(format!("-arch={arch}"))
        .arg("-o")
        .arg(ptx)
        .arg(source)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}
