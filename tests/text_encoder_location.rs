//! Finding the T5 text encoder and its tokenizer in the layouts people keep
//! (diffusers folder, files beside a checkpoint, a ComfyUI installation, the
//! Hugging Face cache, the user's setting), built as scratch trees from the
//! fixtures; then the found single-file T5 and tokenizer.json encode a
//! prompt through the pipeline's prompt encoder.

use std::path::{Path, PathBuf};

use genfx::backend::Device;
use genfx::pipeline::adapters::T5Prompts;
use genfx::pipeline::components::PromptEncoder;
use genfx::pipeline::text_encoder_location::{
    locate_with, TextEncoderLocation, TextEncoderLocationError,
};
use genfx::tensor::DType;
use genfx::testing::fixtures_dir;

/// A scratch folder unique to this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("genfx-te-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

fn t5_file() -> PathBuf {
    fixtures_dir().join("t5file/t5.safetensors")
}

fn t5_fp8_file() -> PathBuf {
    fixtures_dir().join("t5file/t5_fp8_e4m3fn.safetensors")
}

fn tokenizer_json() -> PathBuf {
    fixtures_dir().join("tokenizer_json/t5like/tokenizer.json")
}

/// A checkpoint file: its contents do not matter to the search.
fn checkpoint(dir: &Path) -> PathBuf {
    let p = dir.join("ltxv-2b-0.9.8-distilled.safetensors");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&p, b"checkpoint").unwrap();
    p
}

/// No Hugging Face cache: only what the tree holds is found.
fn no_cache() -> Vec<PathBuf> {
    vec![PathBuf::from("/nonexistent/genfx/hf-cache")]
}

#[test]
fn diffusers_folder_uses_its_own_text_encoder_and_tokenizer() {
    let model = fixtures_dir().join("pipeline/model");
    let got = locate_with(&model, None, &no_cache()).unwrap();
    assert_eq!(
        got,
        TextEncoderLocation {
            weights: model.join("text_encoder"),
            tokenizer: model.join("tokenizer/spiece.model"),
        }
    );
}

#[test]
fn t5xxl_file_beside_a_checkpoint_prefers_16_bit_and_takes_the_tokenizer_json_beside_it() {
    let dir = scratch("beside");
    let ckpt = checkpoint(&dir);
    put(&t5_fp8_file(), &dir.join("t5xxl_fp8_e4m3fn.safetensors"));
    put(&t5_file(), &dir.join("t5xxl_fp16.safetensors"));
    put(&tokenizer_json(), &dir.join("tokenizer.json"));
    let got = locate_with(&ckpt, None, &no_cache()).unwrap();
    assert_eq!(got.weights, dir.join("t5xxl_fp16.safetensors"));
    assert_eq!(got.tokenizer, dir.join("tokenizer.json"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn text_encoder_folder_beside_a_checkpoint_is_found_with_its_tokenizer_json() {
    let dir = scratch("te-folder");
    let ckpt = checkpoint(&dir);
    let te = dir.join("text_encoder");
    for f in ["config.json", "model.safetensors"] {
        put(&fixtures_dir().join("t5/text_encoder").join(f), &te.join(f));
    }
    put(&tokenizer_json(), &te.join("tokenizer.json"));
    let got = locate_with(&ckpt, None, &no_cache()).unwrap();
    assert_eq!(got.weights, te);
    assert_eq!(got.tokenizer, te.join("tokenizer.json"));
    let _ = std::fs::remove_dir_all(dir);
}

/// models/checkpoints/<ckpt>, models/text_encoders/<t5>, and ComfyUI's own
/// comfy/text_encoders/t5_tokenizer/tokenizer.json.
fn comfy_tree(name: &str, with_tokenizer: bool) -> (PathBuf, PathBuf) {
    let root = scratch(name).join("ComfyUI");
    let ckpt = checkpoint(&root.join("models/checkpoints"));
    put(
        &t5_fp8_file(),
        &root.join("models/text_encoders/t5xxl_fp8_e4m3fn.safetensors"),
    );
    if with_tokenizer {
        put(
            &tokenizer_json(),
            &root.join("comfy/text_encoders/t5_tokenizer/tokenizer.json"),
        );
    }
    (root, ckpt)
}

#[test]
fn comfyui_layout_finds_text_encoders_and_comfys_own_tokenizer() {
    let (root, ckpt) = comfy_tree("comfy", true);
    let got = locate_with(&ckpt, None, &no_cache()).unwrap();
    assert_eq!(
        got.weights,
        root.join("models/text_encoders/t5xxl_fp8_e4m3fn.safetensors")
    );
    assert_eq!(
        got.tokenizer,
        root.join("comfy/text_encoders/t5_tokenizer/tokenizer.json")
    );

    // What was found encodes a prompt: the fp8 file widened, the
    // tokenizer.json read, the embedding of the pipeline's shape.
    let prompts = T5Prompts::from_location(&got, &Device::cpu(), DType::F32, 32).unwrap();
    let encoded = prompts.encode("a slow camera pan", 32).unwrap();
    assert_eq!((encoded.tokens, encoded.dim), (32, 48));
    assert!(encoded.embeds.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn hugging_face_cache_snapshots_are_searched_last() {
    let cache = scratch("hf-cache");
    let snap = cache.join("models--PixArt-alpha--PixArt-XL-2-1024-MS/snapshots/abc123");
    for f in ["config.json", "model.safetensors"] {
        put(
            &fixtures_dir().join("t5/text_encoder").join(f),
            &snap.join("text_encoder").join(f),
        );
    }
    put(
        &fixtures_dir().join("tokenizer/t5like.model"),
        &snap.join("tokenizer/spiece.model"),
    );
    let dir = scratch("hf-model");
    let ckpt = checkpoint(&dir);
    let got = locate_with(&ckpt, None, std::slice::from_ref(&cache)).unwrap();
    assert_eq!(got.weights, snap.join("text_encoder"));
    assert_eq!(got.tokenizer, snap.join("tokenizer/spiece.model"));
    for d in [cache, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn the_setting_wins_and_may_be_a_file_or_a_folder() {
    let dir = scratch("setting");
    let ckpt = checkpoint(&dir.join("ckpt"));
    let file = dir.join("elsewhere/my_t5.safetensors");
    put(&t5_file(), &file);
    put(&tokenizer_json(), &dir.join("elsewhere/tokenizer.json"));
    let got = locate_with(&ckpt, Some(&file), &no_cache()).unwrap();
    assert_eq!(got.weights, file);
    assert_eq!(got.tokenizer, dir.join("elsewhere/tokenizer.json"));

    // A PixArt-style folder: its text_encoder/ and tokenizer/.
    let pixart = dir.join("PixArt");
    for f in ["config.json", "model.safetensors"] {
        put(
            &fixtures_dir().join("t5/text_encoder").join(f),
            &pixart.join("text_encoder").join(f),
        );
    }
    put(
        &fixtures_dir().join("tokenizer/t5like.model"),
        &pixart.join("tokenizer/spiece.model"),
    );
    let got = locate_with(&ckpt, Some(&pixart), &no_cache()).unwrap();
    assert_eq!(got.weights, pixart.join("text_encoder"));
    assert_eq!(got.tokenizer, pixart.join("tokenizer/spiece.model"));

    let missing = dir.join("nope.safetensors");
    let err = locate_with(&ckpt, Some(&missing), &no_cache()).unwrap_err();
    eprintln!("{err}");
    assert_eq!(err, TextEncoderLocationError::SettingNotFound(missing));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_tokenizer_says_what_to_get_and_where_to_put_it() {
    let (root, ckpt) = comfy_tree("no-tokenizer", false);
    let err = locate_with(&ckpt, None, &no_cache()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(err, TextEncoderLocationError::NoTokenizer { .. }),
        "{msg}"
    );
    let te_dir = root.join("models/text_encoders");
    assert!(
        msg.contains(
            "tokenizer/spiece.model of https://huggingface.co/PixArt-alpha/PixArt-XL-2-1024-MS"
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&te_dir.join("tokenizer/spiece.model").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&te_dir.join("tokenizer.json").display().to_string()),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn no_text_encoder_lists_where_it_looked_and_what_to_get() {
    let dir = scratch("nothing");
    let ckpt = checkpoint(&dir);
    let err = locate_with(&ckpt, None, &no_cache()).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        matches!(err, TextEncoderLocationError::NoTextEncoder { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&dir.join("text_encoder").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("t5xxl_fp16.safetensors"), "{msg}");
    assert!(msg.contains("--text-encoder"), "{msg}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_clip_file_given_as_the_text_encoder_fails_saying_it_is_clip() {
    let dir = scratch("clip");
    let ckpt = checkpoint(&dir.join("ckpt"));
    let clip = dir.join("te/clip_l.safetensors");
    put(&fixtures_dir().join("t5file/clip.safetensors"), &clip);
    put(&tokenizer_json(), &dir.join("te/tokenizer.json"));
    let location = locate_with(&ckpt, Some(&clip), &no_cache()).unwrap();
    let prompts = T5Prompts::from_location(&location, &Device::cpu(), DType::F32, 32).unwrap();
    let msg = prompts.encode("a cat", 32).err().unwrap().to_string();
    eprintln!("{msg}");
    assert!(msg.contains("CLIP text encoder"), "{msg}");
    let _ = std::fs::remove_dir_all(dir);
}
