//! Typed failures of tokenizer loading. Encoding itself cannot fail: every
//! byte sequence has a defined tokenization.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read tokenizer model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokenizer model {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("tokenizer model {path} is not supported: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("tokenizer max length must be at least 1 (room for </s>), got {0}")]
    InvalidMaxLength(usize),
}
