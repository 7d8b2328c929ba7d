//! One memory-mapped safetensors file, its header validated up front.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};

use super::WeightError;
use crate::backend::CpuStorage;
use crate::tensor::DType;

/// A safetensors file mapped into memory. Opening checks the whole header
/// (offsets contiguous, sizes matching shapes and dtypes, file length
/// matching the header), so later reads never go out of bounds.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
    /// The header's `__metadata__` strings (single-file checkpoints keep
    /// their configs there).
    metadata: HashMap<String, String>,
}

impl SafetensorsFile {
    pub fn open(path: &Path) -> Result<Self, WeightError> {
        let io = |source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another
        // process truncating or rewriting the file while it is mapped could
        // change what we read (or fault on truncation); model folders are
        // not written while in use, and every read is bounds-checked
        // against the length validated here.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| WeightError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let tensors = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.clone()))
            .collect();
        let metadata = metadata.metadata().clone().unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            tensors,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header's metadata entries (empty when it has none).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|i| i.shape.as_slice())
    }

    /// The tensor's values converted to `dtype`, in host memory.
    pub fn read(&self, name: &str, dtype: DType) -> Result<CpuStorage, WeightError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightError::MissingTensor {
                name: name.to_string(),
                location: self.path.display().to_string(),
            })?;
        let (start, end) = info.data_offsets;
        let bytes = self
            .mmap
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| WeightError::Corrupt {
                path: self.path.clone(),
                reason: format!("tensor {name} lies outside the file"),
            })?;
        // Each stored element is decoded once (exactly, but for f64) and
        // written straight into the target type: a 16-bit target never
        // holds a whole f32 copy of the tensor on the host (T5-XXL's
        // embedding would need 0.5 GB of it), and a stored type equal to
        // the target is copied bit for bit.
        let (width, decode): (usize, fn(&[u8]) -> f32) = match info.dtype {
            Dtype::F32 => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            Dtype::BF16 => (2, |c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            Dtype::F16 => (2, |c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
            Dtype::F64 => (8, |c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            }),
            other => {
                return Err(WeightError::WrongDType {
                    path: self.path.clone(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let values = bytes.chunks_exact(width).map(decode);
        let pairs = || bytes.chunks_exact(2).map(|c| [c[0], c[1]]);
        Ok(match (dtype, info.dtype) {
            (DType::F32, _) => CpuStorage::F32(values.collect()),
            (DType::BF16, Dtype::BF16) => {
                CpuStorage::BF16(pairs().map(bf16::from_le_bytes).collect())
            }
            (DType::BF16, _) => CpuStorage::BF16(values.map(bf16::from_f32).collect()),
            (DType::F16, Dtype::F16) => CpuStorage::F16(pairs().map(f16::from_le_bytes).collect()),
            (DType::F16, _) => CpuStorage::F16(values.map(f16::from_f32).collect()),
        })
    }
}
