//! `tokenizer/tokenizer_config.json`: what of it the reference's T5 tokenizer
//! call depends on.
//!
//! Read and used: `eos_token` and `pad_token` (the pieces appended and padded
//! with; transformers takes them from here, not from `spiece.model`) and
//! `unk_token` (must be a piece of the model). A config naming a piece the
//! model lacks is refused by name.
//!
//! Read and deliberately not used, and why:
//! - `model_max_length`: `LTXConditionPipeline` passes its own
//!   `max_sequence_length` (256) with `truncation=True` to every tokenizer
//!   call, which overrides it; the pipeline only stores it in an attribute
//!   no code path of the LTX pipelines reads.
//! - `extra_ids` / `additional_special_tokens` (`<extra_id_N>`): T5's
//!   span-corruption sentinels. They change the result only for a prompt that
//!   spells a sentinel out literally, which no user prompt means; we tokenize
//!   such text as plain text and say so in the log.
//! - `legacy`: changes only how text right after a special token inside the
//!   prompt is split, the same case as above.
//! - `tokenizer_class`: must be a T5 tokenizer; anything else is refused.

use std::path::Path;

use super::TokenizerError;

/// The fields of `tokenizer_config.json` GenFX applies, with T5's defaults
/// for absent ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerConfig {
    pub eos_token: String,
    pub pad_token: String,
    pub unk_token: String,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            eos_token: "</s>".into(),
            pad_token: "<pad>".into(),
            unk_token: "<unk>".into(),
        }
    }
}

/// A special token is a string, or (older configs) an `AddedToken` object
/// with a `content` field.
fn token(value: Option<&serde_json::Value>) -> Option<Option<String>> {
    match value {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(serde_json::Value::String(s)) => Some(Some(s.clone())),
        Some(v) => v
            .get("content")
            .and_then(|c| c.as_str())
            .map(|s| Some(s.to_string())),
    }
}

impl TokenizerConfig {
    /// Reads `path`; a missing file means T5's defaults (the tokenizer
    /// folder of some conversions has only `spiece.model`).
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn from_json(text: &str, origin: &Path) -> Result<Self, TokenizerError> {
        let bad = |reason: String| TokenizerError::Corrupt {
            path: origin.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        if let Some(class) = obj.get("tokenizer_class").and_then(|c| c.as_str()) {
            if !class.starts_with("T5Tokenizer") {
                return Err(TokenizerError::Unsupported {
                    path: origin.to_path_buf(),
                    reason: format!("tokenizer_class {class} (the text encoder is T5)"),
                });
            }
        }
        let d = Self::default();
        let field = |key: &str, default: String| -> Result<String, TokenizerError> {
            match token(obj.get(key)) {
                Some(v) => Ok(v.unwrap_or(default)),
                None => Err(bad(format!("{key} is neither a string nor a token"))),
            }
        };
        let config = Self {
            eos_token: field("eos_token", d.eos_token)?,
            pad_token: field("pad_token", d.pad_token)?,
            unk_token: field("unk_token", d.unk_token)?,
        };
        if obj
            .get("extra_ids")
            .and_then(|v| v.as_u64())
            .is_some_and(|n| n > 0)
        {
            log::debug!(
                "{}: T5 sentinel tokens (<extra_id_N>) are tokenized as plain text",
                origin.display()
            );
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<TokenizerConfig, TokenizerError> {
        TokenizerConfig::from_json(text, Path::new("tokenizer_config.json"))
    }

    #[test]
    fn tokens_are_read_as_strings_or_added_token_objects() {
        let c = read(r#"{"eos_token": "<e>", "pad_token": {"content": "<p>", "lstrip": false}}"#)
            .unwrap();
        assert_eq!(c.eos_token, "<e>");
        assert_eq!(c.pad_token, "<p>");
        assert_eq!(c.unk_token, "<unk>");
        assert_eq!(read("{}").unwrap(), TokenizerConfig::default());
    }

    #[test]
    fn bad_configs_are_refused_by_name() {
        assert!(matches!(
            read(r#"{"tokenizer_class": "GPT2Tokenizer"}"#),
            Err(TokenizerError::Unsupported { .. })
        ));
        assert!(
            matches!(read(r#"{"eos_token": 3}"#), Err(TokenizerError::Corrupt { reason, .. }) if reason.contains("eos_token"))
        );
        assert!(matches!(read("[1]"), Err(TokenizerError::Corrupt { .. })));
        assert!(matches!(read("{"), Err(TokenizerError::Corrupt { .. })));
    }
}
