//! Text tokenizers: SentencePiece unigram as T5 uses it.
//!
//! [`SentencePiece`] reads `tokenizer/spiece.model` and reproduces the
//! `sentencepiece` library's `EncodeAsIds`; [`TokenizerJson`] reads the
//! `tokenizer.json` the HF tokenizers library writes for the same model and
//! reproduces that library's ids. [`T5Tokenizer`] adds what the LTX
//! pipeline's tokenizer call adds: `</s>`, truncation to the maximum length
//! (keeping `</s>` last) and padding with the attention mask.

mod charsmap;
pub mod config;
mod error;
mod normalizer;
mod proto;
mod tokenizer_json;
mod unigram;

use std::path::{Path, PathBuf};

pub use config::TokenizerConfig;
pub use error::TokenizerError;
pub use normalizer::SPACE_SYMBOL;
pub use tokenizer_json::TokenizerJson;

/// `LTXConditionPipeline`'s default `max_sequence_length`.
pub const LTX_MAX_SEQUENCE_LENGTH: usize = 256;

/// A loaded SentencePiece unigram model.
#[derive(Clone, Debug)]
pub struct SentencePiece {
    model: unigram::UnigramModel,
}

impl SentencePiece {
    /// Reads a serialised `ModelProto` (`spiece.model`).
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses a serialised `ModelProto`; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self, TokenizerError> {
        let corrupt = |reason: String| TokenizerError::Corrupt {
            path: origin.to_path_buf(),
            reason,
        };
        let proto = proto::parse_model(bytes).map_err(corrupt)?;
        if proto.trainer.model_type != 1 {
            return Err(TokenizerError::Unsupported {
                path: origin.to_path_buf(),
                reason: format!(
                    "model type {} (only unigram models are read)",
                    proto.trainer.model_type
                ),
            });
        }
        let model = unigram::UnigramModel::new(&proto).map_err(corrupt)?;
        Ok(Self { model })
    }

    /// Piece ids of `text`, as `sentencepiece`'s `EncodeAsIds` on the same
    /// bytes (malformed UTF-8 becomes U+FFFD one byte at a time, as there).
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        self.model.encode(text)
    }

    /// The normalised text the segmentation runs on (spaces as U+2581).
    pub fn normalize(&self, text: &[u8]) -> Vec<u8> {
        self.model.normalizer.normalize(text)
    }

    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.model.piece_to_id(piece)
    }

    pub fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }
}

/// A prompt as the text encoder takes it: exactly `max_length` ids, the
/// attention mask (1 for real tokens and `</s>`, 0 for padding).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenizedPrompt {
    pub ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    /// How many pieces were cut to fit (0 when none were).
    pub truncated: usize,
}

impl TokenizedPrompt {
    /// Number of attended tokens (the prompt plus `</s>`).
    pub fn len(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The piece model behind a [`T5Tokenizer`].
#[derive(Clone, Debug)]
pub enum PieceModel {
    /// `spiece.model`, encoded as `sentencepiece` does.
    SentencePiece(SentencePiece),
    /// `tokenizer.json`, encoded as the HF tokenizers library does.
    Json(TokenizerJson),
}

impl PieceModel {
    /// Reads `spiece.model`, or `tokenizer.json` when the file name says so
    /// (any `*.json`).
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            TokenizerJson::from_file(path).map(Self::Json)
        } else {
            SentencePiece::from_file(path).map(Self::SentencePiece)
        }
    }

    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        match self {
            Self::SentencePiece(m) => m.piece_to_id(piece),
            Self::Json(m) => m.piece_to_id(piece),
        }
    }

    /// Piece ids of `text`, without `</s>`. A tokenizer.json model sees the
    /// text decoded lossily (as Python's `errors="replace"` would hand it).
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        match self {
            Self::SentencePiece(m) => m.encode(text),
            Self::Json(m) => m.encode(&String::from_utf8_lossy(text)),
        }
    }
}

/// T5's tokenizer call as the LTX pipeline makes it: `padding="max_length"`,
/// `truncation=True`, `add_special_tokens=True`.
#[derive(Clone, Debug)]
pub struct T5Tokenizer {
    spm: PieceModel,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
}

impl T5Tokenizer {
    /// Loads `spiece.model` or `tokenizer.json` (by its extension), with the
    /// special tokens of the `tokenizer_config.json` beside it (T5's
    /// defaults, `</s>` and `<pad>`, without one).
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self, TokenizerError> {
        let beside = path
            .parent()
            .unwrap_or(Path::new("."))
            .join("tokenizer_config.json");
        let config = TokenizerConfig::from_file(&beside)?;
        Self::with_config(PieceModel::from_file(path)?, path, max_length, &config)
    }

    /// Loads `<model folder>/tokenizer/spiece.model` with the special
    /// tokens its `tokenizer_config.json` names (see [`config`]).
    pub fn from_model_folder(folder: &Path, max_length: usize) -> Result<Self, TokenizerError> {
        let dir: PathBuf = folder.join("tokenizer");
        let config = TokenizerConfig::from_file(&dir.join("tokenizer_config.json"))?;
        let path = dir.join("spiece.model");
        Self::with_config(
            PieceModel::SentencePiece(SentencePiece::from_file(&path)?),
            &path,
            max_length,
            &config,
        )
    }

    /// T5's default special tokens (`</s>`, `<pad>`).
    pub fn new(
        spm: SentencePiece,
        origin: &Path,
        max_length: usize,
    ) -> Result<Self, TokenizerError> {
        Self::with_config(
            PieceModel::SentencePiece(spm),
            origin,
            max_length,
            &TokenizerConfig::default(),
        )
    }

    /// The special tokens `config` names, each of which must be a piece of
    /// the model.
    pub fn with_config(
        spm: PieceModel,
        origin: &Path,
        max_length: usize,
        config: &TokenizerConfig,
    ) -> Result<Self, TokenizerError> {
        if max_length == 0 {
            return Err(TokenizerError::InvalidMaxLength(max_length));
        }
        let special = |piece: &str| {
            spm.piece_to_id(piece)
                .ok_or_else(|| TokenizerError::Corrupt {
                    path: origin.to_path_buf(),
                    reason: format!("T5 needs the piece {piece} but the model lacks it"),
                })
        };
        let eos_id = special(&config.eos_token)?;
        let pad_id = special(&config.pad_token)?;
        special(&config.unk_token)?;
        Ok(Self {
            spm,
            eos_id,
            pad_id,
            max_length,
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn piece_model(&self) -> &PieceModel {
        &self.spm
    }

    /// Piece ids of `text` without `</s>`, truncation or padding.
    pub fn piece_ids(&self, text: &[u8]) -> Vec<u32> {
        self.spm.encode(text)
    }

    /// Tokenizes a prompt. Pieces beyond `max_length - 1` are dropped (and a
    /// warning is logged, as the pipeline does) so that `</s>` always ends
    /// the attended part.
    pub fn encode(&self, prompt: &str) -> TokenizedPrompt {
        let mut ids = self.spm.encode(prompt.as_bytes());
        let keep = self.max_length - 1;
        let truncated = ids.len().saturating_sub(keep);
        if truncated > 0 {
            log::warn!(
                "prompt truncated: {truncated} of its {} tokens are past the text encoder's \
                 limit of {} (including </s>) and are ignored",
                ids.len(),
                self.max_length
            );
            ids.truncate(keep);
        }
        ids.push(self.eos_id);
        let attended = ids.len();
        ids.resize(self.max_length, self.pad_id);
        let mut attention_mask = vec![1; attended];
        attention_mask.resize(self.max_length, 0);
        TokenizedPrompt {
            ids,
            attention_mask,
            truncated,
        }
    }

    /// Tokenizes prompt bytes that may not be UTF-8. They are decoded the
    /// way text reaching the pipeline is (each malformed sequence becomes
    /// one U+FFFD, as `String::from_utf8_lossy` and Python's
    /// `errors="replace"` do) and then tokenized.
    pub fn encode_bytes(&self, prompt: &[u8]) -> TokenizedPrompt {
        self.encode(&String::from_utf8_lossy(prompt))
    }
}
