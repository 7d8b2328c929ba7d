//! Prompts and model files that are wrong or awkward: each has a defined
//! result or a typed error naming the file, never a panic.

use std::path::PathBuf;
use std::sync::Mutex;

use genfx::tokenizer::{SentencePiece, T5Tokenizer, TokenizerError};

fn model_path() -> PathBuf {
    std::env::var_os("GENFX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join("tokenizer/t5like.model")
}

fn tokenizer(max_length: usize) -> T5Tokenizer {
    T5Tokenizer::from_file(&model_path(), max_length).expect("fixture model loads")
}

/// Collects warnings so the truncation message can be checked.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn only_eos(tok: &T5Tokenizer, prompt: &str) {
    let got = tok.encode(prompt);
    assert_eq!(got.ids[0], tok.eos_id(), "{prompt:?}");
    assert!(got.ids[1..].iter().all(|&id| id == tok.pad_id()));
    assert_eq!(got.attention_mask[0], 1);
    assert!(got.attention_mask[1..].iter().all(|&m| m == 0));
    assert_eq!(got.len(), 1);
    assert_eq!(got.truncated, 0);
}

#[test]
fn empty_and_whitespace_prompts_are_just_eos() {
    let tok = tokenizer(16);
    for prompt in ["", " ", "     ", "\t\n ", "\u{3000}\u{a0}"] {
        only_eos(&tok, prompt);
    }
}

#[test]
fn long_prompt_is_truncated_keeping_eos_and_says_so() {
    log::set_logger(&CAPTURE).ok();
    log::set_max_level(log::LevelFilter::Warn);
    let tok = tokenizer(16);
    let prompt = "camera pan slowly across the city at night ".repeat(20);
    let full = tok.piece_ids(prompt.as_bytes());
    assert!(full.len() > 15);
    let got = tok.encode(&prompt);
    assert_eq!(got.ids.len(), 16);
    assert_eq!(&got.ids[..15], &full[..15]);
    assert_eq!(got.ids[15], tok.eos_id());
    assert!(got.attention_mask.iter().all(|&m| m == 1));
    assert_eq!(got.truncated, full.len() - 15);
    let messages = CAPTURE.0.lock().unwrap();
    assert!(
        messages.iter().any(|m| m.contains("truncated")),
        "no truncation warning in {messages:?}"
    );
}

#[test]
fn exactly_full_prompt_is_not_truncated() {
    let tok = tokenizer(64);
    let prompt = "camera pan slowly";
    let n = tok.piece_ids(prompt.as_bytes()).len();
    let tok = tokenizer(n + 1);
    let got = tok.encode(prompt);
    assert_eq!(got.truncated, 0);
    assert_eq!(got.len(), n + 1);
}

#[test]
fn nul_and_control_characters_have_defined_ids() {
    let tok = tokenizer(32);
    for prompt in [
        "\0",
        "a\0b",
        "\x01\x02\x1b[31m\x7f",
        "\u{85}\u{9f}",
        "zero\u{200b}width",
    ] {
        let got = tok.encode(prompt);
        assert_eq!(got.ids.len(), 32);
        assert_eq!(got.ids[got.len() - 1], tok.eos_id());
        // Deterministic: the same prompt gives the same ids.
        assert_eq!(got, tok.encode(prompt));
    }
}

#[test]
fn invalid_utf8_is_decoded_lossily_like_the_pipeline() {
    let tok = tokenizer(32);
    for bytes in [
        &b"\xff"[..],
        b"caf\xc3",
        b"\xc0\x80 overlong",
        b"\xed\xa0\x80 surrogate",
        b"\xf0\x9f\x98 broken emoji",
    ] {
        let lossy = String::from_utf8_lossy(bytes);
        assert_eq!(tok.encode_bytes(bytes), tok.encode(&lossy));
    }
    // A truncated 3-byte sequence is one U+FFFD for the pipeline, but three
    // bytes of U+FFFD one by one for raw sentencepiece: the two differ.
    let raw = tok.piece_ids(b"\xe6\x9d");
    let lossy = tok.piece_ids("\u{fffd}".as_bytes());
    assert_ne!(raw, lossy);
    assert_eq!(tok.encode_bytes(b"\xe6\x9d").ids[..lossy.len()], lossy[..]);
}

#[test]
fn max_length_zero_is_an_error_and_one_fits_only_eos() {
    let err = T5Tokenizer::from_file(&model_path(), 0).unwrap_err();
    assert!(matches!(err, TokenizerError::InvalidMaxLength(0)));
    let tok = tokenizer(1);
    let got = tok.encode("a long prompt that cannot fit");
    assert_eq!(got.ids, vec![tok.eos_id()]);
    assert!(got.truncated > 0);
}

#[test]
fn missing_model_file_is_an_io_error_naming_it() {
    let path = PathBuf::from("/nonexistent/genfx/tokenizer/spiece.model");
    let err = T5Tokenizer::from_file(&path, 8).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("spiece.model"), "{err}");
    let folder = T5Tokenizer::from_model_folder(&PathBuf::from("/nonexistent/ltx"), 8).unwrap_err();
    assert!(
        folder.to_string().contains("tokenizer/spiece.model"),
        "{folder}"
    );
}

#[test]
fn corrupt_model_files_are_errors_naming_the_file() {
    let good = std::fs::read(model_path()).unwrap();
    let name = PathBuf::from("broken/spiece.model");
    let mut flipped = good.clone();
    for i in (0..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    let candidates: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("text", b"this is not a protobuf at all".to_vec()),
        ("header only", good[..16].to_vec()),
    ];
    for (what, bytes) in &candidates {
        let err = SentencePiece::from_bytes(bytes, &name).unwrap_err();
        assert!(
            matches!(
                err,
                TokenizerError::Corrupt { .. } | TokenizerError::Unsupported { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(
            err.to_string().contains("broken/spiece.model"),
            "{what}: {err}"
        );
    }
    // Flipped bytes may still parse; what matters is no panic, and encoding
    // whatever loaded stays total.
    if let Ok(spm) = SentencePiece::from_bytes(&flipped, &name) {
        let _ = spm.encode("a prompt \u{0} with é and 東京".as_bytes());
    }
}

#[test]
fn every_truncation_of_the_model_fails_cleanly() {
    let good = std::fs::read(model_path()).unwrap();
    let name = PathBuf::from("cut/spiece.model");
    for cut in (0..good.len()).step_by(good.len() / 200 + 1) {
        if let Ok(spm) = SentencePiece::from_bytes(&good[..cut], &name) {
            let _ = spm.encode(b"camera \xff pan");
        }
    }
}

/// `tokenizer_config.json` is read: its special tokens are the ones used,
/// and one the model lacks is refused by name.
#[test]
fn tokenizer_config_names_the_special_tokens() {
    let scratch = std::env::temp_dir().join(format!("genfx-tokcfg-{}", std::process::id()));
    let tok_dir = scratch.join("tokenizer");
    std::fs::create_dir_all(&tok_dir).unwrap();
    std::fs::copy(model_path(), tok_dir.join("spiece.model")).unwrap();
    // No config: T5's defaults.
    let default = T5Tokenizer::from_model_folder(&scratch, 8).unwrap();
    assert_eq!(default.eos_id(), tokenizer(8).eos_id());
    assert_eq!(default.pad_id(), tokenizer(8).pad_id());
    // The config names </s> as padding too: padding then uses its id.
    std::fs::write(
        tok_dir.join("tokenizer_config.json"),
        r#"{"tokenizer_class": "T5Tokenizer", "pad_token": "</s>", "eos_token": "</s>"}"#,
    )
    .unwrap();
    let t = T5Tokenizer::from_model_folder(&scratch, 8).unwrap();
    assert_eq!(t.pad_id(), default.eos_id());
    assert_eq!(*t.encode("").ids.last().unwrap(), default.eos_id());
    std::fs::write(
        tok_dir.join("tokenizer_config.json"),
        r#"{"eos_token": "<not-a-piece>"}"#,
    )
    .unwrap();
    match T5Tokenizer::from_model_folder(&scratch, 8) {
        Err(e) => assert!(e.to_string().contains("<not-a-piece>"), "{e}"),
        Ok(_) => panic!("a config naming a missing piece was accepted"),
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
