//! The CPU reference backend: f32 compute, rayon across cores, `gemm` for
//! matrix products. One file per op family; ops that only one model needs
//! (e.g. the VAE's convolutions) get their own file here.
//!
//! Activations are f32. Weights stay in the dtype they are stored in
//! (bf16/f16 files read in place from the memory map, see
//! [`Backend::weight_dtype`]) and are widened per operation: the matmul by
//! column panels of the weight, the smaller parameters (biases, norm
//! weights, convolution kernels, which conv3d repacks on every call anyway)
//! whole.

pub mod channel_norm;
pub mod conv3d;
pub mod space_depth;

mod attention;
mod buffers;
mod copy;
mod elementwise;
mod math;
mod matmul;
mod norm;
mod sampler;
mod simd;
mod storage;

pub use storage::{CpuStorage, HostSlice, MappedElems};

use std::borrow::Cow;

use super::{
    AttentionSpec, Backend, BackendStorage, BinaryOp, Conv3dSpec, GuidanceSpec, MatmulSpec,
    Operand, SubOrder, UnaryOp,
};
use crate::tensor::{DType, Result, TensorError};

/// Work below this many elements stays on one thread: splitting costs more.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 14;

#[derive(Debug, Default, Clone, Copy)]
pub struct CpuBackend;

type Out = Result<Box<dyn BackendStorage>>;

/// The host buffer behind a CPU operand.
pub(crate) fn cpu_storage<'a>(
    op: &'static str,
    s: &'a dyn BackendStorage,
) -> Result<&'a CpuStorage> {
    s.as_any()
        .downcast_ref::<CpuStorage>()
        .ok_or_else(|| TensorError::invalid(op, "operand is not in CPU memory"))
}

/// The f32 data behind a CPU operand (the CPU computes in f32 only).
pub(crate) fn f32_data<'a>(op: &'static str, s: &'a dyn BackendStorage) -> Result<&'a [f32]> {
    match cpu_storage(op, s)?.view() {
        HostSlice::F32(v) => Ok(v),
        other => Err(TensorError::Unsupported {
            op,
            device: "cpu".into(),
            dtype: other.dtype(),
        }),
    }
}

/// The elements of a contiguous operand, from its offset on, any dtype.
fn contiguous_view<'a>(op: &'static str, o: &Operand<'a>) -> Result<HostSlice<'a>> {
    if !o.layout.is_contiguous() {
        return Err(TensorError::invalid(op, "operand must be contiguous"));
    }
    let view = cpu_storage(op, o.storage)?.view();
    let (start, count) = (o.layout.offset(), o.layout.elem_count());
    if start + count > view.len() {
        return Err(TensorError::invalid(op, "layout exceeds storage"));
    }
    Ok(match view {
        HostSlice::F32(v) => HostSlice::F32(&v[start..start + count]),
        HostSlice::BF16(v) => HostSlice::BF16(&v[start..start + count]),
        HostSlice::F16(v) => HostSlice::F16(&v[start..start + count]),
    })
}

/// A contiguous weight operand (bias, norm weight, kernel) as f32: borrowed
/// when stored in f32, widened into a temporary when stored in 16 bits.
pub(crate) fn param_f32<'a>(op: &'static str, o: &Operand<'a>) -> Result<Cow<'a, [f32]>> {
    Ok(match contiguous_view(op, o)? {
        HostSlice::F32(v) => Cow::Borrowed(v),
        half => Cow::Owned(half.widen(0, half.len())),
    })
}

/// The f32 data of a contiguous operand, from its offset on.
pub(crate) fn contiguous_f32<'a>(op: &'static str, o: &Operand<'a>) -> Result<&'a [f32]> {
    if !o.layout.is_contiguous() {
        return Err(TensorError::invalid(op, "operand must be contiguous"));
    }
    let data = f32_data(op, o.storage)?;
    let end = o.layout.offset() + o.layout.elem_count();
    data.get(o.layout.offset()..end)
        .ok_or_else(|| TensorError::invalid(op, "layout exceeds storage"))
}

fn boxed(v: Vec<f32>) -> Out {
    Ok(Box::new(CpuStorage::F32(v)))
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&self, data: CpuStorage) -> Out {
        Ok(Box::new(data))
    }

    /// Weights stored in 16 bits stay in 16 bits (read in place from the
    /// memory map) when the model asks for f32: every op widens them as it
    /// reads them, so a model costs the bytes it is stored in.
    fn weight_dtype(&self, stored: DType, requested: DType) -> DType {
        match (stored, requested) {
            (DType::BF16 | DType::F16, DType::F32) => stored,
            _ => requested,
        }
    }

    fn activation_dtype(&self, _weight: DType) -> DType {
        DType::F32
    }

    fn download(&self, src: &dyn BackendStorage) -> Result<CpuStorage> {
        Ok(cpu_storage("download", src)?.clone())
    }

    fn zeros(&self, len: usize, dtype: DType) -> Out {
        Ok(Box::new(CpuStorage::zeros(len, dtype)))
    }

    fn copy_strided(&self, src: Operand<'_>) -> Out {
        Ok(Box::new(copy::copy_strided(src)?))
    }

    fn to_dtype(&self, src: Operand<'_>, dtype: DType) -> Out {
        Ok(Box::new(copy::copy_strided(src)?.convert(dtype)))
    }

    fn cat(&self, parts: &[Operand<'_>], dim: usize, out_dims: &[usize]) -> Out {
        Ok(Box::new(copy::cat(parts, dim, out_dims)?))
    }

    fn euler_step(
        &self,
        x: Operand<'_>,
        v: Operand<'_>,
        sigma: Operand<'_>,
        sigma_next: Operand<'_>,
        update: Option<Operand<'_>>,
        channels: usize,
    ) -> Out {
        sampler::euler_step(x, v, sigma, sigma_next, update, channels)
    }

    fn guidance(
        &self,
        cond: Operand<'_>,
        uncond: Option<Operand<'_>>,
        perturbed: Option<Operand<'_>>,
        spec: &GuidanceSpec,
    ) -> Out {
        sampler::guidance(cond, uncond, perturbed, spec)
    }

    fn noise_normal(&self, len: usize, seed: u64, stream: u64, start: u64) -> Out {
        sampler::noise_normal(len, seed, stream, start)
    }

    fn timestep_features(&self, timesteps: Operand<'_>, freqs: Operand<'_>) -> Out {
        sampler::timestep_features(timesteps, freqs)
    }

    fn unary(&self, op: UnaryOp, src: Operand<'_>) -> Out {
        boxed(elementwise::unary(op, contiguous_f32("unary", &src)?))
    }

    fn affine(&self, src: Operand<'_>, mul: f32, add: f32) -> Out {
        boxed(elementwise::affine(
            contiguous_f32("affine", &src)?,
            mul,
            add,
        ))
    }

    fn binary(&self, op: BinaryOp, lhs: Operand<'_>, rhs: Operand<'_>) -> Out {
        boxed(elementwise::binary(op, lhs, rhs)?)
    }

    fn matmul(
        &self,
        lhs: &dyn BackendStorage,
        rhs: &dyn BackendStorage,
        bias: Option<Operand<'_>>,
        spec: &MatmulSpec,
    ) -> Out {
        let bias = bias.map(|b| param_f32("matmul", &b)).transpose()?;
        boxed(matmul::matmul(
            f32_data("matmul", lhs)?,
            cpu_storage("matmul", rhs)?.view(),
            bias.as_deref(),
            spec,
        )?)
    }

    fn softmax_last_dim(&self, src: Operand<'_>) -> Out {
        let dim = src.layout.dims().last().copied().unwrap_or(1);
        boxed(norm::softmax(contiguous_f32("softmax", &src)?, dim))
    }

    fn rms_norm(&self, src: Operand<'_>, weight: Option<Operand<'_>>, eps: f32) -> Out {
        let dim = src.layout.dims().last().copied().unwrap_or(1);
        let w = weight.map(|w| param_f32("rms_norm", &w)).transpose()?;
        boxed(norm::rms_norm(
            contiguous_f32("rms_norm", &src)?,
            dim,
            w.as_deref(),
            eps,
        ))
    }

    fn layer_norm(
        &self,
        src: Operand<'_>,
        weight: Option<Operand<'_>>,
        bias: Option<Operand<'_>>,
        eps: f32,
    ) -> Out {
        let dim = src.layout.dims().last().copied().unwrap_or(1);
        let w = weight.map(|w| param_f32("layer_norm", &w)).transpose()?;
        let b = bias.map(|b| param_f32("layer_norm", &b)).transpose()?;
        boxed(norm::layer_norm(
            contiguous_f32("layer_norm", &src)?,
            dim,
            w.as_deref(),
            b.as_deref(),
            eps,
        ))
    }

    fn attention(
        &self,
        q: Operand<'_>,
        k: Operand<'_>,
        v: Operand<'_>,
        key_bias: Option<Operand<'_>>,
        spec: &AttentionSpec,
    ) -> Out {
        let bias = key_bias
            .map(|b| contiguous_f32("attention", &b))
            .transpose()?;
        boxed(attention::attention(
            contiguous_f32("attention", &q)?,
            contiguous_f32("attention", &k)?,
            contiguous_f32("attention", &v)?,
            bias,
            spec,
        )?)
    }

    fn rope_interleaved(&self, x: Operand<'_>, cos: Operand<'_>, sin: Operand<'_>) -> Out {
        boxed(elementwise::rope_interleaved(x, cos, sin)?)
    }

    fn modulate(&self, x: Operand<'_>, shift: Operand<'_>, scale: Operand<'_>) -> Out {
        boxed(elementwise::modulate(x, shift, scale)?)
    }

    fn gated_residual(&self, x: Operand<'_>, gate: Operand<'_>, y: Operand<'_>) -> Out {
        boxed(elementwise::gated_residual(x, gate, y)?)
    }

    fn conv3d(
        &self,
        x: Operand<'_>,
        weight: Operand<'_>,
        bias: Option<Operand<'_>>,
        residual: Option<Operand<'_>>,
        spec: &Conv3dSpec,
    ) -> Out {
        const OP: &str = "conv3d";
        let &Conv3dSpec {
            batch,
            in_channels: ci,
            out_channels: co,
            frames,
            height,
            width,
            kernel,
            time_padding,
        } = spec;
        let input = contiguous_f32(OP, &x)?;
        let w = param_f32(OP, &weight)?;
        let b = bias.map(|b| param_f32(OP, &b)).transpose()?;
        let r = residual.map(|r| contiguous_f32(OP, &r)).transpose()?;
        let voxels = batch * frames * height * width;
        if input.len() != voxels * ci || r.is_some_and(|r| r.len() != voxels * co) {
            return Err(TensorError::invalid(OP, "operands do not fit the spec"));
        }
        // The implicit GEMM wants the weight as one [Co, kt*Ci] matrix per
        // spatial tap. Repacking on every call keeps one weight layout for
        // every backend; it moves Co*Ci*27 values, nothing beside the
        // conv's Co*Ci*27 multiply-adds per output voxel.
        let packed = conv3d::Conv3dWeights::new(&w, b.as_deref().unwrap_or(&[]), co, ci, kernel)
            .map_err(|e| TensorError::invalid(OP, e.to_string()))?;
        let dims = [batch, ci, frames, height, width];
        boxed(conv3d::conv3d(input, dims, &packed, time_padding, r))
    }

    fn channel_rms_norm(
        &self,
        x: Operand<'_>,
        scale: Option<Operand<'_>>,
        shift: Option<Operand<'_>>,
        eps: f32,
        silu: bool,
    ) -> Out {
        const OP: &str = "channel_rms_norm";
        let dims = x.layout.dims();
        if dims.len() < 2 {
            return Err(TensorError::invalid(OP, "needs [batch, channels, ..]"));
        }
        let (batch, channels) = (dims[0], dims[1]);
        let positions = dims[2..].iter().product();
        let data = contiguous_f32(OP, &x)?;
        let modulation = match (scale, shift) {
            (Some(sc), Some(sh)) => {
                let (scale, shift) = (contiguous_f32(OP, &sc)?, contiguous_f32(OP, &sh)?);
                if scale.len() != batch * channels || shift.len() != batch * channels {
                    return Err(TensorError::invalid(
                        OP,
                        "modulation must be [batch, channels]",
                    ));
                }
                Some(channel_norm::Modulation { scale, shift })
            }
            (None, None) => None,
            _ => return Err(TensorError::invalid(OP, "scale and shift come together")),
        };
        boxed(channel_norm::rms_norm_channels(
            data,
            [batch, channels, positions],
            eps,
            modulation,
            silu,
        ))
    }

    fn depth_to_space_3d(
        &self,
        x: Operand<'_>,
        factors: [usize; 3],
        order: SubOrder,
        drop_front: usize,
    ) -> Out {
        const OP: &str = "depth_to_space_3d";
        let dims = five_dims(OP, x.layout.dims())?;
        let block: usize = factors.iter().product();
        if block == 0 || dims[1] % block != 0 || drop_front > dims[2] * factors[0] {
            return Err(TensorError::invalid(OP, "factors do not fit the dims"));
        }
        let data = contiguous_f32(OP, &x)?;
        boxed(space_depth::depth_to_space(
            data, dims, factors, order, drop_front,
        ))
    }

    fn space_to_depth_3d(&self, x: Operand<'_>, factors: [usize; 3], order: SubOrder) -> Out {
        const OP: &str = "space_to_depth_3d";
        let dims = five_dims(OP, x.layout.dims())?;
        if factors.contains(&0) || (2..5).any(|d| dims[d] % factors[d - 2] != 0) {
            return Err(TensorError::invalid(OP, "factors do not divide the dims"));
        }
        let data = contiguous_f32(OP, &x)?;
        boxed(space_depth::space_to_depth(data, dims, factors, order))
    }
}

fn five_dims(op: &'static str, dims: &[usize]) -> Result<[usize; 5]> {
    dims.try_into()
        .map_err(|_| TensorError::invalid(op, format!("expected 5 dims, got {dims:?}")))
}
