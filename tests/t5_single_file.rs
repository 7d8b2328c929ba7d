//! A T5 encoder kept as one safetensors file (ComfyUI's layout), f32 and
//! fp8, against transformers' `T5EncoderModel` on the fixture made by
//! `tools/fixtures/t5file.py`; files that are not T5; fp8 decoding of every
//! byte against torch.
//!
//! Tolerance as in t5_parity.rs: f32 against f32, 2e-5 × max(1, scale). The
//! fp8 file is compared with transformers run on the fp8 values widened to
//! f32, so it is f32 against f32 too: widening is exact, and any fp8 decode
//! error would move outputs by the fp8 step (≥ 1/16 relative), far beyond
//! the tolerance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::models::t5::{T5EncoderModel, T5Error};
use genfx::tensor::DType;
use genfx::testing::{assert_close, fixtures_dir, max_abs_err};
use genfx::weights::{fp8, WeightError, WeightFiles};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

const TOL: f32 = 2e-5;

fn dir() -> PathBuf {
    fixtures_dir().join("t5file")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn tensor(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<u8>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name}"));
    (t.shape().to_vec(), t.data().to_vec())
}

fn f32s(bytes: &[u8], name: &str) -> Vec<f32> {
    tensor(bytes, name)
        .1
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn ids(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<u32>) {
    let (shape, data) = tensor(bytes, name);
    let v = data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    (shape, v)
}

fn run(model: &T5EncoderModel, want: &str) -> (Vec<f32>, Vec<f32>) {
    let cases = read("cases.safetensors");
    let (shape, input) = ids(&cases, "input_ids");
    let (_, mask) = ids(&cases, "attention_mask");
    let got = model.forward(&input, &mask, shape[0], shape[1]).unwrap();
    (got.to_vec_f32().unwrap(), f32s(&cases, want))
}

#[test]
fn single_file_config_comes_from_the_shapes() {
    let model =
        T5EncoderModel::from_file_as(&dir().join("t5.safetensors"), DType::F32, &Device::cpu())
            .unwrap();
    let c = model.config();
    let got = (
        c.vocab_size,
        c.d_model,
        c.num_layers,
        c.num_heads,
        c.d_kv,
        c.d_ff,
    );
    // The fixture's shapes (tools/fixtures/t5.py CONFIG), read back.
    assert_eq!(got, (1024, 48, 3, 4, 8, 80));
    assert_eq!(c.relative_attention_num_buckets, 32);
    assert_eq!(c.relative_attention_max_distance, 128);
}

#[test]
fn single_file_t5_matches_transformers() {
    let model =
        T5EncoderModel::open_as(&dir().join("t5.safetensors"), DType::F32, &Device::cpu()).unwrap();
    let (got, want) = run(&model, "hidden");
    assert_close("single-file T5", &got, &want, TOL);
}

#[test]
fn fp8_single_file_matches_transformers_on_the_fp8_weights() {
    let path = dir().join("t5_fp8_e4m3fn.safetensors");
    let model = T5EncoderModel::open_as(&path, DType::F32, &Device::cpu()).unwrap();
    let (got, want) = run(&model, "hidden_fp8");
    assert_close("fp8 T5 against the fp8 reference", &got, &want, TOL);
    // The file really is the rounded one: its outputs are far from the
    // full-precision model's.
    let (_, full) = run(&model, "hidden");
    let (err, scale) = max_abs_err(&got, &full);
    assert!(
        err > 100.0 * TOL * scale.max(1.0),
        "fp8 rounding left no trace ({err})"
    );
}

#[test]
fn fp8_file_loads_in_16_bit_types_exactly() {
    // Every fp8 value is exact in bf16 and f16: the widened weights equal
    // the f32 ones bit for bit once converted back.
    let files = WeightFiles::open_file(&dir().join("t5_fp8_e4m3fn.safetensors")).unwrap();
    let name = "encoder.block.0.layer.0.SelfAttention.q.weight";
    let dims = files.shape(name).unwrap().to_vec();
    let cpu = Device::cpu();
    let f32v = files
        .load(name, &dims, DType::F32, &cpu)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    for dtype in [DType::BF16, DType::F16] {
        let v = files
            .load(name, &dims, dtype, &cpu)
            .unwrap()
            .to_vec_f32()
            .unwrap();
        assert_eq!(v, f32v, "{dtype}");
    }
}

/// The T5 file's tensors under another prefix, written to a temp file.
fn rewritten(
    name: &str,
    rename: impl Fn(&str) -> String,
    extra: &[(&str, Dtype, Vec<u8>)],
) -> PathBuf {
    let bytes = read("t5.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut views: HashMap<String, TensorView> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (rename(&n), t))
        .collect();
    for (n, dtype, data) in extra {
        let elements = data.len() * 8 / dtype.bitsize();
        views.insert(
            n.to_string(),
            TensorView::new(*dtype, vec![elements], data).unwrap(),
        );
    }
    let out = std::env::temp_dir().join(format!("genfx-t5file-{}-{name}", std::process::id()));
    safetensors::serialize_to_file(views, None, &out).unwrap();
    out
}

#[test]
fn prefixed_names_as_in_bundled_checkpoints_load() {
    let path = rewritten(
        "prefixed.safetensors",
        |n| format!("text_encoders.t5xxl.transformer.{n}"),
        &[],
    );
    let model = T5EncoderModel::open_as(&path, DType::F32, &Device::cpu()).unwrap();
    let (got, want) = run(&model, "hidden");
    assert_close("prefixed T5", &got, &want, TOL);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_bare_stack_without_encoder_and_shared_names_loads() {
    // `block.N.*`, `final_layer_norm.weight`, `embed_tokens.weight`.
    let path = rewritten(
        "bare.safetensors",
        |n| {
            n.strip_prefix("encoder.")
                .unwrap_or(n)
                .replace("shared.weight", "embed_tokens.weight")
        },
        &[],
    );
    let model = T5EncoderModel::open_as(&path, DType::F32, &Device::cpu()).unwrap();
    let (got, want) = run(&model, "hidden");
    assert_close("bare-stack T5", &got, &want, TOL);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_second_copy_of_the_tied_embedding_is_accepted_and_other_extras_are_not() {
    let shared = tensor(&read("t5.safetensors"), "shared.weight").1;
    let path = rewritten(
        "tied.safetensors",
        str::to_string,
        &[("encoder.embed_tokens.weight", Dtype::F32, shared)],
    );
    // The extra copy is written 1-D by `rewritten`: the loader reads
    // `shared.weight` and leaves the spare alone.
    let model = T5EncoderModel::open_as(&path, DType::F32, &Device::cpu()).unwrap();
    let (got, want) = run(&model, "hidden");
    assert_close("T5 with both embedding names", &got, &want, TOL);
    let _ = std::fs::remove_file(path);

    let path = rewritten(
        "decoder.safetensors",
        str::to_string,
        &[(
            "decoder.final_layer_norm.weight",
            Dtype::F32,
            vec![0; 4 * 48],
        )],
    );
    let err = T5EncoderModel::open_as(&path, DType::F32, &Device::cpu())
        .err()
        .unwrap();
    eprintln!("{err}");
    assert!(matches!(err, T5Error::UnexpectedTensors { .. }), "{err}");
    assert!(
        err.to_string().contains("decoder.final_layer_norm.weight"),
        "{err}"
    );
    let _ = std::fs::remove_file(path);
}

fn refused(path: &Path) -> String {
    let err = T5EncoderModel::open_as(path, DType::F32, &Device::cpu())
        .err()
        .expect("refused");
    assert!(matches!(err, T5Error::Config { .. }), "{err}");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn a_clip_text_encoder_file_is_refused_saying_what_it_is() {
    let msg = refused(&dir().join("clip.safetensors"));
    assert!(msg.contains("CLIP text encoder"), "{msg}");
    assert!(msg.contains("t5xxl_fp16.safetensors"), "{msg}");
}

#[test]
fn comfyui_scaled_fp8_file_is_refused_by_name() {
    let path = rewritten(
        "scaled.safetensors",
        str::to_string,
        &[("scaled_fp8", Dtype::F8_E4M3, vec![0])],
    );
    let msg = refused(&path);
    assert!(msg.contains("scaled fp8"), "{msg}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn original_t5_relu_file_is_refused() {
    let path = rewritten(
        "relu.safetensors",
        |n| n.replace("wi_0.weight", "wi.weight"),
        &[],
    );
    let msg = refused(&path);
    assert!(msg.contains("original T5"), "{msg}");
    let _ = std::fs::remove_file(path);
}

fn same(ours: f32, torch: f32) -> bool {
    (ours.is_nan() && torch.is_nan()) || ours.to_bits() == torch.to_bits()
}

#[test]
fn every_fp8_byte_decodes_as_torch_decodes_it() {
    let table = read("fp8.safetensors");
    let (_, bytes) = tensor(&table, "bytes");
    assert_eq!(bytes, (0..=255u8).collect::<Vec<_>>());
    let e4m3 = f32s(&table, "e4m3fn");
    let e5m2 = f32s(&table, "e5m2");
    for b in 0..=255u8 {
        let i = usize::from(b);
        assert!(
            same(fp8::e4m3fn_to_f32(b), e4m3[i]),
            "e4m3fn {b:#04x}: {} vs torch {}",
            fp8::e4m3fn_to_f32(b),
            e4m3[i]
        );
        assert!(
            same(fp8::e5m2_to_f32(b), e5m2[i]),
            "e5m2 {b:#04x}: {} vs torch {}",
            fp8::e5m2_to_f32(b),
            e5m2[i]
        );
    }
    // e4m3fn: no infinities, NaN only at 0x7f and 0xff.
    let nans: Vec<usize> = (0..256).filter(|&i| e4m3[i].is_nan()).collect();
    assert_eq!(nans, [0x7f, 0xff]);
    assert!(e4m3.iter().all(|v| !v.is_infinite()));
}

#[test]
fn a_dtype_we_cannot_read_names_the_tensor_and_the_dtype() {
    let path = rewritten(
        "e8m0.safetensors",
        str::to_string,
        &[("odd.scale", Dtype::F8_E8M0, vec![127, 128])],
    );
    let files = WeightFiles::open_file(&path).unwrap();
    let err = files
        .load("odd.scale", &[2], DType::F32, &Device::cpu())
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, WeightError::WrongDType { .. }), "{err}");
    assert!(
        err.to_string().contains("odd.scale") && err.to_string().contains("F8_E8M0"),
        "{err}"
    );
    let _ = std::fs::remove_file(path);
}
