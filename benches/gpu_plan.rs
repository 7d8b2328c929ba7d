//! `cargo xtask bench gpu-plan`: the shape of the GPU path of a full-size
//! shot, on a machine without a GPU.
//!
//! The real LTX-Video 2B transformer (28 blocks, D = 2048, its published
//! config) with synthetic weights (zeros made on the device, no files) runs
//! a 768×512×121 shot (6 144 latent tokens, 256 text tokens) through the
//! engine's own sampling loop (`LtxPipeline::run`) and its presets, on the
//! emulated CUDA device in **dry-run** mode: every kernel launch and GEMM is
//! checked (argument types, pointers against live allocations, launch shape)
//! and counted, nothing is computed, and device memory is address space only.
//!
//! Per preset it prints one JSON line with the peak device bytes and, for a
//! steady denoising step (the median over steps after the first), the bytes
//! copied each way, host synchronisations, kernel launches and GEMM FLOPs.
//! These are counts, not timings.
//!
//! The emulated card has 10 GB (`CARD_BYTES`; `--card-bytes N` changes
//! it), so a run that finishes has stayed within it. Each preset is a job
//! in the engine's order (`LoadedModel` in src/pipeline/engine.rs): the
//! T5-XXL text encoder (24 layers, d_model 4096, synthetic weights) alone
//! on the card encodes the prompts (one for distilled, prompt and negative
//! for dev) and is released; then the transformer and the 0.9.5 VAE
//! (synthetic weights) are built, the denoising loop runs, and the VAE
//! decodes in the tiles `LtxVae` sizes from the memory then free. The flow
//! is benches/common/gpu_plan.rs, which tests/gpu_memory_plan.rs holds to
//! the 10 GB budget. Last, the distilled preset as the two-pass recipe runs
//! it with the 0.9.8 latent upsampler (tests/gpu_memory_plan_two_pass.rs).

#[path = "common/gpu_plan.rs"]
mod plan;

use genfx::engine::Quality;
use genfx::pipeline::model_folder::Variant;
use genfx_kernels_emu::device::EmulatedDevice;

fn fail(message: String) -> ! {
    println!("gpu-plan: {message}");
    println!(
        "{}",
        serde_json::json!({"bench": "gpu-plan", "error": message})
    );
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let card_bytes = args
        .iter()
        .position(|a| a == "--card-bytes")
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| fail(format!("--card-bytes {v:?}")))
        })
        .unwrap_or(plan::CARD_BYTES);
    let emu = EmulatedDevice::install().unwrap_or_else(|e| fail(e));
    let device = plan::open_device(emu, card_bytes).unwrap_or_else(|e| fail(e));
    println!(
        "gpu-plan: LTX-Video 2B transformer, T5-XXL and 0.9.5 VAE, synthetic {} weights, {}x{}x{}, \
         on an emulated {:.1} GB card in dry-run mode (counts, not timings)",
        device.compute_dtype(),
        plan::WIDTH,
        plan::HEIGHT,
        plan::FRAMES,
        card_bytes as f64 / 1e9
    );
    for (preset, variant, quality) in [
        ("distilled", Variant::Distilled, Quality::Standard),
        ("dev-standard", Variant::Dev, Quality::Standard),
    ] {
        let report = plan::run_preset(&device, emu, preset, variant, quality, card_bytes)
            .unwrap_or_else(|e| fail(e));
        println!("{}", report.summary);
        if report.refused > 0 {
            fail(format!(
                "{preset}: the emulator refused {} launches or copies: {}",
                report.refused,
                emu.last_error()
            ));
        }
        println!("{}", report.json);
    }
    // The distilled preset again as it runs with the latent upsampler.
    let report = plan::run_two_pass(&device, emu, card_bytes).unwrap_or_else(|e| fail(e));
    println!("{}", report.summary);
    if report.refused > 0 {
        fail(format!(
            "distilled-two-pass: the emulator refused {} launches or copies: {}",
            report.refused,
            emu.last_error()
        ));
    }
    println!("{}", report.json);
}
