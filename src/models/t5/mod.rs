//! T5 v1.1 text encoder (transformers `T5EncoderModel`), the LTX pipeline's
//! text encoder. The module tree mirrors `modeling_t5` so that weight names
//! map one to one: `encoder.block.N.layer.0.SelfAttention.q.weight`, ...

mod attention;
mod config;
mod encoder;
mod layers;
mod position_bias;
pub mod single_file;
mod text_encoder;

use std::path::PathBuf;

pub use config::T5Config;
pub use encoder::{T5EncoderModel, T5Stack};
pub use position_bias::{relative_position_bucket, RelativePositionBias};
pub use text_encoder::{EmbeddingCache, PromptEmbedding, ReleasePolicy, TextEncoder};

use crate::backend::Device;
use crate::tensor::{DType, TensorError};
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
    #[error(
        "T5 encoder on {device} in {dtype}: a non-finite value in the embeddings (element {index})"
    )]
    NonFinite {
        device: String,
        dtype: DType,
        index: usize,
    },
}

/// Where, and in which dtype, the encoder runs for a pipeline whose
/// transformer runs on `device` in `dtype`.
///
/// - f32 (the CPU reference, or a GPU asked for f32) and bf16 (a GPU from
///   Ampere on): the transformer's device and dtype. bf16 has f32's range,
///   so T5 runs in it as transformers runs it.
/// - f16 (Turing and Volta cards): the CPU in f32. T5 v1.1 is known to
///   overflow in f16: in T5-XXL the gated feed-forward's output (and with
///   it the residual stream) grows past f16's 65504 in later blocks, giving
///   inf and then NaN embeddings. transformers works around it by keeping
///   `wo` in f32 (`_keep_in_fp32_modules`), which promotes the residual
///   stream to f32, and by clamping hidden states. Doing the same here
///   would need the feed-forward's weights in f32 (12 GB for XXL's
///   24 x 3 x 4096 x 10240, more than these cards have beside the rest) or
///   a mixed-dtype residual stream; the tiny test fixture runs fine in f16
///   and so proves nothing about the real model. The encoder runs once per
///   prompt and its embeddings are cached, so the CPU, which computes the
///   reference's numbers, is the simple correct choice.
pub fn placement(device: &Device, dtype: DType) -> (Device, DType) {
    match dtype {
        _ if device.is_cpu() => (Device::cpu(), DType::F32),
        DType::F16 => (Device::cpu(), DType::F32),
        dtype => (device.clone(), dtype),
    }
}
