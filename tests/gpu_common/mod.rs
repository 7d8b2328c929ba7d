//! Shared by the GPU tests (`tests/gpu_*.rs`): getting a GPU backend,
//! deterministic inputs, and the bf16 tolerance.
//!
//! Two ways to run, one set of tests:
//! - `cargo test` / `cargo xtask test` (any machine): the CUDA backend runs
//!   on the **emulated device** (`kernels/cuda-emu`): the real NVRTC compiles
//!   our kernels, the emulated driver runs them on the CPU through the SIMT
//!   emulator, and cuBLAS is emulated too. Nothing is skipped: a test that
//!   cannot open the emulated device fails.
//! - `cargo xtask test-gpu` (a machine with a card) sets
//!   `GENFX_GPU_TEST_REPORT`: the tests open the real driver, and each
//!   appends `ran NAME` or `skipped NAME: REASON` to that file; xtask fails
//!   the run when anything was skipped (unless `--allow-skip`).

#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;

use genfx::backend::cuda::dtype::Half;
use genfx::backend::cuda::{CudaBackend, GpuDevice};
pub use genfx_kernels_emu::device::EmulatedDevice;

pub const REPORT_ENV: &str = "GENFX_GPU_TEST_REPORT";

fn report(line: &str) {
    if let Some(path) = std::env::var_os(REPORT_ENV) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("GPU test report file");
        writeln!(f, "{line}").expect("write GPU test report");
    }
}

/// Whether this run is on a real card (`cargo xtask test-gpu`).
pub fn on_real_gpu() -> bool {
    std::env::var_os(REPORT_ENV).is_some()
}

/// The emulated device, loaded before anything probes for CUDA; `None` on a
/// real-GPU run.
pub fn emulator() -> Option<&'static EmulatedDevice> {
    if on_real_gpu() {
        return None;
    }
    Some(EmulatedDevice::install().unwrap_or_else(|e| panic!("emulated CUDA device: {e}")))
}

/// A CUDA backend on the default GPU: the emulated device, or on a
/// real-GPU run the card (`None` after recording a skip when there is none).
pub fn gpu_or_skip(test: &str) -> Option<Arc<CudaBackend>> {
    let emulated = emulator().is_some();
    let opened = GpuDevice::get(None).and_then(CudaBackend::new);
    match opened {
        Ok(b) => {
            report(&format!("ran {test}"));
            Some(Arc::new(b))
        }
        Err(e) if emulated => panic!("{test}: the emulated CUDA device did not open: {e}"),
        Err(e) => {
            let reason = match e.to_string() {
                r if r.starts_with("no CUDA driver/GPU") => r,
                r => format!("no CUDA driver/GPU: {r}"),
            };
            eprintln!("skipped {test}: {reason}");
            report(&format!("skipped {test}: {reason}"));
            None
        }
    }
}

/// Deterministic values in [-1, 1) (a 64-bit LCG; no rand crate needed).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Rounds f32 values to what `half` storage holds, so that the CPU reference
/// computes on exactly the GPU's inputs.
pub fn rounded(v: &[f32], half: Option<Half>) -> Vec<f32> {
    match half {
        None => v.to_vec(),
        Some(h) => h.decode_vec(&h.encode_vec(v)),
    }
}

/// Unit roundoff of the storage type: 2^-8 for bf16 (8 significant bits),
/// 2^-11 for f16 and, for f32 on the GPU, a budget for fast-math
/// transcendental functions and a different summation order (2^-17).
pub fn unit_roundoff(half: Option<Half>) -> f32 {
    match half {
        Some(Half::Bf16) => 1.0 / 256.0,
        Some(Half::F16) => 1.0 / 2048.0,
        None => 1.0 / 131072.0,
    }
}

/// Checks `got` (GPU) against `want` (CPU f32 on the same rounded inputs).
///
/// Tolerance per element: `2u·|want| + 4u·max|want|`. Why: with identical
/// inputs, the GPU's f32 accumulation differs from the CPU's only by f32
/// rounding (negligible next to u); the output is rounded once to storage
/// (≤ u relative). Ops that store an intermediate in 16 bits (attention's
/// probabilities, a normalised row before its affine terms) add a second
/// rounding of up to u relative to that intermediate, which after a
/// weighted sum is bounded by u times the largest output magnitude, and
/// cancellation can leave that next to a small result: hence the absolute
/// term scaled by the output's range.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], half: Option<Half>) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let u = unit_roundoff(half);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let mut worst = (0usize, 0f32, 0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        let err = (g - w).abs();
        let tol = 2.0 * u * w.abs() + 4.0 * u * scale;
        if err / tol > worst.2 {
            worst = (i, err, err / tol);
        }
    }
    let (i, err, ratio) = worst;
    assert!(
        ratio <= 1.0,
        "{what}: element {i}: GPU {} vs CPU {} (error {err:e}, {ratio:.2}x the tolerance; u = {u:e}, scale {scale})",
        got[i],
        want[i]
    );
}
