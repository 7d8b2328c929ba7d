//! `cargo xtask bench attention-gpu`: our attention against PyTorch's
//! `scaled_dot_product_attention` on the same GPU, at LTX-Video's shapes
//! (batch 1, 32 heads of 64, 6144 and 13376 tokens, bf16). Prints medians,
//! TFLOP/s and the ratio, then one JSON line.

mod common;
mod gpu_common;

use genfx::backend::cuda::{CudaBackend, GpuDevice};
use genfx::backend::{AttentionSpec, Backend, CpuStorage, Operand};
use genfx::tensor::{DType, Layout};

const TOKENS: [usize; 2] = [6144, 13376];
const HEADS: usize = 32;
const HEAD_DIM: usize = 64;

fn main() {
    const NAME: &str = "attention-gpu";
    let gpu = match GpuDevice::get(None).and_then(CudaBackend::new) {
        Ok(g) => g,
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
    let torch = gpu_common::run_torch(
        "attention_sdpa.py",
        &[
            "--tokens".into(),
            TOKENS[0].to_string(),
            TOKENS[1].to_string(),
            "--heads".into(),
            HEADS.to_string(),
            "--head-dim".into(),
            HEAD_DIM.to_string(),
            "--dtype".into(),
            dtype.name().into(),
        ],
    );
    let torch = match torch {
        Ok(t) => Some(t),
        Err(e) => {
            println!("{NAME}: PyTorch half failed, reporting ours only: {e}");
            None
        }
    };
    let mut rows = Vec::new();
    for (i, &tokens) in TOKENS.iter().enumerate() {
        let n = tokens * HEADS * HEAD_DIM;
        let data: Vec<f32> = (0..n)
            .map(|j| ((j * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let layout = Layout::contiguous(&[1, tokens, HEADS, HEAD_DIM]);
        let flat = Layout::contiguous(&[n]);
        let up = gpu.upload(CpuStorage::F32(data)).expect("upload");
        let x = gpu
            .to_dtype(
                Operand {
                    storage: &*up,
                    layout: &flat,
                },
                dtype,
            )
            .expect("convert");
        let o = Operand {
            storage: &*x,
            layout: &layout,
        };
        let spec = AttentionSpec {
            batch: 1,
            q_len: tokens,
            kv_len: tokens,
            heads: HEADS,
            head_dim: HEAD_DIM,
            scale: 1.0 / (HEAD_DIM as f32).sqrt(),
        };
        let ms = gpu_common::time_ms(&gpu, 3, 20, || {
            gpu.attention(o, o, o, None, &spec).expect("attention");
        })
        .expect("timing");
        let flops = 4.0 * (tokens as f64).powi(2) * (HEADS * HEAD_DIM) as f64;
        let ours_tflops = flops / (ms * 1e-3) / 1e12;
        let torch_ms = torch
            .as_ref()
            .and_then(|t| t["shapes"][i]["median_ms"].as_f64());
        let torch_tflops = torch_ms.map(|t| flops / (t * 1e-3) / 1e12);
        let ratio = torch_ms.map(|t| t / ms);
        println!(
            "tokens {tokens:>6}: ours {ms:8.3} ms {ours_tflops:7.1} TFLOP/s ({}) | torch {} | ours/torch speed {}",
            gpu.attention_path(&spec, dtype),
            torch_ms.map_or("n/a".into(), |t| format!(
                "{t:8.3} ms {:7.1} TFLOP/s",
                torch_tflops.unwrap_or(0.0)
            )),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}x")),
        );
        rows.push(serde_json::json!({
            "tokens": tokens,
            "ours_ms": ms,
            "ours_tflops": ours_tflops,
            "ours_path": gpu.attention_path(&spec, dtype),
            "torch_ms": torch_ms,
            "torch_tflops": torch_tflops,
            "speed_ratio_vs_torch": ratio,
        }));
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": NAME,
            "device": gpu.device().name(),
            "dtype": dtype.name(),
            "heads": HEADS,
            "head_dim": HEAD_DIM,
            "shapes": rows,
            "torch": torch.as_ref().map(|t| t["torch"].clone()),
        })
    );
}
