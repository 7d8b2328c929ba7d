//! Shape changes: views that share storage, and concatenation.

use super::{Layout, Result, Tensor, TensorError};

impl Tensor {
    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
            device: self.device.clone(),
        }
    }

    /// Same elements in row-major order with new dims. Copies only when the
    /// tensor is not contiguous.
    pub fn reshape(&self, dims: &[usize]) -> Result<Tensor> {
        let count: usize = dims.iter().product();
        if count != self.elem_count() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: self.dims().to_vec(),
                rhs: dims.to_vec(),
            });
        }
        let t = self.contiguous()?;
        let layout = Layout::new(
            dims.to_vec(),
            super::contiguous_strides(dims),
            t.layout.offset(),
        )?;
        Ok(t.with_layout(layout))
    }

    /// Result dim `i` is source dim `order[i]` (a view).
    pub fn permute(&self, order: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(order)?))
    }

    /// Swaps two dims (a view).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let rank = self.rank();
        if a >= rank || b >= rank {
            return Err(TensorError::invalid(
                "transpose",
                format!("dims {a},{b} of rank {rank}"),
            ));
        }
        let mut order: Vec<usize> = (0..rank).collect();
        order.swap(a, b);
        self.permute(&order)
    }

    /// `len` entries of `dim` from `start` (a view).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.narrow(dim, start, len)?))
    }

    /// Entry `index` of `dim`, with that dim removed (a view).
    pub fn select(&self, dim: usize, index: usize) -> Result<Tensor> {
        self.narrow(dim, index, 1)?.squeeze(dim)
    }

    /// Every entry of `dim` as its own tensor, dim removed (views).
    pub fn unbind(&self, dim: usize) -> Result<Vec<Tensor>> {
        (0..self.dim(dim)?).map(|i| self.select(dim, i)).collect()
    }

    /// `n` equal pieces along `dim` (views).
    pub fn chunk(&self, n: usize, dim: usize) -> Result<Vec<Tensor>> {
        let size = self.dim(dim)?;
        if n == 0 || size % n != 0 {
            return Err(TensorError::invalid(
                "chunk",
                format!("{n} chunks of dim {dim} of {:?}", self.dims()),
            ));
        }
        let step = size / n;
        (0..n).map(|i| self.narrow(dim, i * step, step)).collect()
    }

    /// Removes a dim of size 1 (a view).
    pub fn squeeze(&self, dim: usize) -> Result<Tensor> {
        if self.dim(dim)? != 1 {
            return Err(TensorError::invalid(
                "squeeze",
                format!("dim {dim} of {:?} is not 1", self.dims()),
            ));
        }
        let mut dims = self.dims().to_vec();
        let mut strides = self.layout.strides().to_vec();
        dims.remove(dim);
        strides.remove(dim);
        Ok(self.with_layout(Layout::new(dims, strides, self.layout.offset())?))
    }

    /// Inserts a dim of size 1 before `dim` (a view).
    pub fn unsqueeze(&self, dim: usize) -> Result<Tensor> {
        if dim > self.rank() {
            return Err(TensorError::invalid(
                "unsqueeze",
                format!("dim {dim} of rank {}", self.rank()),
            ));
        }
        let mut dims = self.dims().to_vec();
        let mut strides = self.layout.strides().to_vec();
        dims.insert(dim, 1);
        strides.insert(dim, 0);
        Ok(self.with_layout(Layout::new(dims, strides, self.layout.offset())?))
    }

    /// Numpy-style broadcast view to `dims`.
    pub fn broadcast_as(&self, dims: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to(dims)?))
    }

    /// Joins tensors of equal dims (except `dim`) along `dim`.
    pub fn cat(parts: &[&Tensor], dim: usize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return Err(TensorError::invalid("cat", "no tensors"));
        };
        let mut out_dims = first.dims().to_vec();
        if dim >= out_dims.len() {
            return Err(TensorError::invalid(
                "cat",
                format!("dim {dim} of {:?}", first.dims()),
            ));
        }
        out_dims[dim] = 0;
        for p in parts {
            first.check_same("cat", p)?;
            let same_other = p.rank() == first.rank()
                && p.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (a, b))| i == dim || a == b);
            if !same_other {
                return Err(TensorError::ShapeMismatch {
                    op: "cat",
                    lhs: first.dims().to_vec(),
                    rhs: p.dims().to_vec(),
                });
            }
            out_dims[dim] += p.dims()[dim];
        }
        let ops: Vec<_> = parts.iter().map(|p| p.operand()).collect();
        let out = first.device.backend().cat(&ops, dim, &out_dims)?;
        Tensor::from_output(out, &out_dims, &first.device)
    }

    /// A weight `param` that may meet `self` in `op`: on the same device,
    /// and of self's dtype or of one the device widens to it as it reads it
    /// (a 16-bit weight meeting f32 activations on the CPU; see
    /// [`Backend::activation_dtype`](crate::backend::Backend::activation_dtype)).
    pub(crate) fn check_param(&self, op: &'static str, param: &Tensor) -> Result<()> {
        if !self.device.same(&param.device) {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device.name(),
                rhs: param.device.name(),
            });
        }
        let widened = self.device.backend().activation_dtype(param.dtype());
        if param.dtype() == self.dtype() || widened == self.dtype() {
            return Ok(());
        }
        Err(TensorError::DTypeMismatch {
            op,
            expected: self.dtype(),
            got: param.dtype(),
        })
    }

    /// Same device and dtype, or a typed error naming `op`.
    pub(crate) fn check_same(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if !self.device.same(&other.device) {
            return Err(TensorError::DeviceMismatch {
                op,
                lhs: self.device.name(),
                rhs: other.device.name(),
            });
        }
        if self.dtype() != other.dtype() {
            return Err(TensorError::DTypeMismatch {
                op,
                expected: self.dtype(),
                got: other.dtype(),
            });
        }
        Ok(())
    }
}
