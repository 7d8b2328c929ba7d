//! `cargo xtask test-gpu [--allow-skip] [-- TEST ARGS]`: every CUDA-vs-CPU
//! test (`tests/gpu_*.rs`) on the real card. (`cargo xtask test` runs the
//! same tests on the emulated device.)
//!
//! Each GPU test records in a report file whether it ran on a GPU or was
//! skipped and why. A run where anything was skipped fails (exit 1) and says
//! so plainly, unless `--allow-skip` is given: then it still prints that
//! nothing (or not everything) ran on a GPU, and exits 0. A GPU test run by
//! hand without the report file runs on the emulated device instead, so no
//! path lets a GPU test pass silently without having run.

use std::path::PathBuf;

use crate::util::{cargo, exec, root};

/// Must match `REPORT_ENV` in `tests/gpu_common/mod.rs`.
const REPORT_ENV: &str = "GENFX_GPU_TEST_REPORT";

/// The GPU test targets (file stems under `tests/`).
fn gpu_tests() -> Result<Vec<String>, String> {
    let dir = root().join("tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs")?;
            stem.starts_with("gpu_").then(|| stem.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let allow_skip = args.iter().any(|a| a == "--allow-skip");
    let passthrough: Vec<&String> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    let tests = gpu_tests()?;
    if tests.is_empty() {
        return Err("no tests/gpu_*.rs found".into());
    }
    let report: PathBuf = root().join("target").join("gpu-test-report.txt");
    std::fs::create_dir_all(root().join("target")).map_err(|e| e.to_string())?;
    std::fs::write(&report, "").map_err(|e| format!("{}: {e}", report.display()))?;

    let mut test = cargo();
    test.args(["test", "-p", "genfx"]);
    for t in &tests {
        test.args(["--test", t]);
    }
    // one test at a time: they share the GPU and time their kernels
    test.args(["--", "--test-threads=1"])
        .args(passthrough)
        .env(REPORT_ENV, &report);
    exec(test)?;

    let text =
        std::fs::read_to_string(&report).map_err(|e| format!("{}: {e}", report.display()))?;
    let ran = text.lines().filter(|l| l.starts_with("ran ")).count();
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("skipped ")).collect();
    if ran == 0 && skipped.is_empty() {
        return Err("no GPU test reported anything (filtered out?)".into());
    }
    if skipped.is_empty() {
        eprintln!("test-gpu: all {ran} GPU tests ran on a GPU and passed");
        return Ok(());
    }
    let first_reason = skipped[0]
        .split_once(": ")
        .map(|(_, r)| r)
        .unwrap_or("unknown");
    let what = if ran == 0 {
        format!(
            "NOTHING RAN ON A GPU: all {} GPU tests were skipped",
            skipped.len()
        )
    } else {
        format!("only {ran} GPU tests ran; {} were skipped", skipped.len())
    };
    eprintln!("test-gpu: {what} (skipped: {first_reason})");
    for line in &skipped {
        eprintln!("  {line}");
    }
    if allow_skip {
        eprintln!("test-gpu: --allow-skip given, exiting 0 although tests were skipped");
        Ok(())
    } else {
        Err(format!("{what}; pass --allow-skip to accept that"))
    }
}
