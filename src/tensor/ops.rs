//! Compute ops: shape/dtype checks here, the work in the device's backend.

use super::{broadcast_shape, Result, Tensor, TensorError};
use crate::backend::{AttentionSpec, BinaryOp, MatStrides, MatmulSpec, UnaryOp};

impl Tensor {
    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let t = self.contiguous()?;
        let out = t.device.backend().unary(op, t.operand())?;
        Tensor::from_output(out, t.dims(), &t.device)
    }

    /// GELU, tanh approximation (`nn.GELU(approximate="tanh")`).
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluTanh)
    }
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Silu)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqr)
    }

    /// `self * mul + add`.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        let t = self.contiguous()?;
        let out = t.device.backend().affine(t.operand(), mul, add)?;
        Tensor::from_output(out, t.dims(), &t.device)
    }

    /// `self * factor`.
    pub fn scale(&self, factor: f32) -> Result<Tensor> {
        self.affine(factor, 0.0)
    }

    fn binary(&self, op: BinaryOp, name: &'static str, rhs: &Tensor) -> Result<Tensor> {
        // A weight kept narrower than the activations it meets (a 16-bit
        // table on the CPU) is widened for this op.
        if self.dtype() != rhs.dtype() {
            let backend = self.device.backend();
            if backend.activation_dtype(rhs.dtype()) == self.dtype() {
                return self.binary(op, name, &rhs.to_dtype(self.dtype())?);
            }
            if backend.activation_dtype(self.dtype()) == rhs.dtype() {
                return self.to_dtype(rhs.dtype())?.binary(op, name, rhs);
            }
        }
        self.check_same(name, rhs)?;
        let dims = broadcast_shape(name, self.dims(), rhs.dims())?;
        let l = self.broadcast_as(&dims)?;
        let r = rhs.broadcast_as(&dims)?;
        let out = self.device.backend().binary(op, l.operand(), r.operand())?;
        Tensor::from_output(out, &dims, &self.device)
    }

    /// Elementwise sum with numpy broadcasting.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, "add", rhs)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, "sub", rhs)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, "mul", rhs)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, "div", rhs)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Maximum, "maximum", rhs)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Minimum, "minimum", rhs)
    }

    /// Batched matrix product `[.., m, k] · [.., k, n] -> [.., m, n]`. The
    /// batch dims must match, or `rhs` is 2-D and shared by every batch.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.check_same("matmul", rhs)?;
        let mismatch = || TensorError::ShapeMismatch {
            op: "matmul",
            lhs: self.dims().to_vec(),
            rhs: rhs.dims().to_vec(),
        };
        let (ra, rb) = (self.rank(), rhs.rank());
        if ra < 2 || rb < 2 {
            return Err(mismatch());
        }
        let (m, k) = (self.dims()[ra - 2], self.dims()[ra - 1]);
        let (k2, n) = (rhs.dims()[rb - 2], rhs.dims()[rb - 1]);
        let batch_dims = &self.dims()[..ra - 2];
        if k != k2 || (rb > 2 && &rhs.dims()[..rb - 2] != batch_dims) {
            return Err(mismatch());
        }
        let batch: usize = batch_dims.iter().product();
        let lhs = matrix_operand(self, 2)?;
        let rhs_t = matrix_operand(rhs, 2)?;
        let spec = MatmulSpec {
            batch,
            m,
            n,
            k,
            lhs: mat_strides(&lhs),
            rhs: if rb == 2 {
                MatStrides {
                    batch: 0,
                    ..mat_strides(&rhs_t)
                }
            } else {
                mat_strides(&rhs_t)
            },
        };
        let out = self
            .device
            .backend()
            .matmul(lhs.storage(), rhs_t.storage(), None, &spec)?;
        let mut dims = batch_dims.to_vec();
        dims.extend([m, n]);
        Tensor::from_output(out, &dims, &self.device)
    }

    /// PyTorch `Linear`: `[.., in] -> [.., out]` with `weight` `[out, in]`
    /// and an optional `bias` `[out]`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.check_param("linear", weight)?;
        let mismatch = |w: &Tensor| TensorError::ShapeMismatch {
            op: "linear",
            lhs: self.dims().to_vec(),
            rhs: w.dims().to_vec(),
        };
        let rank = self.rank();
        if rank == 0 || weight.rank() != 2 || weight.dims()[1] != self.dims()[rank - 1] {
            return Err(mismatch(weight));
        }
        let (n, k) = (weight.dims()[0], weight.dims()[1]);
        if let Some(b) = bias {
            self.check_param("linear", b)?;
            if b.dims() != [n] {
                return Err(mismatch(b));
            }
        }
        let x = matrix_operand(self, 1)?;
        let w = weight.contiguous()?;
        let m = self.elem_count() / k.max(1);
        let x_strides = x.layout().strides();
        let spec = MatmulSpec {
            batch: 1,
            m,
            n,
            k,
            lhs: MatStrides {
                offset: x.layout().offset(),
                batch: 0,
                row: x.layout().merged_outer_stride(1).unwrap_or(k),
                col: x_strides.last().copied().unwrap_or(1),
            },
            // The weight is [n, k]; reading it as [k, n] is the transpose.
            rhs: MatStrides {
                offset: w.layout().offset(),
                batch: 0,
                row: 1,
                col: k,
            },
        };
        let bias = bias.map(|b| b.contiguous()).transpose()?;
        let out = self.device.backend().matmul(
            x.storage(),
            w.storage(),
            bias.as_ref().map(|b| b.operand()),
            &spec,
        )?;
        let mut dims = self.dims().to_vec();
        dims[rank - 1] = n;
        Tensor::from_output(out, &dims, &self.device)
    }

    /// Softmax over the last dim.
    pub fn softmax_last_dim(&self) -> Result<Tensor> {
        let t = self.contiguous()?;
        let out = t.device.backend().softmax_last_dim(t.operand())?;
        Tensor::from_output(out, t.dims(), &t.device)
    }

    fn check_norm_param(&self, op: &'static str, p: Option<&Tensor>) -> Result<Option<Tensor>> {
        let Some(p) = p else { return Ok(None) };
        self.check_param(op, p)?;
        let last = self.dims().last().copied().unwrap_or(0);
        if p.dims() != [last] {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: self.dims().to_vec(),
                rhs: p.dims().to_vec(),
            });
        }
        Ok(Some(p.contiguous()?))
    }

    /// RMSNorm over the last dim: `x / sqrt(mean(x²) + eps) (* weight)`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        let w = self.check_norm_param("rms_norm", weight)?;
        let t = self.contiguous()?;
        let out = t
            .device
            .backend()
            .rms_norm(t.operand(), w.as_ref().map(|w| w.operand()), eps)?;
        Tensor::from_output(out, t.dims(), &t.device)
    }

    /// LayerNorm over the last dim, with optional affine weight and bias.
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let w = self.check_norm_param("layer_norm", weight)?;
        let b = self.check_norm_param("layer_norm", bias)?;
        let t = self.contiguous()?;
        let out = t.device.backend().layer_norm(
            t.operand(),
            w.as_ref().map(|w| w.operand()),
            b.as_ref().map(|b| b.operand()),
            eps,
        )?;
        Tensor::from_output(out, t.dims(), &t.device)
    }

    /// Broadcast `p` to self's dims with a unit last stride, as the fused
    /// row-wise ops expect.
    fn row_operand(&self, op: &'static str, p: &Tensor) -> Result<Tensor> {
        self.check_same(op, p)?;
        let b = p
            .broadcast_as(self.dims())
            .map_err(|_| TensorError::ShapeMismatch {
                op,
                lhs: self.dims().to_vec(),
                rhs: p.dims().to_vec(),
            })?;
        let last_ok = b.layout().strides().last().map_or(true, |&s| s == 1)
            || b.dims().last().map_or(true, |&d| d <= 1);
        if last_ok {
            Ok(b)
        } else {
            // Rare (a broadcast or strided last dim): materialise it.
            b.contiguous()
        }
    }

    /// Rotary embedding on interleaved (even, odd) pairs of the last dim, as
    /// LTX-Video applies it; `cos` and `sin` broadcast to self's dims.
    pub fn rope_interleaved(&self, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if self.dims().last().map_or(true, |d| d % 2 != 0) {
            return Err(TensorError::invalid(
                "rope",
                format!("last dim of {:?} must be even", self.dims()),
            ));
        }
        let x = self.contiguous()?;
        let c = x.row_operand("rope", cos)?;
        let s = x.row_operand("rope", sin)?;
        let out = x
            .device
            .backend()
            .rope_interleaved(x.operand(), c.operand(), s.operand())?;
        Tensor::from_output(out, x.dims(), &x.device)
    }

    /// AdaLN modulation `self * (1 + scale) + shift` (broadcasting).
    pub fn modulate(&self, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
        let x = self.contiguous()?;
        let sh = x.row_operand("modulate", shift)?;
        let sc = x.row_operand("modulate", scale)?;
        let out = x
            .device
            .backend()
            .modulate(x.operand(), sh.operand(), sc.operand())?;
        Tensor::from_output(out, x.dims(), &x.device)
    }

    /// Gated residual `self + gate * y` (gate broadcasting, y of self's dims).
    pub fn gated_residual(&self, gate: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.check_same("gated_residual", y)?;
        if self.dims() != y.dims() {
            return Err(TensorError::ShapeMismatch {
                op: "gated_residual",
                lhs: self.dims().to_vec(),
                rhs: y.dims().to_vec(),
            });
        }
        let x = self.contiguous()?;
        let y = y.contiguous()?;
        let g = x.row_operand("gated_residual", gate)?;
        let out = x
            .device
            .backend()
            .gated_residual(x.operand(), g.operand(), y.operand())?;
        Tensor::from_output(out, x.dims(), &x.device)
    }

    /// Multi-head attention on token-major tensors: q `[b, nq, heads, dh]`,
    /// k and v `[b, nk, heads, dh]`, optional additive `key_bias` `[b, nk]`.
    /// Returns `[b, nq, heads, dh]`. Never materialises the `nq × nk` scores.
    pub fn attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        key_bias: Option<&Tensor>,
        scale: f32,
    ) -> Result<Tensor> {
        q.check_same("attention", k)?;
        q.check_same("attention", v)?;
        let mismatch = |t: &Tensor| TensorError::ShapeMismatch {
            op: "attention",
            lhs: q.dims().to_vec(),
            rhs: t.dims().to_vec(),
        };
        if q.rank() != 4 {
            return Err(mismatch(q));
        }
        let (b, nq, h, dh) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
        if k.rank() != 4 || k.dims()[0] != b || k.dims()[2] != h || k.dims()[3] != dh {
            return Err(mismatch(k));
        }
        let nk = k.dims()[1];
        if v.dims() != k.dims() {
            return Err(mismatch(v));
        }
        let bias = match key_bias {
            Some(kb) => {
                q.check_same("attention", kb)?;
                if kb.dims() != [b, nk] {
                    return Err(mismatch(kb));
                }
                Some(kb.contiguous()?)
            }
            None => None,
        };
        let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
        let spec = AttentionSpec {
            batch: b,
            q_len: nq,
            kv_len: nk,
            heads: h,
            head_dim: dh,
            scale,
        };
        let out = q.device.backend().attention(
            q.operand(),
            k.operand(),
            v.operand(),
            bias.as_ref().map(|t| t.operand()),
            &spec,
        )?;
        Tensor::from_output(out, q.dims(), &q.device)
    }
}

/// A view whose last `keep` dims are a matrix and whose leading dims walk
/// with one stride; copies when the view cannot be described that way.
fn matrix_operand(t: &Tensor, keep: usize) -> Result<Tensor> {
    if t.layout().merged_outer_stride(keep).is_some() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

fn mat_strides(t: &Tensor) -> MatStrides {
    let l = t.layout();
    let r = l.rank();
    MatStrides {
        offset: l.offset(),
        batch: l.merged_outer_stride(2).unwrap_or(0),
        row: l.strides()[r - 2],
        col: l.strides()[r - 1],
    }
}
