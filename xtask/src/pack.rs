//! `cargo xtask gpu-pack [--out DIR] [--check [--budget SECS]]`: everything a
//! rarely lent GPU machine (CUDA, PyTorch and Transformers, but no Rust
//! toolchain and no network) needs to run the GPU tests and benchmarks of
//! this build, in one folder (default `target/gpu-pack/`) of under 60 MiB:
//!
//! ```text
//! run.sh              the runner (from xtask/pack/run.sh): bash run.sh [--emulated] BUDGET_SECONDS
//! MANIFEST.txt        files, sizes, commit, how to run
//! bin.tar.gz          bin/tests/gpu_*: stripped release builds of the GPU test
//!                     targets; bin/benches/*: stripped builds of the GPU bench
//!                     targets (`*_gpu`, `gpu_*`); run.sh unpacks it

//! lib/*.so            the emulated CUDA driver, cuBLAS and cuBLASLt, for --emulated
//! fixtures/           tests/fixtures
//! tools/bench/*.py    the PyTorch halves of the benchmarks, and requirements.txt
//! wheels/*.whl        diffusers (as pinned in tools/requirements.txt) and what
//!                     it needs beyond a PyTorch + Transformers machine
//! ```
//!
//! `--check` then runs `run.sh --emulated` here against the packed emulated
//! driver (results in `target/gpu-pack-out/`) and fails when it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::setup;
use crate::util::{cargo, exec, root};

/// The pack may not be larger than this (the device machine takes 64 MiB).
const MAX_PACK_BYTES: u64 = 60 * 1024 * 1024;
/// Default time budget of `--check`'s emulated run, in seconds.
const DEFAULT_CHECK_BUDGET: u64 = 1500;
/// Wheels that diffusers needs and a PyTorch + Transformers machine may lack
/// (pure Python). Pillow, also needed, is left out: it is binary per Python
/// version, and torchvision machines have it.
const EXTRA_WHEELS: [&str; 2] = ["importlib_metadata==10.2.0", "zipp==4.1.2"];
const RUN_SH: &str = include_str!("../pack/run.sh");

struct Options {
    out: PathBuf,
    check: bool,
    budget: u64,
}

/// A GPU test or bench target and the stripped executable built for it.
struct Binary {
    name: String,
    path: PathBuf,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse_args(args)?;
    let (tests, benches) = gpu_targets()?;
    if tests.is_empty() {
        return Err("no GPU test targets (tests/gpu_*.rs) found".into());
    }
    let strip = strip_tool();
    let build_env = build_env(strip.is_some());
    let emulator = build_emulator(&build_env)?;
    let test_bins = build_tests(&tests, &build_env)?;
    let bench_bins = build_benches(&benches, &build_env)?;
    let wheels = fetch_wheels()?;

    let out = &options.out;
    reset_dir(out)?;
    copy_binaries(&test_bins, &out.join("bin").join("tests"), strip.as_deref())?;
    copy_binaries(
        &bench_bins,
        &out.join("bin").join("benches"),
        strip.as_deref(),
    )?;
    // The binaries compress about threefold; they travel as one archive
    // that run.sh unpacks, so the pack stays under the device's limit.
    compress_dir(out, "bin")?;
    copy_binaries(&emulator, &out.join("lib"), strip.as_deref())?;
    copy_tree(
        &root().join("tests").join("fixtures"),
        &out.join("fixtures"),
    )?;
    copy_bench_tools(&out.join("tools"))?;
    copy_files(&wheels, &out.join("wheels"))?;
    let commit = git_commit();
    write_run_sh(out, &commit)?;
    let total = write_manifest(out, &commit)?;
    report_size(out, total)?;

    if options.check {
        check(out, options.budget)?;
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        out: root().join("target").join("gpu-pack"),
        check: false,
        budget: DEFAULT_CHECK_BUDGET,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => {
                let dir = args.next().ok_or("--out needs a folder")?;
                options.out = std::path::absolute(dir).map_err(|e| format!("{dir}: {e}"))?;
            }
            "--check" => options.check = true,
            "--budget" => {
                let secs = args.next().ok_or("--budget needs seconds")?;
                options.budget = secs
                    .parse()
                    .map_err(|_| format!("--budget {secs}: not a number of seconds"))?;
            }
            other => return Err(format!("gpu-pack: unknown argument '{other}'")),
        }
    }
    Ok(options)
}

/// The engine's GPU test targets (`gpu_*`) and GPU bench targets (`*_gpu`,
/// `gpu_*`), by name, as `cargo metadata` lists them.
fn gpu_targets() -> Result<(Vec<String>, Vec<String>), String> {
    let mut metadata = cargo();
    metadata.args(["metadata", "--no-deps", "--format-version", "1"]);
    let output = metadata
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed with {}", output.status));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let engine = json["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "genfx"))
        .ok_or("cargo metadata lists no package genfx")?;
    let (mut tests, mut benches) = (Vec::new(), Vec::new());
    for target in engine["targets"].as_array().into_iter().flatten() {
        let name = target["name"].as_str().unwrap_or_default().to_string();
        let is = |kind: &str| {
            target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == kind))
        };
        if is("test") && name.starts_with("gpu_") {
            tests.push(name);
        } else if is("bench") && (name.starts_with("gpu_") || name.ends_with("_gpu")) {
            benches.push(name);
        }
    }
    tests.sort();
    benches.sort();
    Ok((tests, benches))
}

/// `strip`, when this machine has one.
fn strip_tool() -> Option<PathBuf> {
    let found = Command::new("strip")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| PathBuf::from("strip"))
}

/// Environment for the release builds. With `strip` at hand none: the
/// builds are cargo's usual release builds (`debug = 1`), shared with every
/// other release build, and the copies are stripped. Without it, cargo
/// strips (a different profile, so those builds are not shared).
fn build_env(have_strip: bool) -> Vec<(&'static str, &'static str)> {
    if have_strip {
        Vec::new()
    } else {
        eprintln!("xtask: no strip here; building with debug info off and symbols stripped");
        vec![
            ("CARGO_PROFILE_RELEASE_DEBUG", "0"),
            ("CARGO_PROFILE_RELEASE_STRIP", "symbols"),
        ]
    }
}

/// Runs a cargo build with `--message-format=json-render-diagnostics` and
/// returns, per target name, the files of its `compiler-artifact` messages:
/// the executable when there is one, else every file named.
fn cargo_artifacts(mut command: Command) -> Result<BTreeMap<String, Vec<PathBuf>>, String> {
    command
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    eprintln!("$ {command:?}");
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("cargo's stdout")?;
    let mut artifacts: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let name = message["target"]["name"].as_str().unwrap_or_default();
        let files: Vec<PathBuf> = match message["executable"].as_str() {
            Some(exe) => vec![PathBuf::from(exe)],
            None => message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect(),
        };
        artifacts.entry(name.to_string()).or_default().extend(files);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{command:?} failed with {status}"));
    }
    Ok(artifacts)
}

/// The one file of target `name` that `pick` accepts.
fn artifact(
    artifacts: &BTreeMap<String, Vec<PathBuf>>,
    name: &str,
    pick: impl Fn(&Path) -> bool,
) -> Result<Binary, String> {
    artifacts
        .get(name)
        .into_iter()
        .flatten()
        .find(|p| pick(p))
        .map(|p| Binary {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: p.clone(),
        })
        .ok_or_else(|| format!("cargo built no file for target {name}"))
}

/// Release builds of the emulated driver, cuBLAS and cuBLASLt (shared
/// libraries).
fn build_emulator(env: &[(&str, &str)]) -> Result<Vec<Binary>, String> {
    let mut build = cargo();
    build
        .args([
            "build",
            "--release",
            "-p",
            "genfx-cuda-emu",
            "-p",
            "genfx-cublas-emu",
            "-p",
            "genfx-cublaslt-emu",
        ])
        .envs(env.iter().copied());
    let artifacts = cargo_artifacts(build)?;
    let is_library = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(std::env::consts::DLL_SUFFIX))
    };
    ["genfx_cuda_emu", "genfx_cublas_emu", "genfx_cublaslt_emu"]
        .iter()
        .map(|name| artifact(&artifacts, name, is_library))
        .collect()
}

/// Release builds of the GPU test targets, named by target.
fn build_tests(names: &[String], env: &[(&str, &str)]) -> Result<Vec<Binary>, String> {
    let mut build = cargo();
    build.args(["test", "--release", "--no-run", "-p", "genfx"]);
    for name in names {
        build.args(["--test", name]);
    }
    build.envs(env.iter().copied());
    named_executables(cargo_artifacts(build)?, names)
}

/// Builds of the GPU bench targets (cargo's bench profile), named by target.
fn build_benches(names: &[String], env: &[(&str, &str)]) -> Result<Vec<Binary>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut build = cargo();
    build.args(["bench", "--no-run", "-p", "genfx"]);
    for name in names {
        build.args(["--bench", name]);
    }
    build.envs(env.iter().copied());
    named_executables(cargo_artifacts(build)?, names)
}

/// Each target's executable, under the target's name (no hash).
fn named_executables(
    artifacts: BTreeMap<String, Vec<PathBuf>>,
    names: &[String],
) -> Result<Vec<Binary>, String> {
    names
        .iter()
        .map(|name| {
            let found = artifact(&artifacts, name, |_| true)?;
            Ok(Binary {
                name: name.clone(),
                path: found.path,
            })
        })
        .collect()
}

/// The diffusers pin of tools/requirements.txt (`diffusers==X`).
fn diffusers_pin() -> Result<String, String> {
    let path = root().join("tools").join("requirements.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("diffusers=="))
        .map(str::to_string)
        .ok_or_else(|| format!("{} pins no diffusers==VERSION", path.display()))
}

/// The wheels to pack, from `target/gpu-pack-wheels/` (downloaded with pip
/// once; later packs need no network).
fn fetch_wheels() -> Result<Vec<PathBuf>, String> {
    let cache = root().join("target").join("gpu-pack-wheels");
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let mut specs = vec![diffusers_pin()?];
    specs.extend(EXTRA_WHEELS.iter().map(|s| s.to_string()));
    let mut wheels = Vec::new();
    for spec in &specs {
        let wheel = match cached_wheel(&cache, spec) {
            Some(w) => w,
            None => {
                download_wheel(&cache, spec)?;
                cached_wheel(&cache, spec)
                    .ok_or_else(|| format!("pip downloaded no wheel for {spec}"))?
            }
        };
        wheels.push(wheel);
    }
    Ok(wheels)
}

/// The wheel for `name==version` in `dir`, if there is one.
fn cached_wheel(dir: &Path, spec: &str) -> Option<PathBuf> {
    let (name, version) = spec.split_once("==")?;
    let prefix = format!("{}-{version}-", name.replace('-', "_")).to_lowercase();
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
        })
}

fn download_wheel(dir: &Path, spec: &str) -> Result<(), String> {
    let python = setup::python_with_pip().ok_or("no python with pip to download wheels")?;
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
    ])
    .arg(dir)
    .arg(spec);
    exec(pip)
}

/// Empties (or creates) the pack folder.
fn reset_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Copies each binary into `dir` under its name, stripped with `strip`
/// when given (executables of all symbols, libraries of what linking
/// does not need).
fn copy_binaries(bins: &[Binary], dir: &Path, strip: Option<&Path>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for bin in bins {
        let dest = dir.join(&bin.name);
        match strip {
            Some(tool) => {
                let library = bin.name.ends_with(std::env::consts::DLL_SUFFIX);
                let mut command = Command::new(tool);
                command
                    .arg(if library {
                        "--strip-unneeded"
                    } else {
                        "--strip-all"
                    })
                    .arg("-o")
                    .arg(&dest)
                    .arg(&bin.path);
                exec(command)?;
            }
            None => {
                std::fs::copy(&bin.path, &dest)
                    .map_err(|e| format!("copying {}: {e}", bin.path.display()))?;
            }
        }
    }
    Ok(())
}

/// Copies the folder `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            std::fs::copy(&path, &dest).map_err(|e| format!("copying {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Copies files into `dir` under their names.
fn copy_files(files: &[PathBuf], dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for file in files {
        let name = file.file_name().ok_or("a file without a name")?;
        std::fs::copy(file, dir.join(name))
            .map_err(|e| format!("copying {}: {e}", file.display()))?;
    }
    Ok(())
}

/// `tools/bench/*.py` and `tools/requirements.txt`, which the benches find
/// through `$GENFX_TOOLS_DIR` (benches/common/mod.rs).
fn copy_bench_tools(to: &Path) -> Result<(), String> {
    let tools = root().join("tools");
    let bench = tools.join("bench");
    let scripts: Vec<PathBuf> = std::fs::read_dir(&bench)
        .map_err(|e| format!("{}: {e}", bench.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    copy_files(&scripts, &to.join("bench"))?;
    copy_files(&[tools.join("requirements.txt")], to)
}

/// The commit the pack is built from, `-dirty` when the tree has changes.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

fn write_run_sh(dir: &Path, commit: &str) -> Result<(), String> {
    let path = dir.join("run.sh");
    std::fs::write(&path, RUN_SH.replace("@GENFX_COMMIT@", commit))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Every file under `dir`, relative to it, with its size, in name order.
fn list_files(dir: &Path) -> Result<Vec<(String, u64)>, String> {
    fn walk(base: &Path, dir: &Path, files: &mut Vec<(String, u64)>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(base, &path, files)?;
            } else {
                let size = path.metadata().map_err(|e| e.to_string())?.len();
                let rel = path.strip_prefix(base).unwrap_or(&path);
                files.push((rel.display().to_string(), size));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// Writes MANIFEST.txt (how to run, commit, every file and its size) and
/// returns the pack's total size, the manifest included.
fn write_manifest(dir: &Path, commit: &str) -> Result<u64, String> {
    let files = list_files(dir)?;
    let mut text = format!(
        "GenFX GPU pack (cargo xtask gpu-pack), commit {commit}\n\
         \n\
         On a machine with an NVIDIA GPU, CUDA's NVRTC (the toolkit, or the pip wheel\n\
         PyTorch brings), PyTorch and Transformers; no Rust toolchain or network needed:\n\
         \n\
         \x20   OUT=/some/dir bash run.sh 540          # time budget in seconds\n\
         \x20   OUT=/some/dir bash run.sh --emulated 300   # on the packed emulated driver\n\
         \n\
         Results go to $OUT (default ./out): summary.txt, report.txt, tests.log,\n\
         benches.log, figures.jsonl, nvidia-smi.txt, genfx.log. run.sh exits 1 when a\n\
         test failed, or on a card was skipped, or a benchmark gave no figures.\n\
         Set GENFX_NVRTC_LIB to choose NVRTC, GENFX_TORCH_PYTHON to choose Python.\n\
         \n\
         Files:\n"
    );
    let mut total = 0;
    for (name, size) in &files {
        text.push_str(&format!("{size:>12}  {name}\n"));
        total += size;
    }
    text.push_str(&format!("{total:>12}  total, without this file\n"));
    let path = dir.join("MANIFEST.txt");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(total + text.len() as u64)
}

/// Replaces `dir/name/` with `dir/name.tar.gz` (gzip: on every machine
/// that has tar).
fn compress_dir(dir: &Path, name: &str) -> Result<(), String> {
    let archive = format!("{name}.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(dir.join(&archive))
        .arg("-C")
        .arg(dir)
        .arg(name)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar could not write {archive}"));
    }
    std::fs::remove_dir_all(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

/// Prints the pack's size and fails when it is over the limit.
fn report_size(dir: &Path, total: u64) -> Result<(), String> {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "gpu-pack: {} is {:.1} MiB (limit {:.0} MiB)",
        dir.display(),
        mib(total),
        mib(MAX_PACK_BYTES)
    );
    if total > MAX_PACK_BYTES {
        return Err(format!(
            "the pack is {:.1} MiB, over the {:.0} MiB limit",
            mib(total),
            mib(MAX_PACK_BYTES)
        ));
    }
    Ok(())
}

/// Runs the pack here on the emulated driver, with this machine's NVRTC.
fn check(pack: &Path, budget: u64) -> Result<(), String> {
    let out = root().join("target").join("gpu-pack-out");
    let mut run = Command::new("bash");
    run.arg(pack.join("run.sh"))
        .arg("--emulated")
        .arg(budget.to_string())
        .env("OUT", &out)
        .current_dir(root().join("target"));
    if std::env::var_os("GENFX_NVRTC_LIB").is_none() {
        match setup::ensure_nvrtc() {
            Ok(lib) => {
                run.env("GENFX_NVRTC_LIB", lib);
            }
            Err(e) => eprintln!("xtask: warning: {e}; run.sh will search for NVRTC"),
        }
    }
    exec(run).map_err(|e| format!("{e}; see {}/summary.txt", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_wheel_is_found_by_its_normalised_name_and_exact_version() {
        let dir = std::env::temp_dir().join(format!("xtask-wheels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "importlib_metadata-10.2.0-py3-none-any.whl",
            "diffusers-0.42.10-py3-none-any.whl",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert!(cached_wheel(&dir, "importlib-metadata==10.2.0").is_some());
        assert!(cached_wheel(&dir, "importlib_metadata==10.2").is_none());
        assert!(cached_wheel(&dir, "diffusers==0.42.1").is_none());
        assert!(cached_wheel(&dir, "diffusers").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arguments_set_the_folder_check_and_budget() {
        let args: Vec<String> = ["--out", "/tmp/p", "--check", "--budget", "90"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_args(&args).unwrap();
        assert_eq!(options.out, PathBuf::from("/tmp/p"));
        assert!(options.check);
        assert_eq!(options.budget, 90);
        assert!(parse_args(&["--budget".into(), "soon".into()]).is_err());
        assert!(parse_args(&["--tar".into()]).is_err());
    }

    #[test]
    fn the_runner_template_has_its_commit_placeholder() {
        assert!(RUN_SH.contains("@GENFX_COMMIT@"));
        assert!(RUN_SH.starts_with("#!/usr/bin/env bash"));
    }
}
