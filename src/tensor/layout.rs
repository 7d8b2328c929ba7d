//! Where a tensor's elements sit in its storage: dims, strides (in elements)
//! and a starting offset. Views (permute, narrow, broadcast) only change the
//! layout; the data is untouched until an op needs it contiguous.

use super::{Result, TensorError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    dims: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of `dims`.
pub fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; dims.len()];
    let mut acc = 1;
    for (s, d) in strides.iter_mut().zip(dims).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

impl Layout {
    pub fn contiguous(dims: &[usize]) -> Self {
        Self {
            dims: dims.to_vec(),
            strides: contiguous_strides(dims),
            offset: 0,
        }
    }

    /// A layout from raw parts; backends use it to describe views they make.
    pub fn new(dims: Vec<usize>, strides: Vec<usize>, offset: usize) -> Result<Self> {
        if dims.len() != strides.len() {
            return Err(TensorError::invalid(
                "layout",
                format!("{} dims but {} strides", dims.len(), strides.len()),
            ));
        }
        Ok(Self {
            dims,
            strides,
            offset,
        })
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// One past the largest storage index this layout touches (0 when empty).
    pub fn required_len(&self) -> usize {
        if self.elem_count() == 0 {
            return 0;
        }
        self.offset
            + self
                .dims
                .iter()
                .zip(&self.strides)
                .map(|(d, s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// Row-major with no gaps (dims of size 1 may carry any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.dims.iter().zip(&self.strides).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// Reorders dims: result dim `i` is source dim `order[i]`.
    pub fn permute(&self, order: &[usize]) -> Result<Self> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if order.len() != rank {
            return Err(TensorError::invalid(
                "permute",
                format!("order {order:?} for rank {rank}"),
            ));
        }
        for &o in order {
            if o >= rank || seen[o] {
                return Err(TensorError::invalid(
                    "permute",
                    format!("order {order:?} is not a permutation of 0..{rank}"),
                ));
            }
            seen[o] = true;
        }
        Ok(Self {
            dims: order.iter().map(|&o| self.dims[o]).collect(),
            strides: order.iter().map(|&o| self.strides[o]).collect(),
            offset: self.offset,
        })
    }

    /// Keeps `len` entries of `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        if dim >= self.rank() || start + len > self.dims[dim] {
            return Err(TensorError::invalid(
                "narrow",
                format!(
                    "range {start}..{} of dim {dim} in {:?}",
                    start + len,
                    self.dims
                ),
            ));
        }
        let mut out = self.clone();
        out.dims[dim] = len;
        out.offset += start * self.strides[dim];
        Ok(out)
    }

    /// Numpy-style broadcast to `dims` (leading dims added, size-1 dims
    /// stretched with stride 0).
    pub fn broadcast_to(&self, dims: &[usize]) -> Result<Self> {
        let err = || TensorError::ShapeMismatch {
            op: "broadcast",
            lhs: self.dims.clone(),
            rhs: dims.to_vec(),
        };
        if dims.len() < self.rank() {
            return Err(err());
        }
        let lead = dims.len() - self.rank();
        let mut strides = vec![0; dims.len()];
        for (i, &d) in dims.iter().enumerate().skip(lead) {
            let src = self.dims[i - lead];
            strides[i] = if src == d {
                self.strides[i - lead]
            } else if src == 1 {
                0
            } else {
                return Err(err());
            };
        }
        Ok(Self {
            dims: dims.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Storage offset of the start of row `row`, where rows index every dim
    /// but the last in row-major order.
    pub fn row_offset(&self, row: usize) -> usize {
        let mut rem = row;
        let mut off = self.offset;
        let rank = self.rank();
        if rank == 0 {
            return off;
        }
        for i in (0..rank - 1).rev() {
            let d = self.dims[i];
            off += (rem % d) * self.strides[i];
            rem /= d;
        }
        off
    }

    /// When the leading dims (all but the last `keep`) can be walked with one
    /// stride, returns it: the layout is then `[outer, dims[rank-keep..]]`.
    pub fn merged_outer_stride(&self, keep: usize) -> Option<usize> {
        let rank = self.rank();
        if keep > rank {
            return None;
        }
        let outer = rank - keep;
        let mut stride = None;
        let mut expected = 0;
        for i in (0..outer).rev() {
            if self.dims[i] == 1 {
                continue;
            }
            match stride {
                None => {
                    stride = Some(self.strides[i]);
                    expected = self.strides[i] * self.dims[i];
                }
                Some(_) => {
                    if self.strides[i] != expected {
                        return None;
                    }
                    expected *= self.dims[i];
                }
            }
        }
        Some(stride.unwrap_or(0))
    }
}

/// The shape two operands broadcast to.
pub fn broadcast_shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let rank = lhs.len().max(rhs.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let l = if i + lhs.len() >= rank {
            lhs[i + lhs.len() - rank]
        } else {
            1
        };
        let r = if i + rhs.len() >= rank {
            rhs[i + rhs.len() - rank]
        } else {
            1
        };
        out[i] = if l == r || r == 1 {
            l
        } else if l == 1 {
            r
        } else {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: lhs.to_vec(),
                rhs: rhs.to_vec(),
            });
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_and_views() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.strides(), &[12, 4, 1]);
        assert!(l.is_contiguous());
        let p = l.permute(&[0, 2, 1]).unwrap();
        assert_eq!(p.dims(), &[2, 4, 3]);
        assert!(!p.is_contiguous());
        let n = l.narrow(1, 1, 2).unwrap();
        assert_eq!(n.offset(), 4);
        assert!(!n.is_contiguous());
        assert_eq!(n.row_offset(3), 12 + 8);
        assert!(l.narrow(1, 2, 2).is_err());
        assert!(l.permute(&[0, 0, 1]).is_err());
    }

    #[test]
    fn broadcasting() {
        let l = Layout::contiguous(&[3, 1]);
        let b = l.broadcast_to(&[2, 3, 4]).unwrap();
        assert_eq!(b.strides(), &[0, 1, 0]);
        assert!(l.broadcast_to(&[2, 4]).is_err());
        assert_eq!(
            broadcast_shape("t", &[2, 1, 4], &[3, 1]).unwrap(),
            [2, 3, 4]
        );
        assert!(broadcast_shape("t", &[2, 3], &[4]).is_err());
    }

    #[test]
    fn merged_outer() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.merged_outer_stride(1), Some(4));
        let p = l.permute(&[1, 0, 2]).unwrap();
        assert_eq!(p.merged_outer_stride(1), None);
        assert_eq!(p.merged_outer_stride(2), Some(4));
    }
}
