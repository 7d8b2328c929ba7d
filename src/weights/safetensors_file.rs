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
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            tensors,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let as_f32 = |f: fn([u8; 2]) -> f32| -> Vec<f32> {
            bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect()
        };
        let stored = match info.dtype {
            Dtype::F32 => CpuStorage::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::BF16 if dtype == DType::BF16 => CpuStorage::BF16(
                bytes
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            Dtype::F16 if dtype == DType::F16 => CpuStorage::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            Dtype::BF16 => CpuStorage::F32(as_f32(|b| bf16::from_le_bytes(b).to_f32())),
            Dtype::F16 => CpuStorage::F32(as_f32(|b| f16::from_le_bytes(b).to_f32())),
            Dtype::F64 => CpuStorage::F32(
                bytes
                    .chunks_exact(8)
                    .map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        f64::from_le_bytes(a) as f32
                    })
                    .collect(),
            ),
            other => {
                return Err(WeightError::WrongDType {
                    path: self.path.clone(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        Ok(stored.convert(dtype))
    }
}
