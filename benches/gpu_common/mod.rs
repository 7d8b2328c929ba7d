//! Shared by the GPU benchmarks: timing with CUDA events, and running the
//! PyTorch half of a comparison on the same card.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use genfx::backend::cuda::CudaBackend;

/// Python with torch (and diffusers) to run `tools/bench/*.py`; else the
/// benchmark sets up `.tools/bench-venv` from `tools/requirements.txt`.
pub const TORCH_PYTHON_ENV: &str = "GENFX_TORCH_PYTHON";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Ends a benchmark that cannot run here: a clear line, then the JSON line.
pub fn no_gpu(bench: &str, reason: &str) -> ! {
    let reason = reason
        .strip_prefix("no CUDA driver/GPU: ")
        .unwrap_or(reason);
    println!("{bench}: no CUDA driver/GPU ({reason}); nothing was measured");
    println!(
        "{}",
        serde_json::json!({"bench": bench, "skipped": format!("no CUDA driver/GPU: {reason}")})
    );
    std::process::exit(2);
}

/// Median milliseconds of `iters` runs of `f` on the backend's stream,
/// timed by CUDA events after `warmup` runs.
pub fn time_ms(
    gpu: &CudaBackend,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut(),
) -> Result<f64, String> {
    for _ in 0..warmup {
        f();
    }
    gpu.synchronize().map_err(|e| e.to_string())?;
    let ctx = gpu.device().context();
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = ctx.new_event(None).map_err(|e| format!("{e:?}"))?;
        let end = ctx.new_event(None).map_err(|e| format!("{e:?}"))?;
        start.record(gpu.stream()).map_err(|e| format!("{e:?}"))?;
        f();
        end.record(gpu.stream()).map_err(|e| format!("{e:?}"))?;
        end.synchronize().map_err(|e| format!("{e:?}"))?;
        times.push(start.elapsed_ms(&end).map_err(|e| format!("{e:?}"))? as f64);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The Python to run the PyTorch half with.
pub fn torch_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(TORCH_PYTHON_ENV) {
        return Ok(PathBuf::from(p));
    }
    let venv = root().join(".tools").join("bench-venv");
    let python = venv_python(&venv);
    if python.exists() {
        return Ok(python);
    }
    println!(
        "setting up {} from tools/requirements.txt (set {TORCH_PYTHON_ENV} to skip)",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.success() {
        return Err(format!("python3 -m venv {} failed", venv.display()));
    }
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "-r"])
        .arg(root().join("tools").join("requirements.txt"))
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !installed.success() {
        return Err("pip install -r tools/requirements.txt failed".into());
    }
    Ok(python)
}

/// Runs `tools/bench/<script>` and parses the JSON of its last line.
pub fn run_torch(script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let python = torch_python()?;
    let path = root().join("tools").join("bench").join(script);
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(last).map_err(|e| {
        format!(
            "{script} printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(err) = value.get("error") {
        return Err(format!("{script}: {err}"));
    }
    Ok(value)
}
