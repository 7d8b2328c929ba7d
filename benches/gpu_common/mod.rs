//! Shared by the GPU benchmarks: timing with CUDA events, and running the
//! PyTorch half of a comparison on the same card.

#![allow(dead_code)]

use genfx::backend::cuda::CudaBackend;

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

/// Runs a PyTorch half on the same card, setting up its Python if needed.
pub fn run_torch(script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    crate::common::run_torch(script, args, true)
}
