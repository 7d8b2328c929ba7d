//! The T5 v1.1 encoder against transformers' `T5EncoderModel` on the tiny
//! random-weight fixture made by `tools/fixtures/t5.py`.
//!
//! Tolerance: f32 against f32. The only differences are summation orders
//! (gemm blocking, softmax), which after three blocks stay near 1e-6 of
//! the output scale; we allow 2e-5 × max(1, max |reference|) (measured: 4e-6 at scale 3–4).

use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::models::t5::{relative_position_bucket, T5EncoderModel, T5Error};
use genfx::testing::{assert_close, fixtures_dir};
use safetensors::SafeTensors;

const TOL: f32 = 2e-5;

fn dir() -> PathBuf {
    fixtures_dir().join("t5")
}

struct Cases(Vec<u8>);

impl Cases {
    fn load() -> Self {
        Self(std::fs::read(dir().join("cases.safetensors")).expect("t5 cases"))
    }
    fn raw(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.0).expect("cases parse");
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("case tensor {name}"));
        (t.shape().to_vec(), t.data().to_vec())
    }
    fn i64s(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let (shape, data) = self.raw(name);
        let v = data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (shape, v)
    }
    fn u32s(&self, name: &str) -> (Vec<usize>, Vec<u32>) {
        let (shape, v) = self.i64s(name);
        (shape, v.into_iter().map(|x| x as u32).collect())
    }
    fn f32s(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, data) = self.raw(name);
        let v = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (shape, v)
    }
}

fn model() -> T5EncoderModel {
    T5EncoderModel::from_folder(&dir().join("text_encoder"), &Device::cpu())
        .expect("fixture model loads")
}

fn check_case(model: &T5EncoderModel, cases: &Cases, case: &str) {
    let (shape, ids) = cases.u32s(&format!("{case}.input_ids"));
    let (_, mask) = cases.u32s(&format!("{case}.attention_mask"));
    let (hshape, want) = cases.f32s(&format!("{case}.hidden"));
    let got = model.forward(&ids, &mask, shape[0], shape[1]).unwrap();
    assert_eq!(got.dims(), hshape.as_slice());
    assert_close(case, &got.to_vec_f32().unwrap(), &want, TOL);
}

#[test]
fn batch_of_two_prompts_with_padding_matches_transformers() {
    check_case(&model(), &Cases::load(), "batch");
}

#[test]
fn sequence_longer_than_max_distance_matches_transformers() {
    check_case(&model(), &Cases::load(), "long");
}

#[test]
fn relative_position_buckets_match_transformers() {
    let cases = Cases::load();
    let (_, relative) = cases.i64s("buckets.relative");
    let (_, want) = cases.i64s("buckets.bidirectional");
    for (rel, want) in relative.iter().zip(want) {
        assert_eq!(
            relative_position_bucket(*rel, 32, 128) as i64,
            want,
            "relative position {rel}"
        );
    }
}

#[test]
fn padding_does_not_change_the_real_tokens() {
    let model = model();
    let cases = Cases::load();
    let (shape, ids) = cases.u32s("batch.input_ids");
    let (_, mask) = cases.u32s("batch.attention_mask");
    let len = shape[1];
    let d = model.config().d_model;
    let real = mask[len..].iter().filter(|&&m| m != 0).count();
    let alone = model
        .forward(&ids[len..len + real], &vec![1; real], 1, real)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let padded = model
        .forward(&ids, &mask, 2, len)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_close(
        "second prompt without padding",
        &alone,
        &padded[len * d..(len + real) * d],
        TOL,
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    let model = model();
    let vocab = model.config().vocab_size as u32;
    let err = model.forward(&[1, vocab, 2], &[1, 1, 1], 1, 3).unwrap_err();
    assert!(
        matches!(err, T5Error::TokenOutOfRange { id, position: 1, .. } if id == vocab),
        "{err}"
    );
    let err = model.forward(&[1, 2, 3], &[1, 1], 1, 3).unwrap_err();
    assert!(matches!(err, T5Error::BadInput(_)), "{err}");
    let err = model.forward(&[], &[], 0, 0).unwrap_err();
    assert!(matches!(err, T5Error::BadInput(_)), "{err}");
}

/// A scratch copy of the fixture folder that a test may break.
fn scratch(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("genfx-t5-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(dir().join("text_encoder").join(file), out.join(file)).unwrap();
    }
    out
}

fn rewrite_config(folder: &Path, from: &str, to: &str) {
    let path = folder.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "config has no {from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[test]
fn missing_or_wrong_weights_are_errors_naming_the_file() {
    let missing = Path::new("/nonexistent/genfx/text_encoder");
    let err = T5EncoderModel::from_folder(missing, &Device::cpu())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/genfx/text_encoder"),
        "{err}"
    );

    let relu = scratch("relu");
    rewrite_config(&relu, "\"gated-gelu\"", "\"relu\"");
    let err = T5EncoderModel::from_folder(&relu, &Device::cpu())
        .err()
        .unwrap();
    assert!(matches!(err, T5Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");

    let deeper = scratch("deeper");
    rewrite_config(&deeper, "\"num_layers\": 3", "\"num_layers\": 4");
    let err = T5EncoderModel::from_folder(&deeper, &Device::cpu())
        .err()
        .unwrap();
    assert!(err.to_string().contains("encoder.block.3"), "{err}");

    let shallower = scratch("shallower");
    rewrite_config(&shallower, "\"num_layers\": 3", "\"num_layers\": 2");
    let err = T5EncoderModel::from_folder(&shallower, &Device::cpu())
        .err()
        .unwrap();
    assert!(matches!(err, T5Error::UnexpectedTensors { .. }), "{err}");

    let corrupt = scratch("corrupt");
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\x10\0\0\0\0\0\0\0{not json}",
    )
    .unwrap();
    let err = T5EncoderModel::from_folder(&corrupt, &Device::cpu())
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    for folder in [relu, deeper, shallower, corrupt] {
        let _ = std::fs::remove_dir_all(folder);
    }
}
