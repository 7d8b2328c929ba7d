//! The tokenizer.json reader against the HF tokenizers library, on the
//! tokenizer.json files that transformers writes for the tokenizer
//! fixture's SentencePiece models and on every string of that fixture's
//! corpus (made by `tools/fixtures/tokenizer_json.py`).

use std::path::PathBuf;

use genfx::testing::fixtures_dir;
use genfx::tokenizer::{T5Tokenizer, TokenizerError, TokenizerJson};
use safetensors::SafeTensors;

fn dir() -> PathBuf {
    fixtures_dir().join("tokenizer_json")
}

fn tensor(bytes: &[u8], name: &str) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).expect("fixture parses");
    st.tensor(name)
        .unwrap_or_else(|_| panic!("fixture tensor {name}"))
        .data()
        .to_vec()
}

fn i64s(bytes: &[u8], name: &str) -> Vec<i64> {
    tensor(bytes, name)
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn i32s(bytes: &[u8], name: &str) -> Vec<u32> {
    tensor(bytes, name)
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect()
}

fn ragged<T: Clone>(flat: &[T], offsets: &[i64]) -> Vec<Vec<T>> {
    offsets
        .windows(2)
        .map(|w| flat[w[0] as usize..w[1] as usize].to_vec())
        .collect()
}

/// The corpus as the tokenizer fixture stores it: raw bytes, some not UTF-8.
fn texts() -> Vec<Vec<u8>> {
    let cases = std::fs::read(fixtures_dir().join("tokenizer/cases.safetensors")).unwrap();
    ragged(&tensor(&cases, "text.bytes"), &i64s(&cases, "text.offsets"))
}

fn check_ids(model: &str) {
    let cases = std::fs::read(dir().join("cases.safetensors")).unwrap();
    let want = ragged(
        &i32s(&cases, &format!("{model}.ids")),
        &i64s(&cases, &format!("{model}.offsets")),
    );
    let tok = TokenizerJson::from_file(&dir().join(model).join("tokenizer.json")).unwrap();
    let texts = texts();
    assert_eq!(texts.len(), want.len());
    assert!(texts.len() >= 500, "the corpus has {} strings", texts.len());
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&want) {
        let text = String::from_utf8_lossy(text);
        let got = tok.encode(&text);
        if &got != want {
            failures.push(format!(
                "{text:?}\n  normalized {:?}\n  ours {got:?}\n  hf   {want:?}",
                tok.normalize(&text)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{model}: {} of {} strings differ from the tokenizers library:\n{}",
        failures.len(),
        texts.len(),
        failures[..failures.len().min(6)].join("\n")
    );
}

#[test]
fn t5like_tokenizer_json_matches_the_tokenizers_library_on_every_string() {
    check_ids("t5like");
}

#[test]
fn converted_byte_fallback_model_matches_on_every_string() {
    check_ids("bytefb");
}

#[test]
fn byte_fallback_switched_on_matches_on_every_string() {
    check_ids("bytefb_on");
}

#[test]
fn legacy_spelling_with_space_runs_replaced_and_add_prefix_space_matches() {
    check_ids("legacy");
}

#[test]
fn extra_id_sentinels_and_prepend_first_match() {
    check_ids("extra_first");
}

#[test]
fn strip_and_lowercase_before_the_charsmap_match() {
    check_ids("strip_lower");
}

#[test]
fn padding_truncation_and_mask_match_the_pipelines_tokenizer_call() {
    let cases = std::fs::read(dir().join("cases.safetensors")).unwrap();
    let max_length = i64s(&cases, "max_length")[0] as usize;
    for model in ["t5like", "bytefb_on", "extra_first"] {
        let tok =
            T5Tokenizer::from_file(&dir().join(model).join("tokenizer.json"), max_length).unwrap();
        let hf_ids = i32s(&cases, &format!("{model}.hf_ids"));
        let hf_mask = i32s(&cases, &format!("{model}.hf_mask"));
        let mut truncated = 0;
        for (i, text) in texts().iter().enumerate() {
            let got = tok.encode_bytes(text);
            let row = i * max_length..(i + 1) * max_length;
            let what = String::from_utf8_lossy(text);
            assert_eq!(got.ids, hf_ids[row.clone()], "{model}: ids of {what:?}");
            assert_eq!(
                got.attention_mask, hf_mask[row],
                "{model}: mask of {what:?}"
            );
            truncated += usize::from(got.truncated > 0);
        }
        assert!(truncated >= 5, "the corpus should exercise truncation");
    }
}

#[test]
fn tokenizer_json_of_another_model_type_is_refused_by_name() {
    for kind in ["bpe", "wordpiece"] {
        let path = dir().join(kind).join("tokenizer.json");
        let err = TokenizerJson::from_file(&path).unwrap_err();
        eprintln!("{kind}: {err}");
        assert!(matches!(err, TokenizerError::Unsupported { .. }), "{err}");
        let named = if kind == "bpe" { "BPE" } else { "WordPiece" };
        assert!(
            err.to_string().contains(&format!("is a {named} tokenizer")),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let err = T5Tokenizer::from_file(&path, 16).unwrap_err();
        assert!(err.to_string().contains("Unigram"), "{err}");
    }
}

#[test]
fn broken_tokenizer_json_is_an_error_not_a_panic() {
    let origin = PathBuf::from("broken/tokenizer.json");
    for text in [
        "",
        "{",
        "{}",
        r#"{"model": {"type": "Unigram"}}"#,
        r#"{"model": {"type": "Unigram", "vocab": [], "unk_id": 0}}"#,
        r#"{"model": {"type": "Unigram", "vocab": [["a", "x"]], "unk_id": 0}}"#,
        r#"{"model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 5}}"#,
        r#"{"model": {"type": "Unigram", "vocab": [["a", -1.0]]}}"#,
        r#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": "!!"}, "model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 0}}"#,
        r#"{"normalizer": {"type": "NFKC"}, "model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 0}}"#,
        r#"{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 0}}"#,
    ] {
        let err = TokenizerJson::from_str(text, &origin).unwrap_err();
        assert!(err.to_string().contains("broken/tokenizer.json"), "{err}");
    }
}

/// transformers 5's `T5Tokenizer` (what the LTX pipeline calls) reads
/// `spiece.model` by converting it to the tokenizers library's pipeline, so
/// the reference pipeline's ids for a spiece.model are this reader's ids
/// for the converted tokenizer.json, on every string, including those where
/// `sentencepiece` itself segments differently.
#[test]
fn the_pipelines_tokenizer_on_spiece_model_is_the_tokenizer_json_pipeline() {
    let spm_cases = std::fs::read(fixtures_dir().join("tokenizer/cases.safetensors")).unwrap();
    let max_length = i64s(&spm_cases, "max_length")[0] as usize;
    let hf_ids = i32s(&spm_cases, "t5like.hf_ids");
    let agrees = tensor(&spm_cases, "t5like.hf_agrees");
    let tok = T5Tokenizer::from_file(&dir().join("t5like/tokenizer.json"), max_length).unwrap();
    let mut where_sentencepiece_differs = 0;
    for (i, text) in texts().iter().enumerate() {
        let got = tok.encode_bytes(text);
        let row = i * max_length..(i + 1) * max_length;
        assert_eq!(got.ids, hf_ids[row], "{:?}", String::from_utf8_lossy(text));
        where_sentencepiece_differs += usize::from(agrees[i] == 0);
    }
    eprintln!(
        "equal on all {} strings; sentencepiece differs on {where_sentencepiece_differs}",
        texts().len()
    );
    assert!(
        where_sentencepiece_differs > 0,
        "the corpus should tell the two apart"
    );
}
