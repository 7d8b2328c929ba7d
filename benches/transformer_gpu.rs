//! `cargo xtask bench transformer-gpu`: one denoising step of the LTX-Video
//! 2B transformer (28 blocks, D=2048, random weights, bf16) on our CUDA
//! backend against diffusers on the same GPU, with the same weights: the
//! PyTorch half writes its random model to disk first and we load it.
//! Latent 16 x 16 x 24 = 6144 tokens (768x512, 121 frames), 128 text tokens.

mod common;
mod gpu_common;

use std::path::PathBuf;

use genfx::backend::cuda::{CudaBackend, GpuDevice};
use genfx::backend::Device;
use genfx::models::ltx::transformer::{LtxVideoTransformer3DModel, TransformerInputs};
use genfx::tensor::{DType, Tensor};

const FRAMES: usize = 16;
const HEIGHT: usize = 16;
const WIDTH: usize = 24;
const TEXT: usize = 128;

fn weights_dir() -> PathBuf {
    std::env::var_os("GENFX_BENCH_LTX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join("target").join("bench-ltx-2b-random"))
}

fn ramp(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919 % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

fn main() {
    const NAME: &str = "transformer-gpu";
    let gpu = match GpuDevice::get(None).and_then(CudaBackend::new) {
        Ok(g) => std::sync::Arc::new(g),
        Err(e) => gpu_common::no_gpu(NAME, &e.to_string()),
    };
    let dtype = match gpu.device().half() {
        genfx::backend::cuda::Half::Bf16 => DType::BF16,
        genfx::backend::cuda::Half::F16 => DType::F16,
    };
    println!(
        "{NAME}: {} ({}), {dtype}",
        gpu.device().name(),
        gpu.device().arch()
    );
    let dir = weights_dir();
    let torch = gpu_common::run_torch(
        "transformer_diffusers.py",
        &[
            "--frames".into(),
            FRAMES.to_string(),
            "--height".into(),
            HEIGHT.to_string(),
            "--width".into(),
            WIDTH.to_string(),
            "--text".into(),
            TEXT.to_string(),
            "--save".into(),
            dir.display().to_string(),
        ],
    );
    let torch = match torch {
        Ok(t) => t,
        Err(e) => {
            // without the PyTorch half there are no weights to load either
            println!("{NAME}: the PyTorch half failed: {e}");
            println!(
                "{}",
                serde_json::json!({"bench": NAME, "error": format!("PyTorch half failed: {e}")})
            );
            std::process::exit(1);
        }
    };
    let device = Device::new(gpu.clone());
    let model = LtxVideoTransformer3DModel::load(&dir, dtype, &device)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    let tokens = FRAMES * HEIGHT * WIDTH;
    let put = |v: Vec<f32>, dims: &[usize], dt: DType| {
        Tensor::from_vec(v, dims, &device)
            .and_then(|t| t.to_dtype(dt))
            .expect("input upload")
    };
    let hidden = put(ramp(tokens * 128, 1), &[1, tokens, 128], dtype);
    let text = put(ramp(TEXT * 4096, 2), &[1, TEXT, 4096], dtype);
    let mask = put(
        (0..TEXT)
            .map(|i| if i < TEXT * 3 / 4 { 1.0 } else { 0.0 })
            .collect(),
        &[1, TEXT],
        DType::F32,
    );
    let timestep = put(vec![500.0], &[1], DType::F32);
    // frame time in seconds (8 frames per latent at 25 fps), pixels for y, x
    let mut coords = vec![0f32; 3 * tokens];
    for f in 0..FRAMES {
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let i = (f * HEIGHT + y) * WIDTH + x;
                coords[i] = f as f32 * 8.0 / 25.0;
                coords[tokens + i] = (y * 32) as f32;
                coords[2 * tokens + i] = (x * 32) as f32;
            }
        }
    }
    let coords = put(coords, &[1, 3, tokens], DType::F32);
    let inputs = TransformerInputs {
        hidden_states: &hidden,
        encoder_hidden_states: &text,
        encoder_attention_mask: Some(&mask),
        timestep: &timestep,
        video_coords: &coords,
    };
    let ms = gpu_common::time_ms(&gpu, 2, 5, || {
        model.forward(&inputs).expect("forward");
    })
    .expect("timing");
    let torch_ms = torch["median_ms"].as_f64();
    let ratio = torch_ms.map(|t| t / ms);
    println!(
        "one step, {tokens} tokens: ours {ms:.2} ms | diffusers {} | speed-up {}",
        torch_ms.map_or("n/a".into(), |t| format!("{t:.2} ms")),
        ratio.map_or("n/a".into(), |r| format!("{r:.2}x"))
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": NAME,
            "device": gpu.device().name(),
            "dtype": dtype.name(),
            "tokens": tokens,
            "text_tokens": TEXT,
            "ours_ms": ms,
            "diffusers_ms": torch_ms,
            "speedup_vs_diffusers": ratio,
            "attention_path": gpu.attention_path(
                &genfx::backend::AttentionSpec {
                    batch: 1,
                    q_len: tokens,
                    kv_len: tokens,
                    heads: 32,
                    head_dim: 64,
                    scale: 0.125,
                },
                dtype
            ),
            "alloc_peak_bytes": gpu.alloc_stats().peak_bytes_in_use,
            "torch": torch["torch"],
            "diffusers": torch["diffusers"],
        })
    );
}
