//! The text-encoder service: weights loaded on demand and released, and
//! the embedding cache that keeps unchanged prompts from being re-encoded.

use std::path::PathBuf;

use genfx::backend::Device;
use genfx::models::t5::{ReleasePolicy, T5EncoderModel, TextEncoder};
use genfx::testing::{assert_close, fixtures_dir};
use genfx::tokenizer::T5Tokenizer;

const MAX_LENGTH: usize = 32;

fn service(policy: ReleasePolicy) -> TextEncoder {
    let tokenizer = T5Tokenizer::from_file(
        &fixtures_dir().join("tokenizer").join("t5like.model"),
        MAX_LENGTH,
    )
    .unwrap();
    TextEncoder::new(
        tokenizer,
        &fixtures_dir().join("t5").join("text_encoder"),
        &Device::cpu(),
        policy,
    )
}

#[test]
fn unchanged_prompts_are_never_reencoded() {
    let te = service(ReleasePolicy::AfterUse);
    assert!(!te.is_loaded());
    let first = te
        .encode(&["a camera pans over the city", "rain at night"])
        .unwrap();
    assert_eq!(te.encoder_runs(), 1);
    assert_eq!(te.weight_loads(), 1);
    assert!(!te.is_loaded(), "weights must be released after use");

    let again = te
        .encode(&["rain at night", "a camera pans over the city"])
        .unwrap();
    assert_eq!(te.encoder_runs(), 1, "cached prompts ran the encoder");
    assert_eq!(te.weight_loads(), 1);
    assert_eq!(
        again[0].hidden.to_vec_f32().unwrap(),
        first[1].hidden.to_vec_f32().unwrap()
    );

    // One new prompt among cached ones: one run, for that prompt only.
    let mixed = te.encode(&["rain at night", "a dog", "a dog"]).unwrap();
    assert_eq!(te.encoder_runs(), 2);
    assert_eq!(te.cache().len(), 3);
    assert_eq!(mixed[1].ids, mixed[2].ids);
}

#[test]
fn embeddings_equal_the_model_on_the_tokenized_prompt() {
    let te = service(ReleasePolicy::KeepLoaded);
    let prompt = "slow zoom on a neon street, café";
    let got = te.encode(&[prompt]).unwrap().remove(0);
    assert!(te.is_loaded());
    te.release();
    assert!(!te.is_loaded());

    let tokens = te.tokenizer().encode(prompt);
    assert_eq!(got.ids, tokens.ids);
    assert_eq!(got.attention_mask, tokens.attention_mask);
    assert_eq!(got.hidden.dims(), &[MAX_LENGTH, 48]);
    let model = T5EncoderModel::from_folder(
        &fixtures_dir().join("t5").join("text_encoder"),
        &Device::cpu(),
    )
    .unwrap();
    let want = model
        .forward(&tokens.ids, &tokens.attention_mask, 1, MAX_LENGTH)
        .unwrap();
    assert_close(
        "service",
        &got.hidden.to_vec_f32().unwrap(),
        &want.to_vec_f32().unwrap(),
        0.0,
    );
}

#[test]
fn empty_and_overlong_prompts_encode() {
    let te = service(ReleasePolicy::AfterUse);
    let long = "camera ".repeat(200);
    let out = te.encode(&["", "   ", &long]).unwrap();
    // Empty and all-space prompts are the same tokens: one entry.
    assert_eq!(out[0].ids, out[1].ids);
    assert_eq!(te.cache().len(), 2);
    assert!(out[2].attention_mask.iter().all(|&m| m == 1));
}

#[test]
fn missing_weights_fail_without_poisoning_the_service() {
    let tokenizer = T5Tokenizer::from_file(
        &fixtures_dir().join("tokenizer").join("t5like.model"),
        MAX_LENGTH,
    )
    .unwrap();
    let te = TextEncoder::new(
        tokenizer,
        &PathBuf::from("/nonexistent/text_encoder"),
        &Device::cpu(),
        ReleasePolicy::AfterUse,
    );
    let err = te.encode(&["a prompt"]).err().unwrap();
    assert!(
        err.to_string().contains("/nonexistent/text_encoder"),
        "{err}"
    );
    assert!(te.cache().is_empty());
    assert_eq!(te.encoder_runs(), 0);
}
