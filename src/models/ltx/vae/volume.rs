//! `Volume`: a dense f32 `[batch, channels, frames, height, width]` array, the
//! one shape every VAE activation, input and output has.

use crate::backend::Device;
use crate::tensor::Tensor;

use super::error::{Result, VaeError};

#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    dims: [usize; 5],
    data: Vec<f32>,
}

impl Volume {
    /// Checks that `data` holds exactly `dims` values.
    pub fn new(dims: [usize; 5], data: Vec<f32>) -> Result<Self> {
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(VaeError::Input(format!(
                "{} values do not fill a [batch, channels, frames, height, width] array of {dims:?}",
                data.len()
            )));
        }
        Ok(Self { dims, data })
    }

    /// Copies a rank-5 tensor (any device, any float dtype) into a volume.
    pub fn from_tensor(tensor: &Tensor) -> Result<Self> {
        let dims: [usize; 5] = tensor.dims().try_into().map_err(|_| {
            VaeError::Input(format!(
                "expected a [batch, channels, frames, height, width] tensor, got dims {:?}",
                tensor.dims()
            ))
        })?;
        Self::new(dims, tensor.to_vec_f32()?)
    }

    /// The same values as an f32 tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(&self.data, &self.dims, device)?)
    }

    pub fn zeros(dims: [usize; 5]) -> Self {
        Self {
            dims,
            data: vec![0.0; dims.iter().product()],
        }
    }

    pub(crate) fn from_parts(dims: [usize; 5], data: Vec<f32>) -> Self {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        Self { dims, data }
    }

    pub fn dims(&self) -> [usize; 5] {
        self.dims
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    pub fn batch(&self) -> usize {
        self.dims[0]
    }

    pub fn channels(&self) -> usize {
        self.dims[1]
    }

    pub fn frames(&self) -> usize {
        self.dims[2]
    }

    /// `[batch, channels, frames * height * width]`, for per-channel kernels.
    pub(crate) fn flat_dims(&self) -> [usize; 3] {
        let [b, c, t, h, w] = self.dims;
        [b, c, t * h * w]
    }

    /// The sub-block `frames[t0..t1]`, `rows[y0..y1]`, `cols[x0..x1]` (clamped
    /// to the array), all batches and channels.
    pub fn crop(&self, t: (usize, usize), y: (usize, usize), x: (usize, usize)) -> Volume {
        let [b, c, ft, fh, fw] = self.dims;
        let (t0, t1) = (t.0.min(ft), t.1.min(ft).max(t.0.min(ft)));
        let (y0, y1) = (y.0.min(fh), y.1.min(fh).max(y.0.min(fh)));
        let (x0, x1) = (x.0.min(fw), x.1.min(fw).max(x.0.min(fw)));
        let dims = [b, c, t1 - t0, y1 - y0, x1 - x0];
        let mut data = Vec::with_capacity(dims.iter().product());
        for bc in 0..b * c {
            for ti in t0..t1 {
                for yi in y0..y1 {
                    let row = ((bc * ft + ti) * fh + yi) * fw;
                    data.extend_from_slice(&self.data[row + x0..row + x1]);
                }
            }
        }
        Volume { dims, data }
    }

    /// Writes `src` into this array with its origin at frame `t`, row `y`,
    /// column `x`, clipping whatever falls outside. Batch and channel counts
    /// must match.
    pub fn paste(&mut self, src: &Volume, t: usize, y: usize, x: usize) {
        let [b, c, ft, fh, fw] = self.dims;
        let [sb, sc, st, sh, sw] = src.dims;
        debug_assert_eq!((b, c), (sb, sc));
        let nt = st.min(ft.saturating_sub(t));
        let nh = sh.min(fh.saturating_sub(y));
        let nw = sw.min(fw.saturating_sub(x));
        for bc in 0..b * c {
            for ti in 0..nt {
                for yi in 0..nh {
                    let dst = ((bc * ft + t + ti) * fh + y + yi) * fw + x;
                    let s = ((bc * st + ti) * sh + yi) * sw;
                    self.data[dst..dst + nw].copy_from_slice(&src.data[s..s + nw]);
                }
            }
        }
    }
}
