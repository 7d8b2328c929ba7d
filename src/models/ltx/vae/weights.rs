//! Named weights, looked up by diffusers' state-dict names with their
//! expected shapes checked.

use std::collections::HashMap;

use crate::backend::Device;
use crate::tensor::{DType, Tensor};
use crate::weights::{WeightError, WeightFiles};

use super::error::{Result, VaeError};

/// A tensor's shape and its values as f32.
pub type ShapedTensor = (Vec<usize>, Vec<f32>);

/// Source of named tensors; the model asks for each by full name.
pub trait TensorSource {
    /// The tensor `name` as f32 with its shape, or `None` if absent.
    fn fetch(&self, name: &str) -> Result<Option<ShapedTensor>>;

    /// [`fetch`](Self::fetch) when the model knows the shape it expects;
    /// a source without shapes of its own (synthetic weights) uses it.
    fn fetch_as(&self, name: &str, _expected: &[usize]) -> Result<Option<ShapedTensor>> {
        self.fetch(name)
    }

    /// The tensor `name`, which must have shape `expected`, on `device` in
    /// `dtype`, or `None` if absent. By default through
    /// [`fetch_as`](Self::fetch_as)'s f32 values.
    fn load_tensor(
        &self,
        name: &str,
        expected: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        let Some((got, data)) = self.fetch_as(name, expected)? else {
            return Ok(None);
        };
        check_shape(name, &got, expected)?;
        Ok(Some(
            Tensor::from_vec(data, expected, device)?.to_dtype(dtype)?,
        ))
    }
}

fn check_shape(name: &str, got: &[usize], expected: &[usize]) -> Result<()> {
    if got != expected {
        return Err(VaeError::WeightShape {
            name: name.to_string(),
            got: got.to_vec(),
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// Core's memory-mapped weight files: tensors are converted to f32 one at a
/// time as the model asks for them, so a bf16 checkpoint is never held twice.
impl TensorSource for WeightFiles {
    fn fetch(&self, name: &str) -> Result<Option<ShapedTensor>> {
        let Some(dims) = self.shape(name).map(<[usize]>::to_vec) else {
            return Ok(None);
        };
        let tensor = self.load(name, &dims, DType::F32, &Device::cpu())?;
        let data = tensor.to_vec_f32().map_err(|source| WeightError::Tensor {
            name: name.to_string(),
            source,
        })?;
        Ok(Some((dims, data)))
    }

    fn fetch_as(&self, name: &str, expected: &[usize]) -> Result<Option<ShapedTensor>> {
        if self.is_synthetic() {
            // the shape asked for, as `WeightFiles::synthetic` promises
            let n = expected.iter().product();
            return Ok(Some((
                expected.to_vec(),
                vec![crate::weights::SYNTHETIC_VALUE; n],
            )));
        }
        self.fetch(name)
    }

    /// Straight from the file to the device: a 16-bit weight is never
    /// widened to f32 on the host (and stays 16-bit, read in place from the
    /// memory map, on the CPU, which widens it per operation).
    fn load_tensor(
        &self,
        name: &str,
        expected: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        if self.is_synthetic() {
            let Some((_, data)) = self.fetch_as(name, expected)? else {
                return Ok(None);
            };
            return Ok(Some(
                Tensor::from_vec(data, expected, device)?.to_dtype(dtype)?,
            ));
        }
        let Some(got) = self.shape(name) else {
            return Ok(None);
        };
        check_shape(name, got, expected)?;
        Ok(Some(WeightFiles::load(
            self, name, expected, dtype, device,
        )?))
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

/// Looks weights up under a module prefix, checking shapes, and places
/// them on the model's device in its dtype.
pub struct Weights<'a> {
    source: &'a dyn TensorSource,
    prefix: String,
    device: Device,
    dtype: DType,
}

impl<'a> Weights<'a> {
    pub fn new(source: &'a dyn TensorSource, device: &Device, dtype: DType) -> Self {
        Self {
            source,
            prefix: String::new(),
            device: device.clone(),
            dtype,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The tensor `name`, which must have exactly `shape`, on the model's
    /// device in its dtype.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full(name);
        self.source
            .load_tensor(&full, shape, self.dtype, &self.device)?
            .ok_or(VaeError::MissingWeight(full))
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
            device: self.device.clone(),
            dtype: self.dtype,
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
            .fetch_as(&full, shape)?
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
