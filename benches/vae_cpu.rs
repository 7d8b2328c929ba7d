//! `cargo xtask bench vae-cpu [--setup] [--runs N]`
//!
//! LTX-Video VAE decode of a small clip on the CPU: 3 latent frames of 4x6
//! (128 latent channels) to 17 frames of 192x128, with a 0.9.5-layout VAE at
//! a quarter of the real decoder's widths (256/128/64 instead of
//! 1024/512/256, 3 resnets per block instead of 5; residual depth-to-space
//! upsamplers, timestep conditioning). Ours against PyTorch f32 (diffusers) on
//! the same machine, same thread count, same weights and latents. Prints the
//! median of each, the peak resident memory (VmHWM) of each process, and,
//! last, one JSON line `{"ours_s":..,"torch_s":..,"ratio":..}` (ratio = ours
//! / PyTorch).
//!
//! The PyTorch half runs `tools/bench/vae_cpu.py` with the Python in
//! `$GENFX_TORCH_PYTHON`, else `<workspace>/.tools/bench-venv/bin/python`. `--setup`
//! creates that venv from `tools/requirements.txt` when it is missing.
//! Without a usable Python the JSON reports `"torch_s":null`.
//!
//! What the baseline spends its time on (torch 2.15, 2 threads, profiled):
//! about half in `aten::slow_conv3d_forward` (PyTorch's reference conv3d,
//! not oneDNN, for these shapes), the rest in the copies, concatenations
//! (causal time padding) and unfused elementwise passes of the RMS norms.

use std::time::Instant;

mod common;

use common::{
    cpu_torch_args, median, root as workspace, run_torch, status_kib, write_f32_safetensors, Named,
    Rng,
};
use genfx::models::ltx::vae::{AutoencoderKLLTXVideo, Tiling, VaeConfig, Volume};
use genfx::weights::WeightFiles;

const LATENT: usize = 128;
/// Latent frames, height, width of the clip.
const GRID: [usize; 3] = [3, 4, 6];
const TIMESTEP: f32 = 0.05;

fn config_json() -> String {
    r#"{"_class_name": "AutoencoderKLLTXVideo", "in_channels": 3, "out_channels": 3,
 "latent_channels": 128, "block_out_channels": [8, 16, 32, 64, 64],
 "down_block_types": ["LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D", "LTXVideo095DownBlock3D"],
 "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
 "spatio_temporal_scaling": [true, true, true, true], "layers_per_block": [1, 1, 1, 1, 1],
 "decoder_block_out_channels": [64, 128, 256], "decoder_layers_per_block": [3, 3, 3, 3],
 "decoder_spatio_temporal_scaling": [true, true, true], "decoder_inject_noise": [false, false, false, false],
 "upsample_residual": [true, true, true], "upsample_factor": [2, 2, 2], "timestep_conditioning": true,
 "patch_size": 4, "patch_size_t": 1, "resnet_norm_eps": 1e-06, "scaling_factor": 1.0,
 "encoder_causal": true, "decoder_causal": false,
 "spatial_compression_ratio": 32, "temporal_compression_ratio": 8}"#
        .to_string()
}

/// Every tensor of the VAE in diffusers' names, with PyTorch-like scales.
fn weights(config: &VaeConfig, rng: &mut Rng) -> Vec<Named> {
    let mut w: Vec<Named> = Vec::new();
    let mut conv = |w: &mut Vec<Named>, name: &str, cin: usize, cout: usize| {
        let s = 1.0 / ((cin * 27) as f32).sqrt();
        w.push((
            format!("{name}.conv.weight"),
            vec![cout, cin, 3, 3, 3],
            rng.vec(cout * cin * 27, s),
        ));
        w.push((format!("{name}.conv.bias"), vec![cout], rng.vec(cout, s)));
    };
    let enc = config.encoder_plan().expect("encoder plan");
    let p2 = config.patch_size * config.patch_size;
    conv(
        &mut w,
        "encoder.conv_in",
        config.in_channels * p2,
        enc.blocks[0].0,
    );
    for (i, &(cin, cout, layers, kind)) in enc.blocks.iter().enumerate() {
        for j in 0..layers {
            for c in ["conv1", "conv2"] {
                conv(
                    &mut w,
                    &format!("encoder.down_blocks.{i}.resnets.{j}.{c}"),
                    cin,
                    cin,
                );
            }
        }
        if let Some(kind) = kind {
            let volume: usize = kind.stride().iter().product();
            conv(
                &mut w,
                &format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                cin,
                cout / volume,
            );
        }
    }
    for j in 0..enc.mid_layers {
        for c in ["conv1", "conv2"] {
            let m = enc.mid_channels;
            conv(&mut w, &format!("encoder.mid_block.resnets.{j}.{c}"), m, m);
        }
    }
    conv(
        &mut w,
        "encoder.conv_out",
        enc.mid_channels,
        config.latent_channels + 1,
    );

    let dec = config.decoder_plan().expect("decoder plan");
    let mut rest: Vec<Named> = Vec::new();
    let embedder = |name: &str, dim: usize, rng: &mut Rng| {
        let mut out = Vec::new();
        for (l, fan_in) in [("linear_1", 256), ("linear_2", dim)] {
            let s = 1.0 / (fan_in as f32).sqrt();
            let n = format!("{name}.timestep_embedder.{l}");
            out.push((
                format!("{n}.weight"),
                vec![dim, fan_in],
                rng.vec(dim * fan_in, s),
            ));
            out.push((format!("{n}.bias"), vec![dim], rng.vec(dim, s)));
        }
        out
    };
    conv(
        &mut w,
        "decoder.conv_in",
        config.latent_channels,
        dec.mid_channels,
    );
    let resnets = |prefix: &str, c: usize, layers: usize, w: &mut Vec<Named>, rng: &mut Rng| {
        for j in 0..layers {
            for conv_name in ["conv1", "conv2"] {
                let s = 1.0 / ((c * 27) as f32).sqrt();
                let n = format!("{prefix}.resnets.{j}.{conv_name}.conv");
                w.push((
                    format!("{n}.weight"),
                    vec![c, c, 3, 3, 3],
                    rng.vec(c * c * 27, s),
                ));
                w.push((format!("{n}.bias"), vec![c], rng.vec(c, s)));
            }
            let table = rng.vec(4 * c, 1.0 / (c as f32).sqrt());
            w.push((
                format!("{prefix}.resnets.{j}.scale_shift_table"),
                vec![4, c],
                table,
            ));
        }
    };
    rest.extend(embedder(
        "decoder.mid_block.time_embedder",
        4 * dec.mid_channels,
        rng,
    ));
    resnets(
        "decoder.mid_block",
        dec.mid_channels,
        dec.mid_layers,
        &mut rest,
        rng,
    );
    for (i, b) in dec.up_blocks.iter().enumerate() {
        let prefix = format!("decoder.up_blocks.{i}");
        rest.extend(embedder(
            &format!("{prefix}.time_embedder"),
            4 * b.channels,
            rng,
        ));
        if let Some((_, f)) = b.upsampler {
            let cin = b.channels * f;
            let cout = cin * 8 / f;
            let s = 1.0 / ((cin * 27) as f32).sqrt();
            let n = format!("{prefix}.upsamplers.0.conv.conv");
            rest.push((
                format!("{n}.weight"),
                vec![cout, cin, 3, 3, 3],
                rng.vec(cout * cin * 27, s),
            ));
            rest.push((format!("{n}.bias"), vec![cout], rng.vec(cout, s)));
        }
        resnets(&prefix, b.channels, b.layers, &mut rest, rng);
    }
    let last = dec.out_block_channels;
    let s = 1.0 / ((last * 27) as f32).sqrt();
    let out_c = config.out_channels * p2;
    rest.push((
        "decoder.conv_out.conv.weight".into(),
        vec![out_c, last, 3, 3, 3],
        rng.vec(out_c * last * 27, s),
    ));
    rest.push((
        "decoder.conv_out.conv.bias".into(),
        vec![out_c],
        rng.vec(out_c, s),
    ));
    rest.extend(embedder("decoder.time_embedder", 2 * last, rng));
    rest.push((
        "decoder.scale_shift_table".into(),
        vec![2, last],
        rng.vec(2 * last, 1.0 / (last as f32).sqrt()),
    ));
    rest.push((
        "decoder.timestep_scale_multiplier".into(),
        vec![],
        vec![1000.0],
    ));
    rest.push(("latents_mean".into(), vec![LATENT], rng.vec(LATENT, 0.1)));
    rest.push(("latents_std".into(), vec![LATENT], vec![1.0; LATENT]));
    w.extend(rest);
    w
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
        .unwrap_or(5)
        .max(1);
    let threads = rayon::current_num_threads();

    let dir = workspace().join("target").join("bench").join("vae-cpu");
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).expect("bench folder");
    let config_text = config_json();
    std::fs::write(model_dir.join("config.json"), &config_text).expect("config");
    let config = VaeConfig::from_json(&config_text, "config.json").expect("bench config");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    write_f32_safetensors(
        &model_dir.join("diffusion_pytorch_model.safetensors"),
        &weights(&config, &mut rng),
        None,
    );
    let [f, h, w] = GRID;
    let latents =
        Volume::new([1, LATENT, f, h, w], rng.vec(LATENT * f * h * w, 1.0)).expect("latents");
    let inputs_path = dir.join("inputs.safetensors");
    write_f32_safetensors(
        &inputs_path,
        &[
            (
                "latents".into(),
                latents.dims().to_vec(),
                latents.data().to_vec(),
            ),
            ("timestep".into(), vec![1], vec![TIMESTEP]),
        ],
        None,
    );

    let vae = AutoencoderKLLTXVideo::load(&model_dir).expect("load VAE");
    // Measure the decode's peak from here on: writing "5" to clear_refs
    // resets VmHWM to the current resident size (Linux >= 4.0).
    let rss_before = status_kib("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    println!(
        "vae-cpu: decode [1, {LATENT}, {f}, {h}, {w}] -> [1, 3, {}, {}, {}], decoder widths 256/128/64, {threads} threads, {runs} runs",
        (f - 1) * 8 + 1,
        h * 32,
        w * 32
    );
    let mut out = vae
        .decode(&latents, &[TIMESTEP], &Tiling::default())
        .expect("decode");
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        out = vae
            .decode(&latents, &[TIMESTEP], &Tiling::default())
            .expect("decode");
        times.push(start.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    let ours_hwm = status_kib("VmHWM");
    println!("ours:    median {ours:.3} s  {times:.3?}");
    println!(
        "ours:    peak RSS (VmHWM) {} MiB{}, {} MiB resident after loading",
        ours_hwm.map_or("?".into(), |k| (k / 1024).to_string()),
        if reset {
            " during decode"
        } else {
            " (whole process)"
        },
        rss_before.map_or("?".into(), |k| (k / 1024).to_string()),
    );

    let check = dir.join("torch_output.safetensors");
    let args = cpu_torch_args(&model_dir, &inputs_path, threads, runs, &check);
    let torch = run_torch("vae_cpu.py", &args, setup)
        .map_err(|e| eprintln!("PyTorch half not run: {e}"))
        .ok()
        .and_then(|v| {
            Some((
                v["median_s"].as_f64()?,
                v["vm_hwm_kib"].as_u64(),
                v["rss_before_kib"].as_u64(),
            ))
        });
    match torch {
        Some((torch_s, hwm, before)) => {
            println!("pytorch: median {torch_s:.3} s");
            println!(
                "pytorch: peak RSS (VmHWM) {} MiB (whole process), {} MiB resident after loading",
                hwm.map_or("?".into(), |k| (k / 1024).to_string()),
                before.map_or("?".into(), |k| (k / 1024).to_string()),
            );
            let files = WeightFiles::open_file(&check).expect("torch output");
            let dims = out.dims();
            let reference = files
                .load(
                    "video",
                    &dims,
                    genfx::tensor::DType::F32,
                    &genfx::backend::Device::cpu(),
                )
                .expect("torch output tensor")
                .to_vec_f32()
                .expect("torch output values");
            let diff = out
                .data()
                .iter()
                .zip(&reference)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            println!("max |ours - pytorch| = {diff:.2e} (max |pytorch| = {scale:.2e})");
            println!(
                "{{\"ours_s\":{ours:.4},\"torch_s\":{torch_s:.4},\"ratio\":{:.3}}}",
                ours / torch_s
            );
        }
        None => println!("{{\"ours_s\":{ours:.4},\"torch_s\":null,\"ratio\":null}}"),
    }
}
