//! The LTX transformer forward on the GPU against the CPU reference, on the
//! transformer fixture (any seed). Run with `cargo xtask test-gpu`.
//!
//! Tolerances, against the CPU f32 model on the same inputs:
//! - GPU f32: 1e-3 · max(1, max|ref|). Same weights and f32 everywhere; what
//!   differs is summation order in cuBLAS and the kernels' fast-math exp,
//!   rsqrt and tanh (a few ulp each), grown through two blocks.
//! - GPU bf16 (weights and activations in bf16, f32 accumulation): 6e-2 ·
//!   max(1, max|ref|). Each block rounds to bf16 (u = 2^-8) about a dozen
//!   times in series (norm, modulation, q/k/v, attention probabilities,
//!   output projection, residual, FFN in and out, for self- and
//!   cross-attention), and the weights themselves are rounded once; relative
//!   errors of ~u each add up to ~12·u ≈ 5e-2 of the output range per block
//!   in the worst case, mostly cancelling in practice.

mod gpu_common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use genfx::backend::Device;
use genfx::models::ltx::transformer::{LtxVideoTransformer3DModel, TransformerInputs};
use genfx::tensor::{DType, Tensor};
use genfx::testing::{fixtures_dir, max_abs_err};
use genfx::weights::WeightFiles;
use gpu_common::gpu_or_skip;

fn dir() -> PathBuf {
    fixtures_dir().join("transformer")
}

fn case_tensor(files: &WeightFiles, case: &str, name: &str) -> Tensor {
    let full = format!("{case}.{name}");
    let dims = files.shape(&full).expect("fixture tensor").to_vec();
    files
        .load(&full, &dims, DType::F32, &Device::cpu())
        .unwrap()
}

#[test]
fn transformer_forward_on_the_gpu_matches_the_cpu() {
    let Some(gpu) = gpu_or_skip("transformer_forward_on_the_gpu_matches_the_cpu") else {
        return;
    };
    let half = match gpu.device().half() {
        genfx::backend::cuda::Half::Bf16 => DType::BF16,
        genfx::backend::cuda::Half::F16 => DType::F16,
    };
    let device = Device::new(gpu.clone());
    let cases = WeightFiles::open_file(&dir().join("cases.safetensors")).unwrap();
    let names: BTreeSet<String> = cases
        .names()
        .iter()
        .filter_map(|n| n.split_once('.').map(|(c, _)| c.to_string()))
        .collect();
    let cpu_model = LtxVideoTransformer3DModel::load(&dir(), DType::F32, &Device::cpu()).unwrap();
    for (dtype, tol) in [(DType::F32, 1e-3f32), (half, 6e-2)] {
        let gpu_model = LtxVideoTransformer3DModel::load(&dir(), dtype, &device).unwrap();
        for case in &names {
            let get = |n: &str| case_tensor(&cases, case, n);
            let (hs, ehs, mask, ts, coords) = (
                get("hidden_states"),
                get("encoder_hidden_states"),
                get("encoder_attention_mask"),
                get("timestep"),
                get("video_coords"),
            );
            let want = cpu_model
                .forward(&TransformerInputs {
                    hidden_states: &hs,
                    encoder_hidden_states: &ehs,
                    encoder_attention_mask: Some(&mask),
                    timestep: &ts,
                    video_coords: &coords,
                })
                .unwrap()
                .to_vec_f32()
                .unwrap();
            // latents and text in the model's dtype, as the pipeline casts
            // them; timesteps, mask and coordinates stay f32
            let on_gpu =
                |t: &Tensor, dt: DType| t.to_device(&device).unwrap().to_dtype(dt).unwrap();
            let (ghs, gehs) = (on_gpu(&hs, dtype), on_gpu(&ehs, dtype));
            let (gmask, gts, gcoords) = (
                on_gpu(&mask, DType::F32),
                on_gpu(&ts, DType::F32),
                on_gpu(&coords, DType::F32),
            );
            let got = gpu_model
                .forward(&TransformerInputs {
                    hidden_states: &ghs,
                    encoder_hidden_states: &gehs,
                    encoder_attention_mask: Some(&gmask),
                    timestep: &gts,
                    video_coords: &gcoords,
                })
                .unwrap()
                .to_vec_f32()
                .unwrap();
            let (err, scale) = max_abs_err(&got, &want);
            println!("{case} [{dtype}]: max abs err {err:.3e} (scale {scale:.3})");
            assert!(
                err <= tol * scale.max(1.0),
                "{case} [{dtype}]: GPU differs from CPU by {err:e} (> {tol} x {scale})"
            );
        }
    }
}
