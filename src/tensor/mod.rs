//! Tensors: shape, strides, dtype and storage on a device.
//!
//! A [`Tensor`] is an immutable, cheaply clonable handle: shared storage, a
//! [`Layout`] and the [`Device`] that owns the storage. Views (reshape of
//! contiguous data, permute, transpose, narrow, broadcast) share storage;
//! compute ops allocate their output through the device's
//! [`Backend`](crate::backend::Backend).

mod dtype;
mod error;
mod layout;
mod ops;
mod sampling;
mod view;
mod volume_ops;

use std::fmt;
use std::sync::Arc;

pub use dtype::DType;
pub use error::{Result, TensorError};
pub use layout::{broadcast_shape, contiguous_strides, Layout};

use crate::backend::{BackendStorage, CpuStorage, Device, HostSlice, Operand};

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<dyn BackendStorage>,
    layout: Layout,
    device: Device,
}

impl Tensor {
    /// Wraps backend output. `layout` must fit inside `storage`.
    pub fn from_storage(
        storage: Arc<dyn BackendStorage>,
        layout: Layout,
        device: Device,
    ) -> Result<Self> {
        if layout.required_len() > storage.len() {
            return Err(TensorError::invalid(
                "from_storage",
                format!(
                    "layout {:?} needs {} elements, storage holds {}",
                    layout.dims(),
                    layout.required_len(),
                    storage.len()
                ),
            ));
        }
        Ok(Self {
            storage,
            layout,
            device,
        })
    }

    pub(crate) fn from_output(
        storage: Box<dyn BackendStorage>,
        dims: &[usize],
        device: &Device,
    ) -> Result<Self> {
        Self::from_storage(storage.into(), Layout::contiguous(dims), device.clone())
    }

    /// A tensor of `dims` from host data (f32, bf16 or f16) on `device`.
    pub fn from_host(data: CpuStorage, dims: &[usize], device: &Device) -> Result<Self> {
        let count: usize = dims.iter().product();
        if data.len() != count {
            return Err(TensorError::invalid(
                "from_host",
                format!("{} values for dims {dims:?} ({count})", data.len()),
            ));
        }
        let storage = device.backend().upload(data)?;
        Self::from_output(storage, dims, device)
    }

    /// An f32 tensor of `dims` from `data` on `device`.
    pub fn from_vec(data: Vec<f32>, dims: &[usize], device: &Device) -> Result<Self> {
        Self::from_host(CpuStorage::F32(data), dims, device)
    }

    pub fn from_slice(data: &[f32], dims: &[usize], device: &Device) -> Result<Self> {
        Self::from_vec(data.to_vec(), dims, device)
    }

    pub fn zeros(dims: &[usize], dtype: DType, device: &Device) -> Result<Self> {
        let storage = device.backend().zeros(dims.iter().product(), dtype)?;
        Self::from_output(storage, dims, device)
    }

    /// A 0..n ramp as f32, handy for positions and tests.
    pub fn arange(n: usize, device: &Device) -> Result<Self> {
        Self::from_vec((0..n).map(|i| i as f32).collect(), &[n], device)
    }

    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }

    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    /// Size of `dim`, or an error naming the tensor's dims.
    pub fn dim(&self, dim: usize) -> Result<usize> {
        self.dims()
            .get(dim)
            .copied()
            .ok_or_else(|| TensorError::invalid("dim", format!("dim {dim} of {:?}", self.dims())))
    }

    pub fn elem_count(&self) -> usize {
        self.layout.elem_count()
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn storage(&self) -> &dyn BackendStorage {
        self.storage.as_ref()
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    pub(crate) fn operand(&self) -> Operand<'_> {
        Operand {
            storage: self.storage.as_ref(),
            layout: &self.layout,
        }
    }

    /// The elements in row-major order as f32, copied to the host.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let t = self.to_dtype(DType::F32)?.contiguous()?;
        let host = t.device.backend().download(t.storage.as_ref())?;
        let start = t.layout.offset();
        match host.view() {
            HostSlice::F32(v) => Ok(v[start..start + t.elem_count()].to_vec()),
            other => Err(TensorError::DTypeMismatch {
                op: "to_vec_f32",
                expected: DType::F32,
                got: other.dtype(),
            }),
        }
    }

    /// Single value of a one-element tensor.
    pub fn to_scalar_f32(&self) -> Result<f32> {
        if self.elem_count() != 1 {
            return Err(TensorError::invalid(
                "to_scalar",
                format!("dims {:?} hold more than one value", self.dims()),
            ));
        }
        Ok(self.to_vec_f32()?[0])
    }

    /// Copy on `device` (shares storage when already there).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device.same(device) {
            return Ok(self.clone());
        }
        let t = self.contiguous()?;
        let host = t.device.backend().download(t.storage.as_ref())?;
        let storage = device.backend().upload(host)?;
        Tensor::from_storage(storage.into(), t.layout.clone(), device.clone())
    }

    /// Contiguous tensor with the same values (shares storage if already so).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = self.device.backend().copy_strided(self.operand())?;
        Self::from_output(out, self.dims(), &self.device)
    }

    /// Converts the element type (a no-op when it already matches).
    /// The dtype activations take where they meet this weight on its
    /// device ([`Backend::activation_dtype`](crate::backend::Backend::activation_dtype)):
    /// its own dtype on a GPU, f32 on the CPU, which keeps 16-bit weights
    /// as stored and computes in f32.
    pub fn activation_dtype(&self) -> DType {
        self.device.backend().activation_dtype(self.dtype())
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        let out = self.device.backend().to_dtype(self.operand(), dtype)?;
        Self::from_output(out, self.dims(), &self.device)
    }

    /// Largest absolute difference to `other` (same dims), on the host.
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        if self.dims() != other.dims() {
            return Err(TensorError::ShapeMismatch {
                op: "max_abs_diff",
                lhs: self.dims().to_vec(),
                rhs: other.dims().to_vec(),
            });
        }
        let a = self.to_vec_f32()?;
        let b = other.to_vec_f32()?;
        Ok(a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max))
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({:?}, {}, {})",
            self.dims(),
            self.dtype(),
            self.device.name()
        )
    }
}

#[cfg(test)]
mod tests;
