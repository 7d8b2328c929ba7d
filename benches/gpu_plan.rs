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
//! The T5-XXL text encoder (24 layers, d_model 4096, synthetic weights)
//! encodes the prompts on the device first, in the engine's order: both
//! models resident, prompts encoded (one for distilled, prompt and negative
//! for dev), T5 released, then the denoising loop, then the 0.9.5 VAE
//! (synthetic weights) decodes the shot in the engine's default tiles.

use std::path::PathBuf;
use std::sync::Arc;

use genfx::backend::cuda::{CudaBackend, GpuDevice};
use genfx::backend::Device;
use genfx::engine::{JobObserver, Quality, Stage};
use genfx::models::ltx::transformer::{LtxVideoTransformer3DModel, TransformerConfig};
use genfx::models::ltx::vae::{AutoencoderKLLTXVideo, VaeConfig};
use genfx::models::t5::{T5Config, T5EncoderModel};
use genfx::pipeline::adapters::{LtxTransformer, LtxVae};
use genfx::pipeline::components::EncodedPrompt;
use genfx::pipeline::engine::sampling_for;
use genfx::pipeline::ltx::{LtxPipeline, RunParams};
use genfx::pipeline::model_folder::{ModelFolder, Variant};
use genfx::sampler::noise::PhiloxNoise;
use genfx::weights::{VarBuilder, WeightFiles};
use genfx_kernels_emu::device::{Counters, EmulatedDevice};
use parking_lot::Mutex;

/// `transformer/config.json` of Lightricks/LTX-Video-0.9.5 (the 2B model).
const LTX_2B_TRANSFORMER: &str = r#"{
  "activation_fn": "gelu-approximate",
  "attention_bias": true,
  "attention_head_dim": 64,
  "attention_out_bias": true,
  "caption_channels": 4096,
  "cross_attention_dim": 2048,
  "in_channels": 128,
  "norm_elementwise_affine": false,
  "norm_eps": 1e-06,
  "num_attention_heads": 32,
  "num_layers": 28,
  "out_channels": 128,
  "patch_size": 1,
  "patch_size_t": 1,
  "qk_norm": "rms_norm_across_heads"
}"#;

/// `text_encoder/config.json` of the LTX-Video repositories
/// (google/t5-v1_1-xxl's encoder).
const T5_XXL: &str = r#"{
  "d_ff": 10240,
  "d_kv": 64,
  "d_model": 4096,
  "dense_act_fn": "gelu_new",
  "feed_forward_proj": "gated-gelu",
  "layer_norm_epsilon": 1e-06,
  "num_heads": 64,
  "num_layers": 24,
  "relative_attention_max_distance": 128,
  "relative_attention_num_buckets": 32,
  "vocab_size": 32128
}"#;

const WIDTH: usize = 768;
const HEIGHT: usize = 512;
const FRAMES: usize = 121;
/// T5-XXL's hidden size and LTX-Video's prompt length.
const TEXT_DIM: usize = 4096;
const TEXT_TOKENS: usize = 256;

/// `vae/config.json` of Lightricks/LTX-Video-0.9.5 (the 2B releases from
/// 0.9.5 on share it).
const LTX_095_VAE: &str = r#"{
  "in_channels": 3,
  "out_channels": 3,
  "latent_channels": 128,
  "block_out_channels": [128, 256, 512, 1024, 2048],
  "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D",
                       "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
  "decoder_block_out_channels": [256, 512, 1024],
  "layers_per_block": [4, 6, 6, 2, 2],
  "decoder_layers_per_block": [5, 5, 5, 5],
  "spatio_temporal_scaling": [true, true, true, true],
  "decoder_spatio_temporal_scaling": [true, true, true],
  "decoder_inject_noise": [false, false, false, false],
  "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
  "upsample_residual": [true, true, true],
  "upsample_factor": [2, 2, 2],
  "timestep_conditioning": true,
  "patch_size": 4,
  "patch_size_t": 1,
  "resnet_norm_eps": 1e-06,
  "scaling_factor": 1.0,
  "encoder_causal": true,
  "decoder_causal": false,
  "spatial_compression_ratio": 32,
  "temporal_compression_ratio": 8
}"#;

/// The emulator's counters at every denoising progress call; when decoding
/// starts, the denoising loop's totals, and the counters restart so that
/// the decode's peak is its own.
struct StepCounters {
    emu: &'static EmulatedDevice,
    steps: Mutex<Vec<Counters>>,
    denoised: Mutex<Option<Counters>>,
}

impl JobObserver for StepCounters {
    fn progress(&self, stage: Stage, done: u32, _: u32) {
        match (stage, done) {
            (Stage::Denoising, _) => self.steps.lock().push(self.emu.counters()),
            (Stage::Decoding, 0) => {
                *self.denoised.lock() = Some(self.emu.counters());
                self.emu.reset_counters();
            }
            _ => {}
        }
    }
    fn should_abort(&self) -> bool {
        false
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn prompt() -> EncodedPrompt {
    EncodedPrompt {
        embeds: vec![0.0; TEXT_TOKENS * TEXT_DIM],
        mask: vec![1.0; TEXT_TOKENS],
        tokens: TEXT_TOKENS,
        dim: TEXT_DIM,
        truncated: false,
    }
}

/// T5-XXL with synthetic weights on `device`, `prompts` prompts encoded
/// one at a time as the engine does (embeddings to the host), then released.
/// Returns the encoder's weight bytes on the device.
fn encode_prompts(
    device: &Device,
    dtype: genfx::tensor::DType,
    emu: &EmulatedDevice,
    prompts: usize,
) -> u64 {
    let before = emu.counters().live_bytes;
    let config: T5Config = serde_json::from_str(T5_XXL).expect("the embedded T5-XXL config parses");
    let weights = Arc::new(WeightFiles::synthetic("T5-XXL (synthetic)"));
    let model = T5EncoderModel::load(&VarBuilder::new(weights, dtype, device), config)
        .unwrap_or_else(|e| fail(format!("building T5-XXL: {e}")));
    device.release_cached_memory();
    let weight_bytes = emu.counters().live_bytes - before;
    let (ids, mask) = (vec![0u32; TEXT_TOKENS], vec![1u32; TEXT_TOKENS]);
    for _ in 0..prompts {
        model
            .forward(&ids, &mask, 1, TEXT_TOKENS)
            .and_then(|t| Ok(t.to_vec_f32()?))
            .unwrap_or_else(|e| fail(format!("T5-XXL encode: {e}")));
    }
    drop(model);
    device.release_cached_memory();
    weight_bytes
}

fn fail(message: String) -> ! {
    println!("gpu-plan: {message}");
    println!(
        "{}",
        serde_json::json!({"bench": "gpu-plan", "error": message})
    );
    std::process::exit(1);
}

fn main() {
    let emu = EmulatedDevice::install().unwrap_or_else(|e| fail(e));
    emu.set("dry_run", "1").unwrap_or_else(|e| fail(e));
    let gpu = GpuDevice::get(None)
        .and_then(CudaBackend::new)
        .unwrap_or_else(|e| fail(format!("the emulated device did not open: {e}")));
    let device = Device::new(Arc::new(gpu));
    let dtype = device.compute_dtype();
    println!(
        "gpu-plan: LTX-Video 2B transformer, synthetic {dtype} weights, {WIDTH}x{HEIGHT}x{FRAMES}, \
         on the emulated device in dry-run mode (counts, not timings)"
    );

    emu.reset_counters();
    let config: TransformerConfig =
        serde_json::from_str(LTX_2B_TRANSFORMER).expect("the embedded 2B config parses");
    let layers = config.num_layers;
    let weights = Arc::new(WeightFiles::synthetic("LTX-Video 2B (synthetic)"));
    let model = LtxVideoTransformer3DModel::new(config, &VarBuilder::new(weights, dtype, &device))
        .unwrap_or_else(|e| fail(format!("building the 2B transformer: {e}")));
    // synthetic weights are made as zeros and filled: hand the freed
    // temporaries back so that only the weights stay counted
    device.release_cached_memory();
    let weight_bytes = emu.counters().live_bytes;
    println!(
        "weights: {:.2} GiB on the device",
        weight_bytes as f64 / (1u64 << 30) as f64
    );
    let before_vae = emu.counters().live_bytes;
    let vae_config = VaeConfig::from_json(LTX_095_VAE, "the embedded 0.9.5 VAE config")
        .unwrap_or_else(|e| fail(format!("VAE config: {e}")));
    let vae = AutoencoderKLLTXVideo::from_source_on(
        vae_config,
        &WeightFiles::synthetic("LTX-Video 0.9.5 VAE (synthetic)"),
        &device,
        dtype,
    )
    .unwrap_or_else(|e| fail(format!("building the VAE: {e}")));
    device.release_cached_memory();
    let vae_weight_bytes = emu.counters().live_bytes - before_vae;
    let pipeline = LtxPipeline {
        transformer: Arc::new(LtxTransformer::new(model)),
        vae: Arc::new(LtxVae::new(vae)),
    };

    // The scheduler config every LTX-Video release ships; the fixture
    // folder holds a copy.
    let fixture: PathBuf = genfx::testing::fixtures_dir().join("pipeline/model");
    let latent_tokens = ((FRAMES - 1) / 8 + 1) * (HEIGHT / 32) * (WIDTH / 32);
    for (preset, variant, quality) in [
        ("distilled", Variant::Distilled, Quality::Standard),
        ("dev-standard", Variant::Dev, Quality::Standard),
    ] {
        let mut folder =
            ModelFolder::open(&fixture).unwrap_or_else(|e| fail(format!("scheduler config: {e}")));
        folder.variant = variant;
        let sampling = sampling_for(&folder, quality, 3.0, latent_tokens, layers)
            .unwrap_or_else(|e| fail(format!("{preset}: {e}")));
        let steps = sampling.schedule.timesteps.len();
        // velocity predictions a step combines (CFG may batch two in one call)
        let passes =
            1 + usize::from(sampling.guidance_scale > 1.0) + usize::from(sampling.stg.is_some());
        let params = RunParams {
            width: WIDTH,
            height: HEIGHT,
            num_frames: FRAMES,
            frame_rate: 24.0,
            conditions: Vec::new(),
            sampling,
        };
        // each preset starts as a new job: nothing cached from the last
        device.release_cached_memory();
        emu.reset_counters();
        let t5_weight_bytes = encode_prompts(&device, dtype, emu, passes.min(2));
        let t5 = emu.counters();
        // the denoising loop's own figures, its peak from what stays resident
        emu.reset_counters();
        let start = emu.counters();
        let observer = StepCounters {
            emu,
            steps: Mutex::new(vec![start]),
            denoised: Mutex::new(None),
        };
        let (positive, negative) = (prompt(), prompt());
        pipeline
            .run(
                &positive,
                (passes > 1).then_some(&negative),
                &params,
                &PhiloxNoise { seed: 1, shot: 0 },
                &observer,
            )
            .unwrap_or_else(|e| fail(format!("{preset}: {e}")));
        let decode = emu.counters();
        let end = observer
            .denoised
            .into_inner()
            .unwrap_or_else(|| fail(format!("{preset}: the decode never started")));
        let at = observer.steps.into_inner();
        // step k spans progress calls k-1 and k; the first also sets up
        let steady: Vec<Counters> = at.windows(2).skip(1).map(|w| w[1].since(&w[0])).collect();
        let per_step = |f: fn(&Counters) -> u64| median(steady.iter().map(f).collect());
        let first = at.get(1).map(|c| c.since(&at[0])).unwrap_or_default();
        let line = serde_json::json!({
            "bench": "gpu-plan",
            "preset": preset,
            "model": "LTX-Video 2B (synthetic weights)",
            "dtype": dtype.to_string(),
            "width": WIDTH,
            "height": HEIGHT,
            "frames": FRAMES,
            "latent_tokens": latent_tokens,
            "steps": steps,
            "predictions_per_step": passes,
            "peak_device_bytes": t5.peak_bytes.max(end.peak_bytes).max(decode.peak_bytes),
            "denoise_peak_device_bytes": end.peak_bytes,
            "decode_peak_device_bytes": decode.peak_bytes,
            "vae_weight_device_bytes": vae_weight_bytes,
            "decode_launches": decode.launches,
            "decode_gemm_flops": decode.gemm_flops,
            "decode_d2h_bytes": decode.d2h_bytes,
            "weight_device_bytes": weight_bytes,
            "h2d_bytes_per_step": per_step(|c| c.h2d_bytes),
            "d2h_bytes_per_step": per_step(|c| c.d2h_bytes),
            "syncs_per_step": per_step(|c| c.syncs),
            "launches_per_step": per_step(|c| c.launches),
            "gemms_per_step": per_step(|c| c.gemms),
            "gemm_flops_per_step": per_step(|c| c.gemm_flops),
            "device_allocs_per_step": per_step(|c| c.allocs),
            "first_step_allocs": first.allocs,
            "h2d_bytes_total": end.h2d_bytes,
            "d2h_bytes_total": end.d2h_bytes,
            "t5_on_device": true,
            "t5_weight_device_bytes": t5_weight_bytes,
            "t5_h2d_bytes": t5.h2d_bytes,
            "t5_d2h_bytes": t5.d2h_bytes,
            "t5_launches": t5.launches,
            "t5_gemm_flops": t5.gemm_flops,
            "vae_on_device": true,
            "refused_launches": end.faults,
        });
        println!(
            "{preset}: T5 {:.2} GiB of weights; {steps} steps x {passes} predictions; peak {:.2} GiB \
             ({:.2} GiB while denoising, {:.2} GiB decoding); per step: {:.1} MB up, {:.1} MB down, {} syncs, {} launches, \
             {:.2} TFLOP in GEMMs",
            t5_weight_bytes as f64 / (1u64 << 30) as f64,
            t5.peak_bytes.max(end.peak_bytes).max(decode.peak_bytes) as f64 / (1u64 << 30) as f64,
            end.peak_bytes as f64 / (1u64 << 30) as f64,
            decode.peak_bytes as f64 / (1u64 << 30) as f64,
            per_step(|c| c.h2d_bytes) as f64 / 1e6,
            per_step(|c| c.d2h_bytes) as f64 / 1e6,
            per_step(|c| c.syncs),
            per_step(|c| c.launches),
            per_step(|c| c.gemm_flops) as f64 / 1e12
        );
        if end.faults + t5.faults + decode.faults > 0 {
            fail(format!(
                "{preset}: the emulator refused {} launches or copies: {}",
                end.faults + t5.faults + decode.faults,
                emu.last_error()
            ));
        }
        println!("{line}");
    }
}
