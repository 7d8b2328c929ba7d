//! T5 v1.1 text encoder (transformers `T5EncoderModel`), the LTX pipeline's
//! text encoder. The module tree mirrors `modeling_t5` so that weight names
//! map one to one: `encoder.block.N.layer.0.SelfAttention.q.weight`, ...

mod attention;
mod config;
mod encoder;
mod layers;
mod position_bias;
mod text_encoder;

use std::path::PathBuf;

pub use config::T5Config;
pub use encoder::{T5EncoderModel, T5Stack};
pub use position_bias::{relative_position_bucket, RelativePositionBias};
pub use text_encoder::{EmbeddingCache, PromptEmbedding, ReleasePolicy, TextEncoder};

use crate::tensor::TensorError;
use crate::tokenizer::TokenizerError;
use crate::weights::WeightError;

#[derive(Debug, thiserror::Error)]
pub enum T5Error {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("T5 encoder: {0}")]
    Tensor(#[from] TensorError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{location}: {count} tensor(s) a T5 encoder does not use, e.g. {examples:?}")]
    UnexpectedTensors {
        location: PathBuf,
        count: usize,
        examples: Vec<String>,
    },
    #[error("token id {id} at position {position} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        id: u32,
        position: usize,
        vocab: usize,
    },
    #[error("T5 encoder: {0}")]
    BadInput(String),
}
