//! Everything that can go wrong loading or running the VAE, as one typed error.

use crate::backend::cpu::conv3d::Conv3dError;

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
    #[error("VAE weights file is not valid safetensors: {0}")]
    WeightsFormat(String),
    #[error("VAE weight `{0}` is missing")]
    MissingWeight(String),
    #[error("VAE weight `{name}` has shape {got:?}, expected {expected:?}")]
    WeightShape {
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("VAE weight `{name}` has dtype {dtype}, expected F32, F16 or BF16")]
    WeightDtype { name: String, dtype: String },
    #[error("VAE latent statistics are unusable: {0}")]
    Statistics(String),
    #[error("bad VAE input: {0}")]
    Input(String),
    #[error("bad VAE tiling: {0}")]
    Tiling(String),
    #[error(transparent)]
    Conv(#[from] Conv3dError),
}

pub type Result<T> = std::result::Result<T, VaeError>;
