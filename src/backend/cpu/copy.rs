//! Making strided views contiguous, and concatenation.

use super::{buffers, cpu_storage, CpuStorage, HostSlice};
use crate::backend::Operand;
use crate::tensor::{Layout, Result, TensorError};

fn gather<T: Copy + Send + Sync + Default>(src: &[T], layout: &Layout) -> Result<Vec<T>> {
    let count = layout.elem_count();
    if layout.required_len() > src.len() {
        return Err(TensorError::invalid("copy", "layout exceeds storage"));
    }
    if layout.is_contiguous() {
        let start = layout.offset();
        return Ok(src[start..start + count].to_vec());
    }
    let inner = layout.dims().last().copied().unwrap_or(1).max(1);
    let inner_stride = layout.strides().last().copied().unwrap_or(0);
    Ok(buffers::computed_rows(
        count,
        inner,
        |row, dst: &mut [T]| {
            let base = layout.row_offset(row);
            for (j, o) in dst.iter_mut().enumerate() {
                *o = src[base + j * inner_stride];
            }
        },
    ))
}

/// A contiguous copy of any view, same dtype.
pub fn copy_strided(src: Operand<'_>) -> Result<CpuStorage> {
    Ok(match cpu_storage("copy", src.storage)?.view() {
        HostSlice::F32(v) => CpuStorage::F32(gather(v, src.layout)?),
        HostSlice::BF16(v) => CpuStorage::BF16(gather(v, src.layout)?),
        HostSlice::F16(v) => CpuStorage::F16(gather(v, src.layout)?),
    })
}

fn cat_typed<T: Copy + Default>(
    parts: &[Vec<T>],
    part_dims: &[usize],
    dim: usize,
    out_dims: &[usize],
) -> Vec<T> {
    let outer: usize = out_dims[..dim].iter().product();
    let inner: usize = out_dims[dim + 1..].iter().product();
    let mut out = Vec::with_capacity(out_dims.iter().product());
    for o in 0..outer {
        for (p, &d) in parts.iter().zip(part_dims) {
            let block = d * inner;
            out.extend_from_slice(&p[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Joins views along `dim`; all parts share the dtype (checked by the caller).
pub fn cat(parts: &[Operand<'_>], dim: usize, out_dims: &[usize]) -> Result<CpuStorage> {
    let copies = parts
        .iter()
        .map(|p| copy_strided(*p))
        .collect::<Result<Vec<_>>>()?;
    let part_dims: Vec<usize> = parts.iter().map(|p| p.layout.dims()[dim]).collect();
    macro_rules! join {
        ($variant:ident) => {{
            let mut typed = Vec::with_capacity(copies.len());
            for c in copies {
                match c {
                    CpuStorage::$variant(v) => typed.push(v),
                    _ => return Err(TensorError::invalid("cat", "parts differ in dtype")),
                }
            }
            CpuStorage::$variant(cat_typed(&typed, &part_dims, dim, out_dims))
        }};
    }
    Ok(match copies.first() {
        Some(CpuStorage::F32(_)) | None => join!(F32),
        Some(CpuStorage::BF16(_)) => join!(BF16),
        Some(CpuStorage::F16(_)) => join!(F16),
        // copy_strided returns owned elements: this arm never matches
        Some(CpuStorage::Mapped(_)) => {
            return Err(TensorError::invalid("cat", "copies must be owned"))
        }
    })
}
