//! `cargo xtask bench t5-cpu`: T5 v1.1 encoder, one 128-token prompt, on the
//! CPU, ours against PyTorch (transformers `T5EncoderModel`) with the same
//! weights and thread count on this machine.
//!
//! The model has T5 v1.1 small's shape (d_model 512, 6 heads of 64, d_ff
//! 1024, 8 blocks, 32128 tokens) with random weights that this bench writes
//! as a transformers folder, so both sides load the same file.
//!
//! PyTorch runs through `$GENFX_TORCH_PYTHON`, else `.tools/bench-venv`
//! (created from `tools/requirements.txt` with `--setup`); without a working
//! one the torch figures are null.
//! Prints medians and peak memory, and as the last line
//! `{"ours_s":…,"torch_s":…,"ratio":…}`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;

use common::{median, status_kib, torch_python, write_f32_safetensors};
use genfx::backend::Device;
use genfx::models::t5::T5EncoderModel;
use safetensors::tensor::{Dtype, TensorView};

const D_MODEL: usize = 512;
const D_KV: usize = 64;
const HEADS: usize = 6;
const D_FF: usize = 1024;
const LAYERS: usize = 8;
const VOCAB: usize = 32128;
const TOKENS: usize = 128;
const RUNS: usize = 40;

/// SplitMix64: reproducible weights without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-scale, scale).
    fn uniform(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    }
}

/// Writes `dir/text_encoder/` (config and weights) and `dir/inputs.safetensors`.
fn write_model(root: &Path) {
    let dir = &root.join("text_encoder");
    std::fs::create_dir_all(dir).expect("bench folder");
    let config = format!(
        r#"{{"architectures":["T5EncoderModel"],"model_type":"t5","vocab_size":{VOCAB},"d_model":{D_MODEL},"d_kv":{D_KV},"d_ff":{D_FF},"num_layers":{LAYERS},"num_heads":{HEADS},"relative_attention_num_buckets":32,"relative_attention_max_distance":128,"dropout_rate":0.0,"layer_norm_epsilon":1e-6,"feed_forward_proj":"gated-gelu","dense_act_fn":"gelu_new","is_gated_act":true,"is_encoder_decoder":false,"use_cache":false,"tie_word_embeddings":false,"pad_token_id":0,"eos_token_id":1}}"#
    );
    std::fs::write(dir.join("config.json"), config).expect("config.json");
    let mut rng = Rng(0x5eed);
    let inner = HEADS * D_KV;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |name: String, dims: Vec<usize>, scale: f32, offset: f32| {
        let n = dims.iter().product();
        let data = rng
            .uniform(n, scale)
            .into_iter()
            .map(|v| v + offset)
            .collect();
        tensors.push((name, dims, data));
    };
    add("shared.weight".into(), vec![VOCAB, D_MODEL], 1.0, 0.0);
    for i in 0..LAYERS {
        let p = format!("encoder.block.{i}.layer");
        for w in ["q", "k", "v"] {
            add(
                format!("{p}.0.SelfAttention.{w}.weight"),
                vec![inner, D_MODEL],
                0.05,
                0.0,
            );
        }
        add(
            format!("{p}.0.SelfAttention.o.weight"),
            vec![D_MODEL, inner],
            0.05,
            0.0,
        );
        if i == 0 {
            add(
                format!("{p}.0.SelfAttention.relative_attention_bias.weight"),
                vec![32, HEADS],
                1.0,
                0.0,
            );
        }
        add(format!("{p}.0.layer_norm.weight"), vec![D_MODEL], 0.1, 1.0);
        add(
            format!("{p}.1.DenseReluDense.wi_0.weight"),
            vec![D_FF, D_MODEL],
            0.05,
            0.0,
        );
        add(
            format!("{p}.1.DenseReluDense.wi_1.weight"),
            vec![D_FF, D_MODEL],
            0.05,
            0.0,
        );
        add(
            format!("{p}.1.DenseReluDense.wo.weight"),
            vec![D_MODEL, D_FF],
            0.03,
            0.0,
        );
        add(format!("{p}.1.layer_norm.weight"), vec![D_MODEL], 0.1, 1.0);
    }
    add(
        "encoder.final_layer_norm.weight".into(),
        vec![D_MODEL],
        0.1,
        1.0,
    );
    write_f32_safetensors(&dir.join("model.safetensors"), &tensors, None);

    let ids: Vec<i64> = (0..TOKENS)
        .map(|i| {
            if i + 1 == TOKENS {
                1
            } else {
                3 + (rng.next() % (VOCAB as u64 - 3)) as i64
            }
        })
        .collect();
    let bytes = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let ids_b = bytes(&ids);
    let mask_b = bytes(&vec![1i64; TOKENS]);
    let views = [
        (
            "input_ids",
            TensorView::new(Dtype::I64, vec![1, TOKENS], &ids_b).unwrap(),
        ),
        (
            "attention_mask",
            TensorView::new(Dtype::I64, vec![1, TOKENS], &mask_b).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &root.join("inputs.safetensors")).expect("inputs");
}

fn read_inputs(root: &Path) -> (Vec<u32>, Vec<u32>) {
    let bytes = std::fs::read(root.join("inputs.safetensors")).expect("inputs");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("inputs parse");
    let get = |name: &str| -> Vec<u32> {
        st.tensor(name)
            .expect(name)
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    };
    (get("input_ids"), get("attention_mask"))
}

fn torch_half(dir: &Path, threads: usize) -> Option<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/bench/t5_cpu.py");
    let setup = std::env::args().any(|a| a == "--setup");
    let python = torch_python(setup).map_err(|e| eprintln!("{e}")).ok()?;
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir.join("text_encoder"))
        .arg(dir.join("inputs.safetensors"))
        .arg(threads.to_string())
        .arg(RUNS.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().last().map(str::to_string)
        }
        Ok(out) => {
            eprintln!(
                "torch half failed ({}): {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("torch half not run: cannot start {}: {e}", python.display());
            None
        }
    }
}

/// The number after `"key":` in a flat JSON line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = line[at..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn main() {
    let threads = rayon::current_num_threads();
    let dir = std::env::temp_dir().join("genfx-bench-t5-cpu");
    write_model(&dir);
    let (ids, mask) = read_inputs(&dir);
    // Writing the weights above peaked at several copies of them; restart
    // the high-water mark so the figure is the encoder's own (Linux).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let start = Instant::now();
    let model =
        T5EncoderModel::from_folder(&dir.join("text_encoder"), &Device::cpu()).expect("load");
    let load_s = start.elapsed().as_secs_f64();
    let resident_after_load = status_kib("VmRSS").map(|k| k as f64 / 1024.0);
    for _ in 0..2 {
        model.forward(&ids, &mask, 1, TOKENS).expect("warm-up");
    }
    let times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let out = model.forward(&ids, &mask, 1, TOKENS).expect("encode");
            std::hint::black_box(out);
            start.elapsed().as_secs_f64()
        })
        .collect();
    let ours = median(times);
    let ours_peak = status_kib("VmHWM").map(|k| k as f64 / 1024.0);
    drop(model);
    // The same encoder stored in bf16: the CPU keeps it so and widens per op.
    let bf16_dir = dir.join("text_encoder-bf16");
    common::bf16_model_copy(&dir.join("text_encoder"), &bf16_dir);
    let half = T5EncoderModel::from_folder(&bf16_dir, &Device::cpu()).expect("load bf16");
    half.forward(&ids, &mask, 1, TOKENS).expect("warm-up");
    let ours_bf16 = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(half.forward(&ids, &mask, 1, TOKENS).expect("encode"));
                start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    drop(half);

    println!("T5 v1.1-small shape, 1 x {TOKENS} tokens, {threads} threads, median of {RUNS}");
    println!(
        "ours : encode {:.4} s (load {:.3} s), peak RSS {:.0} MiB{}, resident after load {:.0} MiB",
        ours,
        load_s,
        ours_peak.unwrap_or(f64::NAN),
        if reset {
            ""
        } else {
            " (includes writing the weights)"
        },
        resident_after_load.unwrap_or(f64::NAN)
    );
    let torch = torch_half(&dir, threads);
    let torch_s = torch.as_deref().and_then(|l| json_number(l, "torch_s"));
    if let Some(line) = &torch {
        println!(
            "torch: encode {:.4} s (load {:.3} s), peak RSS {:.0} MiB  [{line}]",
            torch_s.unwrap_or(f64::NAN),
            json_number(line, "torch_load_s").unwrap_or(f64::NAN),
            json_number(line, "torch_peak_rss_mb").unwrap_or(f64::NAN),
        );
    }
    let fmt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
    let ratio = torch_s.map(|t| ours / t);
    println!("ours : encode with bf16 weights {ours_bf16:.4} s");
    println!(
        "{{\"ours_s\":{:.6},\"torch_s\":{},\"ratio\":{},\"ours_peak_rss_mb\":{},\"ours_bf16_s\":{:.6},\"ratio_bf16\":{}}}",
        ours,
        fmt(torch_s),
        fmt(ratio),
        fmt(ours_peak),
        ours_bf16,
        fmt(torch_s.map(|t| ours_bf16 / t))
    );
}
