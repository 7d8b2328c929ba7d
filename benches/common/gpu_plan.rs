//! The flow of `cargo xtask bench gpu-plan` (benches/gpu_plan.rs), shared
//! with the test that holds it to its memory budget
//! (tests/gpu_memory_plan.rs): one full-size shot on the emulated device in
//! dry-run mode, in the engine's order (see `LoadedModel` in
//! src/pipeline/engine.rs): T5-XXL alone on the card encodes the prompts
//! and is released; then the transformer and the VAE are built, the
//! denoising loop runs, and the VAE decodes in tiles `LtxVae` sizes from
//! the memory then free.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use genfx::backend::Device;
use genfx::engine::{JobObserver, Quality, Stage};
use genfx::models::ltx::latent_upsampler::{LatentUpsampler, UpsamplerConfig};
use genfx::models::ltx::transformer::{LtxVideoTransformer3DModel, TransformerConfig};
use genfx::models::ltx::vae::{AutoencoderKLLTXVideo, VaeConfig};
use genfx::models::t5::{T5Config, T5EncoderModel};
use genfx::pipeline::adapters::{LtxTransformer, LtxVae};
use genfx::pipeline::components::EncodedPrompt;
use genfx::pipeline::engine::sampling_for;
use genfx::pipeline::ltx::{LtxPipeline, RunParams};
use genfx::pipeline::model_folder::{ModelFolder, Variant};
use genfx::pipeline::two_pass::{pass_sizes, refine_sampling, TwoPass, SETTINGS};
use genfx::pipeline::upsample::DeviceUpscaler;
use genfx::sampler::noise::PhiloxNoise;
use genfx::tensor::DType;
use genfx::weights::{VarBuilder, WeightFiles};
use genfx_kernels_emu::device::{Counters, EmulatedDevice};
use parking_lot::Mutex;

/// `transformer/config.json` of Lightricks/LTX-Video-0.9.5 (the 2B model).
pub const LTX_2B_TRANSFORMER: &str = r#"{
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
pub const T5_XXL: &str = r#"{
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

pub const WIDTH: usize = 768;
pub const HEIGHT: usize = 512;
pub const FRAMES: usize = 121;
/// T5-XXL's hidden size and LTX-Video's prompt length.
const TEXT_DIM: usize = 4096;
const TEXT_TOKENS: usize = 256;

/// `vae/config.json` of Lightricks/LTX-Video-0.9.5 (the 2B releases from
/// 0.9.5 on share it).
pub const LTX_095_VAE: &str = r#"{
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
) -> Result<u64, String> {
    let before = emu.counters().live_bytes;
    let config: T5Config = serde_json::from_str(T5_XXL).expect("the embedded T5-XXL config parses");
    let weights = Arc::new(WeightFiles::synthetic("T5-XXL (synthetic)"));
    let model = T5EncoderModel::load(&VarBuilder::new(weights, dtype, device), config)
        .map_err(|e| format!("building T5-XXL: {e}"))?;
    device.release_cached_memory();
    let weight_bytes = emu.counters().live_bytes - before;
    let (ids, mask) = (vec![0u32; TEXT_TOKENS], vec![1u32; TEXT_TOKENS]);
    for _ in 0..prompts {
        model
            .forward(&ids, &mask, 1, TEXT_TOKENS)
            .and_then(|t| Ok(t.to_vec_f32()?))
            .map_err(|e| format!("T5-XXL encode: {e}"))?;
    }
    drop(model);
    device.release_cached_memory();
    Ok(weight_bytes)
}

/// The emulated card's memory in the plan: 10 GB (10e9 bytes, an RTX 3080's
/// 10 GiB rounded down), the budget the shot is held to.
pub const CARD_BYTES: u64 = 10_000_000_000;

/// One preset's figures.
pub struct PresetReport {
    pub json: serde_json::Value,
    pub summary: String,
    pub peak_bytes: u64,
    pub refused: u64,
}

/// The emulated device, in dry-run mode with a card of `card_bytes`, opened.
pub fn open_device(emu: &EmulatedDevice, card_bytes: u64) -> Result<Device, String> {
    emu.set("dry_run", "1")?;
    emu.set("memory", &card_bytes.to_string())?;
    let gpu = genfx::backend::cuda::GpuDevice::get(None)
        .and_then(genfx::backend::cuda::CudaBackend::new)
        .map_err(|e| format!("the emulated device did not open: {e}"))?;
    Ok(Device::new(Arc::new(gpu)))
}

/// The transformer and VAE with synthetic weights on `device`, with their
/// weight bytes.
fn build_pipeline(
    device: &Device,
    dtype: DType,
    emu: &EmulatedDevice,
) -> Result<(LtxPipeline, usize, u64, u64), String> {
    let before = emu.counters().live_bytes;
    let config: TransformerConfig =
        serde_json::from_str(LTX_2B_TRANSFORMER).expect("the embedded 2B config parses");
    let layers = config.num_layers;
    let weights = Arc::new(WeightFiles::synthetic("LTX-Video 2B (synthetic)"));
    let model = LtxVideoTransformer3DModel::new(config, &VarBuilder::new(weights, dtype, device))
        .map_err(|e| format!("building the 2B transformer: {e}"))?;
    // synthetic weights are made as zeros and filled: hand the freed
    // temporaries back so that only the weights stay counted
    device.release_cached_memory();
    let weight_bytes = emu.counters().live_bytes - before;
    let before_vae = emu.counters().live_bytes;
    let vae_config = VaeConfig::from_json(LTX_095_VAE, "the embedded 0.9.5 VAE config")
        .map_err(|e| format!("VAE config: {e}"))?;
    let vae = AutoencoderKLLTXVideo::from_source_on(
        vae_config,
        &WeightFiles::synthetic("LTX-Video 0.9.5 VAE (synthetic)"),
        device,
        dtype,
    )
    .map_err(|e| format!("building the VAE: {e}"))?;
    device.release_cached_memory();
    let vae_weight_bytes = emu.counters().live_bytes - before_vae;
    let pipeline = LtxPipeline {
        transformer: Arc::new(LtxTransformer::new(model)),
        vae: Arc::new(LtxVae::new(vae)),
    };
    Ok((pipeline, layers, weight_bytes, vae_weight_bytes))
}

/// One job of `preset` as the engine runs it on a card of `card_bytes`:
/// nothing resident at the start (a first job, or a later one with new
/// prompts on a card that cannot hold T5 beside the transformer and VAE,
/// which `LoadedModel::make_room` then sends away).
pub fn run_preset(
    device: &Device,
    emu: &'static EmulatedDevice,
    preset: &str,
    variant: Variant,
    quality: Quality,
    card_bytes: u64,
) -> Result<PresetReport, String> {
    let dtype = device.compute_dtype();
    // The scheduler config every LTX-Video release ships; the fixture
    // folder holds a copy.
    let fixture: PathBuf = genfx::testing::fixtures_dir().join("pipeline/model");
    let latent = [(FRAMES - 1) / 8 + 1, HEIGHT / 32, WIDTH / 32];
    let latent_tokens = latent.iter().product::<usize>();
    let mut folder = ModelFolder::open(&fixture).map_err(|e| format!("scheduler config: {e}"))?;
    folder.variant = variant;
    let layers = serde_json::from_str::<TransformerConfig>(LTX_2B_TRANSFORMER)
        .expect("the embedded 2B config parses")
        .num_layers;
    let sampling = sampling_for(&folder, quality, 3.0, latent_tokens, layers)
        .map_err(|e| format!("{preset}: {e}"))?;
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
    device.release_cached_memory();
    emu.reset_counters();
    // 1. T5 alone on the card: the prompts, then released
    let t5_weight_bytes = encode_prompts(device, dtype, emu, passes.min(2))?;
    let t5 = emu.counters();
    // 2. the transformer and VAE, loaded once T5 has left
    emu.reset_counters();
    let (pipeline, _, weight_bytes, vae_weight_bytes) = build_pipeline(device, dtype, emu)?;
    let load = emu.counters();
    // 3. the denoising loop, its peak from what stays resident
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
        .map_err(|e| format!("{preset}: {e}"))?;
    let decode = emu.counters();
    let end = observer
        .denoised
        .into_inner()
        .ok_or_else(|| format!("{preset}: the decode never started"))?;
    let at = observer.steps.into_inner();
    // step k spans progress calls k-1 and k; the first also sets up
    let steady: Vec<Counters> = at.windows(2).skip(1).map(|w| w[1].since(&w[0])).collect();
    let per_step = |f: fn(&Counters) -> u64| median(steady.iter().map(f).collect());
    let first = at.get(1).map(|c| c.since(&at[0])).unwrap_or_default();
    let peak = t5
        .peak_bytes
        .max(load.peak_bytes)
        .max(end.peak_bytes)
        .max(decode.peak_bytes);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let json = serde_json::json!({
        "bench": "gpu-plan",
        "preset": preset,
        "model": "LTX-Video 2B (synthetic weights)",
        "dtype": dtype.to_string(),
        "card_bytes": card_bytes,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": FRAMES,
        "latent_tokens": latent_tokens,
        "steps": steps,
        "predictions_per_step": passes,
        "peak_device_bytes": peak,
        "t5_peak_device_bytes": t5.peak_bytes,
        "load_peak_device_bytes": load.peak_bytes,
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
    let summary = format!(
        "{preset}: on a {:.1} GB card: T5 {:.2} GiB of weights alone (peak {:.2} GiB); \
         transformer {:.2} GiB + VAE {:.2} GiB; {steps} steps x {passes} predictions; \
         peak {:.2} GiB ({:.2} GiB while denoising, {:.2} GiB decoding, {} decode launches); \
         per step: {:.1} MB up, {:.1} MB down, {} syncs, {} launches, {:.2} TFLOP in GEMMs",
        card_bytes as f64 / 1e9,
        gib(t5_weight_bytes),
        gib(t5.peak_bytes),
        gib(weight_bytes),
        gib(vae_weight_bytes),
        gib(peak),
        gib(end.peak_bytes),
        gib(decode.peak_bytes),
        decode.launches,
        per_step(|c| c.h2d_bytes) as f64 / 1e6,
        per_step(|c| c.d2h_bytes) as f64 / 1e6,
        per_step(|c| c.syncs),
        per_step(|c| c.launches),
        per_step(|c| c.gemm_flops) as f64 / 1e12
    );
    drop(pipeline);
    device.release_cached_memory();
    Ok(PresetReport {
        json,
        summary,
        peak_bytes: peak,
        refused: end.faults + t5.faults + load.faults + decode.faults,
    })
}

/// The published 0.9.8 spatial upscaler's shape (diffusers' conversion
/// config for 0.9.7/0.9.8).
const SPATIAL_UPSCALER_098: UpsamplerConfig = UpsamplerConfig {
    in_channels: 128,
    mid_channels: 512,
    num_blocks_per_stage: 4,
    dims: 3,
    spatial_upsample: true,
    temporal_upsample: false,
};

/// The distilled Standard preset as the engine runs it when the latent
/// upsampler is there (src/pipeline/two_pass.rs): T5 alone, then the
/// transformer, VAE and upsampler (synthetic weights); the first pass at
/// about 2/3 of 768x512, the upsampler, the refinement at twice the first
/// pass's size (4/3 of the asked size), decoded there.
pub fn run_two_pass(
    device: &Device,
    emu: &'static EmulatedDevice,
    card_bytes: u64,
) -> Result<PresetReport, String> {
    let preset = "distilled-two-pass";
    let dtype = device.compute_dtype();
    let fixture: PathBuf = genfx::testing::fixtures_dir().join("pipeline/model");
    let mut folder = ModelFolder::open(&fixture).map_err(|e| format!("scheduler config: {e}"))?;
    folder.variant = Variant::Distilled;
    let layers = serde_json::from_str::<TransformerConfig>(LTX_2B_TRANSFORMER)
        .expect("the embedded 2B config parses")
        .num_layers;
    let sizes = pass_sizes(WIDTH, HEIGHT, 32).ok_or("768x512 has two passes")?;
    let lf = (FRAMES - 1) / 8 + 1;
    let tokens = |(w, h): (usize, usize)| lf * (w / 32) * (h / 32);
    let first = sampling_for(&folder, Quality::Standard, 1.0, tokens(sizes[0]), layers)
        .map_err(|e| format!("{preset}: {e}"))?;
    let config = &folder.scheduler;
    let mu = config
        .use_dynamic_shifting
        .then(|| config.calculate_shift(tokens(sizes[1])));
    let refine = refine_sampling(&first, config, mu).map_err(|e| format!("{preset}: {e}"))?;
    let steps = (first.schedule.steps(), refine.0.schedule.steps());
    let params = RunParams {
        width: WIDTH,
        height: HEIGHT,
        num_frames: FRAMES,
        frame_rate: 24.0,
        conditions: Vec::new(),
        sampling: first.clone(),
    };
    device.release_cached_memory();
    emu.reset_counters();
    let t5_weight_bytes = encode_prompts(device, dtype, emu, 1)?;
    let t5 = emu.counters();
    emu.reset_counters();
    let (pipeline, _, weight_bytes, vae_weight_bytes) = build_pipeline(device, dtype, emu)?;
    let before = emu.counters().live_bytes;
    let weights = Arc::new(WeightFiles::synthetic("latent upsampler (synthetic)"));
    let model = LatentUpsampler::new(
        SPATIAL_UPSCALER_098,
        &VarBuilder::new(weights, dtype, device),
    )
    .map_err(|e| format!("building the upsampler: {e}"))?;
    device.release_cached_memory();
    let upsampler_weight_bytes = emu.counters().live_bytes - before;
    let upscaler = DeviceUpscaler::new(model, device, dtype);
    let load = emu.counters();
    emu.reset_counters();
    let observer = StepCounters {
        emu,
        steps: Mutex::new(vec![emu.counters()]),
        denoised: Mutex::new(None),
    };
    let noise = PhiloxNoise { seed: 1, shot: 0 };
    TwoPass {
        pipeline: &pipeline,
        upscaler: &upscaler,
        settings: SETTINGS,
        first,
        refine,
        sizes,
    }
    .run(&prompt(), None, &params, &noise, &noise, &observer)
    .map_err(|e| format!("{preset}: {e}"))?;
    let decode = emu.counters();
    let denoise = observer
        .denoised
        .into_inner()
        .ok_or_else(|| format!("{preset}: the decode never started"))?;
    let peak = t5
        .peak_bytes
        .max(load.peak_bytes)
        .max(denoise.peak_bytes)
        .max(decode.peak_bytes);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let [(w1, h1), (w2, h2)] = sizes;
    let json = serde_json::json!({
        "bench": "gpu-plan",
        "preset": preset,
        "model": "LTX-Video 2B + 0.9.8 spatial upscaler (synthetic weights)",
        "dtype": dtype.to_string(),
        "card_bytes": card_bytes,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": FRAMES,
        "first_pass": [w1, h1],
        "refinement_pass": [w2, h2],
        "first_latent_tokens": tokens(sizes[0]),
        "refinement_latent_tokens": tokens(sizes[1]),
        "steps": [steps.0, steps.1],
        "peak_device_bytes": peak,
        "t5_peak_device_bytes": t5.peak_bytes,
        "load_peak_device_bytes": load.peak_bytes,
        "denoise_peak_device_bytes": denoise.peak_bytes,
        "decode_peak_device_bytes": decode.peak_bytes,
        "weight_device_bytes": weight_bytes,
        "vae_weight_device_bytes": vae_weight_bytes,
        "upsampler_weight_device_bytes": upsampler_weight_bytes,
        "t5_weight_device_bytes": t5_weight_bytes,
        "refused_launches": denoise.faults + decode.faults,
    });
    let summary = format!(
        "{preset}: on a {:.1} GB card: {w1}x{h1} ({} steps), upsampler ({:.2} GiB of weights), \
         {w2}x{h2} ({} steps); peak {:.2} GiB ({:.2} GiB denoising and upsampling, {:.2} GiB \
         decoding at {w2}x{h2})",
        card_bytes as f64 / 1e9,
        steps.0,
        gib(upsampler_weight_bytes),
        steps.1,
        gib(peak),
        gib(denoise.peak_bytes),
        gib(decode.peak_bytes),
    );
    drop(upscaler);
    drop(pipeline);
    device.release_cached_memory();
    Ok(PresetReport {
        json,
        summary,
        peak_bytes: peak,
        refused: t5.faults + load.faults + denoise.faults + decode.faults,
    })
}
