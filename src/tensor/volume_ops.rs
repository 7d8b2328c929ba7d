//! Ops on video volumes `[batch, channels, frames, height, width]` (the
//! VAE's activations): shape checks here, the work in the backend.

use super::{Result, Tensor, TensorError};
use crate::backend::{Conv3dSpec, SubOrder, TimePadding};

impl Tensor {
    fn volume_dims(&self, op: &'static str) -> Result<[usize; 5]> {
        self.dims().try_into().map_err(|_| {
            TensorError::invalid(
                op,
                format!(
                    "expected [batch, channels, frames, height, width], got {:?}",
                    self.dims()
                ),
            )
        })
    }

    /// Stride-1 3-D convolution keeping frames, height and width (see
    /// [`Conv3dSpec`]): `weight` `[out, in, kt, kh, kw]` with odd `kh`, `kw`,
    /// `bias` `[out]`, and `residual` (the output's dims) added in the same
    /// pass.
    pub fn conv3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        time_padding: TimePadding,
    ) -> Result<Tensor> {
        const OP: &str = "conv3d";
        let [batch, ci, frames, height, width] = self.volume_dims(OP)?;
        self.check_param(OP, weight)?;
        let mismatch = |t: &Tensor| TensorError::ShapeMismatch {
            op: OP,
            lhs: self.dims().to_vec(),
            rhs: t.dims().to_vec(),
        };
        let &[co, wci, kt, kh, kw] = weight.dims() else {
            return Err(mismatch(weight));
        };
        if wci != ci || kt == 0 || kh % 2 == 0 || kw % 2 == 0 {
            return Err(mismatch(weight));
        }
        let out_dims = [batch, co, frames, height, width];
        if let Some(b) = bias {
            self.check_param(OP, b)?;
            if b.dims() != [co] {
                return Err(mismatch(b));
            }
        }
        if let Some(r) = residual {
            self.check_same(OP, r)?;
            if r.dims() != out_dims {
                return Err(mismatch(r));
            }
        }
        let spec = Conv3dSpec {
            batch,
            in_channels: ci,
            out_channels: co,
            frames,
            height,
            width,
            kernel: [kt, kh, kw],
            time_padding,
        };
        let x = self.contiguous()?;
        let w = weight.contiguous()?;
        let b = bias.map(Tensor::contiguous).transpose()?;
        let r = residual.map(Tensor::contiguous).transpose()?;
        let out = self.device.backend().conv3d(
            x.operand(),
            w.operand(),
            b.as_ref().map(Tensor::operand),
            r.as_ref().map(Tensor::operand),
            &spec,
        )?;
        Tensor::from_output(out, &out_dims, &self.device)
    }

    /// RMS norm across the channels (dim 1) without a learned weight, then
    /// `* (1 + scale) + shift` with `[batch, channels]` modulation when
    /// given as `(scale, shift)`, then SiLU when `silu`.
    pub fn channel_rms_norm(
        &self,
        modulation: Option<(&Tensor, &Tensor)>,
        eps: f32,
        silu: bool,
    ) -> Result<Tensor> {
        const OP: &str = "channel_rms_norm";
        if self.rank() < 2 {
            return Err(TensorError::invalid(OP, "needs [batch, channels, ..]"));
        }
        let bc = [self.dims()[0], self.dims()[1]];
        let mods = modulation
            .map(|(scale, shift)| -> Result<(Tensor, Tensor)> {
                for m in [scale, shift] {
                    self.check_same(OP, m)?;
                    if m.dims() != bc {
                        return Err(TensorError::ShapeMismatch {
                            op: OP,
                            lhs: self.dims().to_vec(),
                            rhs: m.dims().to_vec(),
                        });
                    }
                }
                Ok((scale.contiguous()?, shift.contiguous()?))
            })
            .transpose()?;
        let x = self.contiguous()?;
        let out = self.device.backend().channel_rms_norm(
            x.operand(),
            mods.as_ref().map(|m| m.0.operand()),
            mods.as_ref().map(|m| m.1.operand()),
            eps,
            silu,
        )?;
        Tensor::from_output(out, x.dims(), &self.device)
    }

    /// `[b, c*ft*fh*fw, t, h, w]` -> `[b, c, t*ft - drop_front, h*fh, w*fw]`.
    pub fn depth_to_space_3d(
        &self,
        factors: [usize; 3],
        order: SubOrder,
        drop_front: usize,
    ) -> Result<Tensor> {
        const OP: &str = "depth_to_space_3d";
        let [b, c, t, h, w] = self.volume_dims(OP)?;
        let [ft, fh, fw] = factors;
        let block = ft * fh * fw;
        if block == 0 || c % block != 0 || drop_front > t * ft {
            return Err(TensorError::invalid(
                OP,
                format!(
                    "factors {factors:?} (dropping {drop_front}) do not fit {:?}",
                    self.dims()
                ),
            ));
        }
        let x = self.contiguous()?;
        let out =
            self.device
                .backend()
                .depth_to_space_3d(x.operand(), factors, order, drop_front)?;
        let dims = [b, c / block, t * ft - drop_front, h * fh, w * fw];
        Tensor::from_output(out, &dims, &self.device)
    }

    /// `[b, c, t, h, w]` -> `[b, c*ft*fh*fw, t/ft, h/fh, w/fw]`.
    pub fn space_to_depth_3d(&self, factors: [usize; 3], order: SubOrder) -> Result<Tensor> {
        const OP: &str = "space_to_depth_3d";
        let [b, c, t, h, w] = self.volume_dims(OP)?;
        let [ft, fh, fw] = factors;
        if factors.contains(&0) || t % ft != 0 || h % fh != 0 || w % fw != 0 {
            return Err(TensorError::invalid(
                OP,
                format!("factors {factors:?} do not divide {:?}", self.dims()),
            ));
        }
        let x = self.contiguous()?;
        let out = self
            .device
            .backend()
            .space_to_depth_3d(x.operand(), factors, order)?;
        let dims = [b, c * ft * fh * fw, t / ft, h / fh, w / fw];
        Tensor::from_output(out, &dims, &self.device)
    }
}
