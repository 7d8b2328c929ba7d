//! Elementwise and fused row-wise ops. Fusing (modulate, gated residual,
//! rope) matters on the CPU: each separate pass over activations costs a
//! full trip through memory.

use super::{buffers, contiguous_f32, f32_data, simd};
use crate::backend::{BinaryOp, Operand, UnaryOp};
use crate::tensor::{Result, TensorError};

fn map(src: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) -> Vec<f32> {
    buffers::computed(src.len(), 1, |start, chunk| {
        for (o, &x) in chunk.iter_mut().zip(&src[start..]) {
            *o = f(x);
        }
    })
}

/// Like `map`, with a function that processes whole slices.
fn map_slices(src: &[f32], f: fn(&mut [f32], &[f32])) -> Vec<f32> {
    buffers::computed(src.len(), 1, |start, chunk| {
        f(chunk, &src[start..start + chunk.len()])
    })
}

pub fn unary(op: UnaryOp, src: &[f32]) -> Vec<f32> {
    match op {
        UnaryOp::GeluTanh => map_slices(src, simd::gelu_tanh),
        UnaryOp::Silu => map_slices(src, simd::silu),
        UnaryOp::Exp => map(src, f32::exp),
        UnaryOp::Neg => map(src, |x| -x),
        UnaryOp::Sqrt => map(src, f32::sqrt),
        UnaryOp::Recip => map(src, |x| 1.0 / x),
        UnaryOp::Abs => map(src, f32::abs),
        UnaryOp::Tanh => map(src, f32::tanh),
        UnaryOp::Sin => map(src, f32::sin),
        UnaryOp::Cos => map(src, f32::cos),
        UnaryOp::Sqr => map(src, |x| x * x),
    }
}

pub fn affine(src: &[f32], mul: f32, add: f32) -> Vec<f32> {
    map(src, |x| x * mul + add)
}

pub(super) fn apply_binary(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
    }
}

/// A strided operand checked against its storage.
struct Strided<'a> {
    data: &'a [f32],
    op: Operand<'a>,
    inner_stride: usize,
}

impl<'a> Strided<'a> {
    fn new(name: &'static str, op: Operand<'a>) -> Result<Self> {
        let data = f32_data(name, op.storage)?;
        if op.layout.required_len() > data.len() {
            return Err(TensorError::invalid(name, "layout exceeds storage"));
        }
        let inner_stride = op.layout.strides().last().copied().unwrap_or(0);
        Ok(Self {
            data,
            op,
            inner_stride,
        })
    }

    /// Row `row` (all dims but the last) as a slice, when the last stride is 1.
    fn row(&self, row: usize, len: usize) -> Option<&'a [f32]> {
        if self.inner_stride == 1 || len <= 1 {
            let start = self.op.layout.row_offset(row);
            Some(&self.data[start..start + len])
        } else {
            None
        }
    }

    fn at(&self, row: usize, j: usize) -> f32 {
        self.data[self.op.layout.row_offset(row) + j * self.inner_stride]
    }
}

pub fn binary(op: BinaryOp, lhs: Operand<'_>, rhs: Operand<'_>) -> Result<Vec<f32>> {
    let l = Strided::new("binary", lhs)?;
    let r = Strided::new("binary", rhs)?;
    let dims = lhs.layout.dims();
    if dims != rhs.layout.dims() {
        return Err(TensorError::ShapeMismatch {
            op: "binary",
            lhs: dims.to_vec(),
            rhs: rhs.layout.dims().to_vec(),
        });
    }
    let inner = dims.last().copied().unwrap_or(1).max(1);
    Ok(buffers::computed_rows(
        lhs.layout.elem_count(),
        inner,
        |row, o| match (l.row(row, inner), r.row(row, inner)) {
            (Some(a), Some(b)) => simd::binary_row(op, o, a, b),
            _ => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = apply_binary(op, l.at(row, j), r.at(row, j));
                }
            }
        },
    ))
}

/// Shared shape of the fused row-wise ops: `x` contiguous, the other
/// operands with x's dims and unit last stride.
fn fused_rows(
    name: &'static str,
    x: Operand<'_>,
    others: [Operand<'_>; 2],
    f: impl Fn(&mut [f32], &[f32], &[f32], &[f32]) + Sync + Send,
) -> Result<Vec<f32>> {
    let xs = contiguous_f32(name, &x)?;
    let dims = x.layout.dims();
    let a = Strided::new(name, others[0])?;
    let b = Strided::new(name, others[1])?;
    for o in &others {
        if o.layout.dims() != dims {
            return Err(TensorError::ShapeMismatch {
                op: name,
                lhs: dims.to_vec(),
                rhs: o.layout.dims().to_vec(),
            });
        }
    }
    let inner = dims.last().copied().unwrap_or(1).max(1);
    if a.row(0, inner).is_none() || b.row(0, inner).is_none() {
        return Err(TensorError::invalid(
            name,
            "operands need a unit last stride",
        ));
    }
    Ok(buffers::computed_rows(xs.len(), inner, |row, o| {
        let xr = &xs[row * inner..(row + 1) * inner];
        // Checked above: unit last stride, so rows are slices.
        if let (Some(ar), Some(br)) = (a.row(row, inner), b.row(row, inner)) {
            f(o, xr, ar, br);
        }
    }))
}

pub fn modulate(x: Operand<'_>, shift: Operand<'_>, scale: Operand<'_>) -> Result<Vec<f32>> {
    fused_rows("modulate", x, [shift, scale], |o, x, sh, sc| {
        for (((o, &x), &sh), &sc) in o.iter_mut().zip(x).zip(sh).zip(sc) {
            *o = x * (1.0 + sc) + sh;
        }
    })
}

pub fn gated_residual(x: Operand<'_>, gate: Operand<'_>, y: Operand<'_>) -> Result<Vec<f32>> {
    fused_rows("gated_residual", x, [gate, y], |o, x, g, y| {
        for (((o, &x), &g), &y) in o.iter_mut().zip(x).zip(g).zip(y) {
            *o = x + g * y;
        }
    })
}

pub fn rope_interleaved(x: Operand<'_>, cos: Operand<'_>, sin: Operand<'_>) -> Result<Vec<f32>> {
    fused_rows("rope", x, [cos, sin], |o, x, c, s| {
        for (((o, x), c), s) in o
            .chunks_exact_mut(2)
            .zip(x.chunks_exact(2))
            .zip(c.chunks_exact(2))
            .zip(s.chunks_exact(2))
        {
            o[0] = x[0] * c[0] - x[1] * s[0];
            o[1] = x[1] * c[1] + x[0] * s[1];
        }
    })
}
