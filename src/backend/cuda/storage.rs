//! A tensor's elements in GPU memory.

use std::any::Any;

use super::alloc::Block;
use super::device::DriverMemory;
use crate::backend::BackendStorage;
use crate::tensor::DType;

/// `len` elements of `dtype` in one allocator block. The block returns to
/// its allocator's free list when the last tensor using it is dropped.
pub struct CudaStorage {
    block: Block<DriverMemory>,
    len: usize,
    dtype: DType,
}

impl CudaStorage {
    pub(crate) fn new(block: Block<DriverMemory>, len: usize, dtype: DType) -> Self {
        debug_assert!(block.capacity() >= len * dtype.size_in_bytes());
        Self { block, len, dtype }
    }

    /// Device address of element `index`.
    pub fn ptr_at(&self, index: usize) -> u64 {
        self.block.ptr() + (index * self.dtype.size_in_bytes()) as u64
    }

    pub fn ptr(&self) -> u64 {
        self.block.ptr()
    }

    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage({} x {}, {:?})",
            self.len, self.dtype, self.block
        )
    }
}

impl BackendStorage for CudaStorage {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
