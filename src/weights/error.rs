//! Why weights or a config could not be loaded. Every variant names the
//! file and, where one is involved, the tensor.

use std::path::PathBuf;

use crate::tensor::TensorError;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, bad header,
    /// offsets or sizes that do not add up).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The shard index names a file that is not there.
    #[error("{index}: shard {shard} is missing")]
    MissingShard { index: PathBuf, shard: PathBuf },
    /// The shard index is not valid JSON of the expected form.
    #[error("{path}: invalid shard index: {reason}")]
    BadIndex { path: PathBuf, reason: String },
    #[error("no weights found in {dir} (looked for {looked_for})")]
    NoWeights { dir: PathBuf, looked_for: String },
    #[error("tensor {name} is missing from {location}")]
    MissingTensor { name: String, location: String },
    #[error("{path}: tensor {name} has shape {got:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("{path}: tensor {name} is stored as {dtype}, which GenFX cannot read (it reads F32, F64, BF16, F16, F8_E4M3 and F8_E5M2); use a copy of the weights in one of those types")]
    WrongDType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// Tensors in the files that the model never asked for: usually another
    /// variant or architecture.
    #[error("{location}: {count} unexpected tensor(s), e.g. {examples:?}")]
    UnexpectedTensors {
        location: String,
        count: usize,
        examples: Vec<String>,
    },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: this is a {found} model, expected {expected}")]
    WrongArchitecture {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("loading {name}: {source}")]
    Tensor { name: String, source: TensorError },
}
