//! Host memory buffers: owned vectors, or a read-only window on a memory
//! map (weights kept in the dtype they are stored in, in file-backed pages
//! the kernel can drop and re-read rather than anonymous memory).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::backend::BackendStorage;
use crate::tensor::DType;

/// Elements in host memory. Also the exchange format for uploads/downloads.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuStorage {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    /// Elements read in place from a memory-mapped file.
    Mapped(MappedElems),
}

/// Borrowed elements of any [`CpuStorage`], whichever way they are held.
#[derive(Clone, Copy, Debug)]
pub enum HostSlice<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
    F16(&'a [f16]),
}

impl HostSlice<'_> {
    pub fn dtype(&self) -> DType {
        match self {
            HostSlice::F32(_) => DType::F32,
            HostSlice::BF16(_) => DType::BF16,
            HostSlice::F16(_) => DType::F16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostSlice::F32(v) => v.len(),
            HostSlice::BF16(v) => v.len(),
            HostSlice::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy, same dtype.
    pub fn to_owned_storage(&self) -> CpuStorage {
        match self {
            HostSlice::F32(v) => CpuStorage::F32(v.to_vec()),
            HostSlice::BF16(v) => CpuStorage::BF16(v.to_vec()),
            HostSlice::F16(v) => CpuStorage::F16(v.to_vec()),
        }
    }

    /// The elements from `start` on widened to f32, filling `out`.
    pub fn widen_into(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            HostSlice::F32(v) => out.copy_from_slice(&v[start..end]),
            HostSlice::BF16(v) => super::simd::widen_bf16(out, &v[start..end]),
            // `half` converts slices with F16C where the CPU has it (exact,
            // like the scalar conversion), detecting it once per call.
            HostSlice::F16(v) => v[start..end].convert_to_f32_slice(out),
        }
    }

    /// Elements `start..start + len` as f32.
    pub fn widen(&self, start: usize, len: usize) -> Vec<f32> {
        let mut out = vec![0.0; len];
        self.widen_into(start, &mut out);
        out
    }
}

/// A window of `len` elements of `dtype` starting at byte `start` of a
/// shared memory map. Only built where the bytes are aligned for the dtype
/// and the host is little-endian (safetensors' byte order), so they can be
/// read as elements without a copy.
#[derive(Clone)]
pub struct MappedElems {
    map: Arc<memmap2::Mmap>,
    start: usize,
    len: usize,
    dtype: DType,
}

impl MappedElems {
    /// The window, or `None` where the bytes cannot be read in place
    /// (misaligned, out of bounds, or a big-endian host): then copy them.
    pub fn new(map: Arc<memmap2::Mmap>, start: usize, len: usize, dtype: DType) -> Option<Self> {
        let bytes = len.checked_mul(dtype.size_in_bytes())?;
        let end = start.checked_add(bytes)?;
        let aligned = (map.as_ptr() as usize + start) % dtype.size_in_bytes() == 0;
        (cfg!(target_endian = "little") && aligned && end <= map.len()).then_some(Self {
            map,
            start,
            len,
            dtype,
        })
    }

    pub fn view(&self) -> HostSlice<'_> {
        let ptr = self.map[self.start..].as_ptr();
        // SAFETY: `new` checked that `len` elements of `dtype` fit in the map
        // from `start` and that the first is aligned for the dtype; f32, bf16
        // and f16 accept every bit pattern; the map is read-only and lives as
        // long as `self` (the Arc), and the slice borrows `self`.
        unsafe {
            match self.dtype {
                DType::F32 => HostSlice::F32(std::slice::from_raw_parts(ptr.cast(), self.len)),
                DType::BF16 => HostSlice::BF16(std::slice::from_raw_parts(ptr.cast(), self.len)),
                DType::F16 => HostSlice::F16(std::slice::from_raw_parts(ptr.cast(), self.len)),
            }
        }
    }
}

impl fmt::Debug for MappedElems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MappedElems({} × {} at byte {})",
            self.len, self.dtype, self.start
        )
    }
}

impl PartialEq for MappedElems {
    fn eq(&self, other: &Self) -> bool {
        fn bytes(m: &MappedElems) -> &[u8] {
            &m.map[m.start..m.start + m.len * m.dtype.size_in_bytes()]
        }
        self.dtype == other.dtype && bytes(self) == bytes(other)
    }
}

impl CpuStorage {
    pub fn zeros(len: usize, dtype: DType) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; len]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; len]),
        }
    }

    /// The elements, borrowed.
    pub fn view(&self) -> HostSlice<'_> {
        match self {
            CpuStorage::F32(v) => HostSlice::F32(v),
            CpuStorage::BF16(v) => HostSlice::BF16(v),
            CpuStorage::F16(v) => HostSlice::F16(v),
            CpuStorage::Mapped(m) => m.view(),
        }
    }

    pub fn dtype(&self) -> DType {
        self.view().dtype()
    }

    pub fn len(&self) -> usize {
        self.view().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements in an owned vector (a mapped window is copied).
    pub fn into_owned(self) -> Self {
        match self {
            CpuStorage::Mapped(m) => m.view().to_owned_storage(),
            owned => owned,
        }
    }

    /// Every element converted to `dtype` (round to nearest even).
    pub fn convert(self, dtype: DType) -> Self {
        if self.dtype() == dtype {
            return self;
        }
        let view = self.view();
        let f32s = view.widen(0, view.len());
        match dtype {
            DType::F32 => CpuStorage::F32(f32s),
            DType::BF16 => CpuStorage::BF16(f32s.iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::F16 => CpuStorage::F16(f32s.iter().map(|&x| f16::from_f32(x)).collect()),
        }
    }
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        CpuStorage::dtype(self)
    }

    fn len(&self) -> usize {
        CpuStorage::len(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
