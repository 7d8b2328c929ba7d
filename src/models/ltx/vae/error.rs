//! Everything that can go wrong loading or running the VAE, as one typed error.

use crate::backend::cpu::conv3d::Conv3dError;
use crate::tensor::TensorError;
use crate::weights::WeightError;

#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VAE config {path} is not valid: {message}")]
    ConfigParse { path: String, message: String },
    #[error("VAE config is not supported: {0}")]
    UnsupportedConfig(String),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("VAE weight `{0}` is missing")]
    MissingWeight(String),
    #[error("VAE weight `{name}` has shape {got:?}, expected {expected:?}")]
    WeightShape {
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("VAE latent statistics are unusable: {0}")]
    Statistics(String),
    #[error("bad VAE input: {0}")]
    Input(String),
    #[error("bad VAE tiling: {0}")]
    Tiling(String),
    #[error(transparent)]
    Conv(#[from] Conv3dError),
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

pub type Result<T> = std::result::Result<T, VaeError>;
