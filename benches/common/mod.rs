//! Shared by every benchmark: where the workspace is, which Python runs the
//! PyTorch half, medians, memory figures and writing test weights.

#![allow(dead_code)]

/// Timed as shipped: the allocator the plugin and `genfx` use (why: the workspace Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Python with torch (and diffusers/transformers) to run `tools/bench/*.py`.
pub const TORCH_PYTHON_ENV: &str = "GENFX_TORCH_PYTHON";
/// A copy of the workspace's `tools/` (holding `bench/*.py` and
/// `requirements.txt`), for a bench executable run away from its source
/// tree, e.g. from the GPU pack (`cargo xtask gpu-pack`).
pub const TOOLS_DIR_ENV: &str = "GENFX_TOOLS_DIR";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$GENFX_TOOLS_DIR` when set, else the workspace's `tools/`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => root().join("tools"),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The Python that runs the PyTorch half: `$GENFX_TORCH_PYTHON`, else
/// `.tools/bench-venv`, which is created from `tools/requirements.txt` when
/// `setup` is true (several minutes, once).
pub fn torch_python(setup: bool) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(TORCH_PYTHON_ENV) {
        return Ok(PathBuf::from(p));
    }
    let venv = root().join(".tools").join("bench-venv");
    let python = venv_python(&venv);
    if python.exists() {
        return Ok(python);
    }
    if !setup {
        return Err(format!(
            "no PyTorch: set {TORCH_PYTHON_ENV} or pass --setup to create {}",
            venv.display()
        ));
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
        .arg(tools_dir().join("requirements.txt"))
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if !installed.success() {
        return Err("pip install -r tools/requirements.txt failed".into());
    }
    Ok(python)
}

/// The median; the mean of the middle two for an even count.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A figure in KiB from /proc/self/status (e.g. `VmHWM`, the peak resident
/// size); None where the platform has no such file.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Deterministic uniform values in [-1, 1) (xorshift64), so both halves of a
/// comparison read the same weights without a random-number dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// A tensor to write: name, dims, values.
pub type Named = (String, Vec<usize>, Vec<f32>);

/// Writes f32 tensors (and optional metadata) as one safetensors file.
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &[Named],
    meta: Option<HashMap<String, String>>,
) {
    use safetensors::tensor::TensorView;
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, dims, _), b)| {
            let view = TensorView::new(safetensors::Dtype::F32, dims.clone(), b)
                .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, meta, path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Runs `tools/bench/<script>` with the PyTorch Python and parses the JSON
/// object its last line prints (a `"error"` member is returned as the error).
pub fn run_torch<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    setup: bool,
) -> Result<serde_json::Value, String> {
    let python = torch_python(setup)?;
    let path = tools_dir().join("bench").join(script);
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{script} failed ({}):\n{stderr}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(last)
        .map_err(|e| format!("{script} printed no JSON ({e}); stderr:\n{stderr}"))?;
    if let Some(err) = value.get("error") {
        return Err(format!("{script}: {err}"));
    }
    Ok(value)
}

/// The command line the CPU benchmarks' PyTorch halves share: model folder,
/// inputs file, thread and run counts, and where to write the output that
/// our side compares with.
pub fn cpu_torch_args(
    model: &Path,
    inputs: &Path,
    threads: usize,
    runs: usize,
    check: &Path,
) -> Vec<std::ffi::OsString> {
    vec![
        model.into(),
        inputs.into(),
        "--threads".into(),
        threads.to_string().into(),
        "--runs".into(),
        runs.to_string().into(),
        "--check".into(),
        check.into(),
    ]
}

/// Copies the model folder `src` to `dst` with every f32 tensor of its
/// safetensors files rounded to bf16 and stored as bf16 (other files copied):
/// the same model as a 16-bit checkpoint, to time the CPU with 16-bit
/// weights in memory (kept as stored, widened per operation).
pub fn bf16_model_copy(src: &Path, dst: &Path) {
    use safetensors::tensor::{Dtype, TensorView};
    use safetensors::SafeTensors;
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
    for entry in std::fs::read_dir(src).expect("model folder").flatten() {
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if from.extension().map_or(true, |e| e != "safetensors") {
            if from.is_file() {
                std::fs::copy(&from, &to).expect("copy");
            }
            continue;
        }
        let bytes = std::fs::read(&from).expect("read weights");
        let file = SafeTensors::deserialize(&bytes).expect("weights parse");
        let halves: Vec<(String, Vec<usize>, Vec<u8>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data = view
                    .data()
                    .chunks_exact(4)
                    .flat_map(|c| {
                        let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        half::bf16::from_f32(x).to_le_bytes()
                    })
                    .collect();
                (name, view.shape().to_vec(), data)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = halves
            .iter()
            .map(|(n, dims, b)| {
                let view = TensorView::new(Dtype::BF16, dims.clone(), b).expect("bf16 view");
                (n.clone(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, &to).expect("write bf16 weights");
    }
}
