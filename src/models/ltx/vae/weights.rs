//! Named f32 weights, looked up by diffusers' state-dict names with their
//! expected shapes checked.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::error::{Result, VaeError};

/// A tensor's shape and its values as f32.
pub type ShapedTensor = (Vec<usize>, Vec<f32>);

/// Source of named tensors; the model asks for each by full name.
pub trait TensorSource {
    /// The tensor `name` as f32 with its shape, or `None` if absent.
    fn fetch(&self, name: &str) -> Result<Option<ShapedTensor>>;
}

/// A safetensors file read into memory, converted to f32 tensor by tensor on
/// request (checkpoints ship bf16 or f32).
pub struct SafetensorsFile {
    bytes: Vec<u8>,
}

impl SafetensorsFile {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| VaeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        SafeTensors::deserialize(&bytes).map_err(|e| VaeError::WeightsFormat(e.to_string()))?;
        Ok(Self { bytes })
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        SafeTensors::deserialize(&bytes).map_err(|e| VaeError::WeightsFormat(e.to_string()))?;
        Ok(Self { bytes })
    }
}

impl TensorSource for SafetensorsFile {
    fn fetch(&self, name: &str) -> Result<Option<ShapedTensor>> {
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| VaeError::WeightsFormat(e.to_string()))?;
        let view = match st.tensor(name) {
            Ok(v) => v,
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => return Ok(None),
            Err(e) => return Err(VaeError::WeightsFormat(e.to_string())),
        };
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(VaeError::WeightDtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(Some((view.shape().to_vec(), values)))
    }
}

/// In-memory tensors (tests and callers that already hold the weights).
#[derive(Default)]
pub struct TensorMap(pub HashMap<String, ShapedTensor>);

impl TensorSource for TensorMap {
    fn fetch(&self, name: &str) -> Result<Option<ShapedTensor>> {
        Ok(self.0.get(name).cloned())
    }
}

/// Looks weights up under a module prefix, checking shapes.
pub struct Weights<'a> {
    source: &'a dyn TensorSource,
    prefix: String,
}

impl<'a> Weights<'a> {
    pub fn new(source: &'a dyn TensorSource) -> Self {
        Self {
            source,
            prefix: String::new(),
        }
    }

    /// The same source, one module deeper (`prefix.name`).
    pub fn at(&self, name: impl std::fmt::Display) -> Weights<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Weights {
            source: self.source,
            prefix,
        }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = self.full(name);
        let (got, data) = self
            .source
            .fetch(&full)?
            .ok_or_else(|| VaeError::MissingWeight(full.clone()))?;
        if got != shape {
            return Err(VaeError::WeightShape {
                name: full,
                got,
                expected: shape.to_vec(),
            });
        }
        Ok(data)
    }
}
