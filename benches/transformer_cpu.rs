//! `cargo xtask bench transformer-cpu [--setup] [--runs N]`
//!
//! One LTX-Video transformer forward on the CPU (4 blocks, D=512, 8 heads of
//! 64, 2048 video tokens, 128 text tokens) against PyTorch f32 on the same
//! machine, same thread count, same weights and inputs. Prints the median of
//! each and, last, one JSON line `{"ours_s":..,"torch_s":..,"ratio":..}`
//! (ratio = ours / PyTorch).
//!
//! The PyTorch half runs `tools/bench/transformer_cpu.py` with the Python in
//! `$GENFX_TORCH_PYTHON`, else `<workspace>/.tools/bench-venv/bin/python`. `--setup`
//! creates that venv from `tools/requirements.txt` when it is missing.
//! Without a usable Python the JSON reports `"torch_s":null`.

use std::time::Instant;

mod common;

use common::{cpu_torch_args, median, root as workspace, run_torch, write_f32_safetensors, Rng};
use genfx::backend::Device;
use genfx::models::ltx::transformer::{LtxVideoTransformer3DModel, TransformerInputs};
use genfx::tensor::{DType, Tensor};

const BLOCKS: usize = 4;
const HEADS: usize = 8;
const HEAD_DIM: usize = 64;
const DIM: usize = HEADS * HEAD_DIM;
const IN_CHANNELS: usize = 128;
const CAPTION_CHANNELS: usize = 4096;
const TEXT_TOKENS: usize = 128;
/// Latent grid: 8 frames of 16×16 = 2048 tokens.
const GRID: [usize; 3] = [8, 16, 16];

/// Every parameter of the benchmark model, named as diffusers names them,
/// with PyTorch-like init scales.
fn weights(rng: &mut Rng) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut w = Vec::new();
    let mut linear = |w: &mut Vec<_>, name: &str, i: usize, o: usize| {
        let s = 1.0 / (i as f32).sqrt();
        w.push((format!("{name}.weight"), vec![o, i], rng.vec(o * i, s)));
        w.push((format!("{name}.bias"), vec![o], rng.vec(o, s)));
    };
    linear(&mut w, "proj_in", IN_CHANNELS, DIM);
    linear(
        &mut w,
        "time_embed.emb.timestep_embedder.linear_1",
        256,
        DIM,
    );
    linear(
        &mut w,
        "time_embed.emb.timestep_embedder.linear_2",
        DIM,
        DIM,
    );
    linear(&mut w, "time_embed.linear", DIM, 6 * DIM);
    linear(&mut w, "caption_projection.linear_1", CAPTION_CHANNELS, DIM);
    linear(&mut w, "caption_projection.linear_2", DIM, DIM);
    for b in 0..BLOCKS {
        let p = format!("transformer_blocks.{b}");
        for attn in ["attn1", "attn2"] {
            for l in ["to_q", "to_k", "to_v", "to_out.0"] {
                linear(&mut w, &format!("{p}.{attn}.{l}"), DIM, DIM);
            }
            for n in ["norm_q", "norm_k"] {
                w.push((format!("{p}.{attn}.{n}.weight"), vec![DIM], vec![1.0; DIM]));
            }
        }
        linear(&mut w, &format!("{p}.ff.net.0.proj"), DIM, 4 * DIM);
        linear(&mut w, &format!("{p}.ff.net.2"), 4 * DIM, DIM);
    }
    linear(&mut w, "proj_out", DIM, IN_CHANNELS);
    let s = 1.0 / (DIM as f32).sqrt();
    for b in 0..BLOCKS {
        let table = rng.vec(6 * DIM, s);
        w.push((
            format!("transformer_blocks.{b}.scale_shift_table"),
            vec![6, DIM],
            table,
        ));
    }
    w.push((
        "scale_shift_table".into(),
        vec![2, DIM],
        rng.vec(2 * DIM, s),
    ));
    w
}

fn config_json() -> String {
    format!(
        r#"{{"_class_name": "LTXVideoTransformer3DModel", "activation_fn": "gelu-approximate",
 "attention_bias": true, "attention_head_dim": {HEAD_DIM}, "attention_out_bias": true,
 "caption_channels": {CAPTION_CHANNELS}, "cross_attention_dim": {DIM}, "in_channels": {IN_CHANNELS},
 "norm_elementwise_affine": false, "norm_eps": 1e-06, "num_attention_heads": {HEADS},
 "num_layers": {BLOCKS}, "out_channels": {IN_CHANNELS}, "patch_size": 1, "patch_size_t": 1,
 "qk_norm": "rms_norm_across_heads"}}"#
    )
}

fn inputs(rng: &mut Rng) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let tokens: usize = GRID.iter().product();
    let mut coords = vec![0.0f32; 3 * tokens];
    let mut i = 0;
    for f in 0..GRID[0] {
        for y in 0..GRID[1] {
            for x in 0..GRID[2] {
                // As the condition pipeline: frames ×8 (causal), in seconds
                // at 25 fps; pixels ×32.
                coords[i] = (f * 8).saturating_sub(7) as f32 / 25.0;
                coords[tokens + i] = (y * 32) as f32;
                coords[2 * tokens + i] = (x * 32) as f32;
                i += 1;
            }
        }
    }
    let mut mask = vec![1.0f32; TEXT_TOKENS];
    mask[100..].fill(0.0);
    vec![
        (
            "hidden_states".into(),
            vec![1, tokens, IN_CHANNELS],
            rng.vec(tokens * IN_CHANNELS, 1.0),
        ),
        (
            "encoder_hidden_states".into(),
            vec![1, TEXT_TOKENS, CAPTION_CHANNELS],
            rng.vec(TEXT_TOKENS * CAPTION_CHANNELS, 1.0),
        ),
        ("encoder_attention_mask".into(), vec![1, TEXT_TOKENS], mask),
        ("timestep".into(), vec![1, 1], vec![500.0]),
        ("video_coords".into(), vec![1, 3, tokens], coords),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let setup = args.iter().any(|a| a == "--setup");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let threads = rayon::current_num_threads();

    let dir = workspace()
        .join("target")
        .join("bench")
        .join("transformer-cpu");
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).expect("bench folder");
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    std::fs::write(model_dir.join("config.json"), config_json()).expect("config");
    write_f32_safetensors(
        &model_dir.join("diffusion_pytorch_model.safetensors"),
        &weights(&mut rng),
        None,
    );
    let inputs_path = dir.join("inputs.safetensors");
    let input_tensors = inputs(&mut rng);
    write_f32_safetensors(&inputs_path, &input_tensors, None);

    let device = Device::cpu();
    let model =
        LtxVideoTransformer3DModel::load(&model_dir, DType::F32, &device).expect("load model");
    let t = |name: &str| {
        let (_, dims, data) = input_tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .expect("input");
        Tensor::from_slice(data, dims, &device).expect("tensor")
    };
    let (hs, enc, mask, ts, coords) = (
        t("hidden_states"),
        t("encoder_hidden_states"),
        t("encoder_attention_mask"),
        t("timestep"),
        t("video_coords"),
    );
    let inputs = TransformerInputs {
        hidden_states: &hs,
        encoder_hidden_states: &enc,
        encoder_attention_mask: Some(&mask),
        timestep: &ts,
        video_coords: &coords,
    };
    println!(
        "transformer-cpu: {BLOCKS} blocks, D={DIM}, {HEADS} heads, {} video + {TEXT_TOKENS} text tokens, {threads} threads, {runs} runs",
        GRID.iter().product::<usize>()
    );
    let mut out = model.forward(&inputs).expect("forward");
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        out = model.forward(&inputs).expect("forward");
        times.push(start.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    println!("ours:    median {ours:.3} s  {times:.3?}");
    // The same model stored in bf16: the CPU keeps it so and widens per op.
    let bf16_dir = dir.join("model-bf16");
    common::bf16_model_copy(&model_dir, &bf16_dir);
    let half =
        LtxVideoTransformer3DModel::load(&bf16_dir, DType::F32, &device).expect("load bf16 model");
    half.forward(&inputs).expect("forward");
    let half_times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(half.forward(&inputs).expect("forward"));
            start.elapsed().as_secs_f64()
        })
        .collect();
    let ours_bf16 = median(half_times.clone());
    println!("ours, bf16 weights: median {ours_bf16:.3} s  {half_times:.3?}");
    drop(half);

    let check = dir.join("torch_output.safetensors");
    let args = cpu_torch_args(&model_dir, &inputs_path, threads, runs, &check);
    let torch = run_torch("transformer_cpu.py", &args, setup)
        .map_err(|e| eprintln!("PyTorch half not run: {e}"))
        .ok()
        .and_then(|v| v["median_s"].as_f64());
    match torch {
        Some(torch_s) => {
            println!("pytorch: median {torch_s:.3} s");
            let files = genfx::weights::WeightFiles::open_file(&check).expect("torch output");
            let reference = files
                .load("output", out.dims(), DType::F32, &device)
                .expect("torch output tensor");
            // The reference builds its RoPE tables in f32 (~1e-3 off at the
            // highest frequencies); ours are exact, so expect ~1e-3 here.
            let diff = out.max_abs_diff(&reference).expect("compare");
            println!("max |ours - pytorch| = {diff:.2e}");
            println!(
                "{{\"ours_s\":{ours:.4},\"torch_s\":{torch_s:.4},\"ratio\":{:.3},\"ours_bf16_s\":{ours_bf16:.4},\"ratio_bf16\":{:.3}}}",
                ours / torch_s,
                ours_bf16 / torch_s
            );
        }
        None => println!(
            "{{\"ours_s\":{ours:.4},\"torch_s\":null,\"ratio\":null,\"ours_bf16_s\":{ours_bf16:.4},\"ratio_bf16\":null}}"
        ),
    }
}
