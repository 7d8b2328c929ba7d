//! Compute backends: `cpu` is the f32 reference, `cuda` runs our kernels.
//!
//! # How a backend plugs in
//!
//! A [`Tensor`](crate::tensor::Tensor) holds an `Arc<dyn BackendStorage>`
//! (the device buffer), a [`Layout`] (dims, strides, offset) and the
//! [`Device`] it lives on. A `Device` is an `Arc<dyn Backend>`. Every tensor
//! op checks shapes and dtypes once in `tensor/`, then calls the matching
//! method of [`Backend`] with [`Operand`]s (storage + layout) and a plain
//! description of the work (e.g. [`MatmulSpec`]). The backend allocates and
//! returns the output storage, always contiguous in the documented layout.
//!
//! To add a backend (the CUDA one lives in `backend/cuda/`):
//! 1. a storage type implementing [`BackendStorage`]; ops get it back as
//!    `&dyn BackendStorage` and downcast with `as_any()`;
//! 2. a type implementing [`Backend`]; every compute method has a default
//!    body returning [`TensorError::Unsupported`], so a backend can grow op
//!    by op and new ops never break existing backends;
//! 3. `Device::new(Arc::new(MyBackend::new(..)?))` hands it to model code.
//!
//! Conventions every backend follows: inputs a method documents as
//! contiguous are contiguous (`Layout::is_contiguous`, any offset); other
//! operands may be strided, including stride 0 for broadcast dims. Outputs
//! have the input's dtype. Reductions and accumulations are done in f32 even
//! when storage is bf16/f16. The CPU backend computes in f32 only and answers
//! `Unsupported` for half-precision activations; its weights may be 16-bit
//! (the `rhs` of a matmul, biases, norm weights, convolution kernels), which
//! it widens as it reads them ([`Backend::weight_dtype`]).

pub mod cpu;
pub mod cuda;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::tensor::{DType, Layout, Result, TensorError};

pub use cpu::{CpuBackend, CpuStorage, HostSlice, MappedElems};

/// A buffer of elements on some device.
pub trait BackendStorage: Send + Sync + fmt::Debug + Any {
    fn dtype(&self) -> DType;
    /// Number of elements held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn as_any(&self) -> &dyn Any;
}

/// One input of an op: a buffer and how to read it.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub storage: &'a dyn BackendStorage,
    pub layout: &'a Layout,
}

impl Operand<'_> {
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
}

/// Elementwise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// GELU with the tanh approximation (PyTorch `approximate="tanh"`).
    GeluTanh,
    Silu,
    Exp,
    Neg,
    Sqrt,
    Recip,
    Abs,
    Tanh,
    Sin,
    Cos,
    Sqr,
}

/// Elementwise functions of two tensors of the same (broadcast) dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

/// How to walk one matrix operand of a batched matmul, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatStrides {
    pub offset: usize,
    pub batch: usize,
    pub row: usize,
    pub col: usize,
}

/// `out[b] = lhs[b] (m×k) · rhs[b] (k×n) (+ bias (n))`, out contiguous
/// `[batch, m, n]`. Strides may describe transposed operands (e.g. a
/// PyTorch `Linear` weight read as its transpose), and a batch stride of 0
/// shares one matrix across the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulSpec {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lhs: MatStrides,
    pub rhs: MatStrides,
}

/// Multi-head attention over token-major tensors: q is contiguous
/// `[batch, q_len, heads, head_dim]`, k and v contiguous
/// `[batch, kv_len, heads, head_dim]`; the output has q's layout.
/// `softmax(scale · q kᵀ + key_bias) v` where the optional key bias is a
/// contiguous `[batch, kv_len]` additive term (e.g. -10000 on padding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f32,
}

/// How [`Backend::guidance`] combines predictions into one velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuidanceSpec {
    /// Classifier-free guidance scale; applies when an unconditional
    /// prediction is given.
    pub cfg: f32,
    /// Spatio-temporal guidance scale; applies when a perturbed prediction
    /// is given.
    pub stg: f32,
    /// Guidance rescale factor (Lin et al. 2023); 0 turns it off.
    pub rescale: f32,
}

/// A point in a device's queue of work: everything queued before it has
/// run once [`QueueMark::wait`] returns.
pub trait QueueMark: Send {
    fn wait(&self) -> Result<()>;
}

/// How a causal 3-D convolution fills the frames before and after the clip.
/// Both replicate the edge frame, as LTX-Video's `LTXVideoCausalConv3d`
/// does, instead of padding with zeros; space is zero-padded by `k / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePadding {
    /// `kt - 1` copies of the first frame before the clip.
    Causal,
    /// `(kt - 1) / 2` copies of the first frame before and of the last after.
    Symmetric,
}

/// A stride-1 3-D convolution that keeps the input's frames, height and
/// width: input contiguous `[batch, in_channels, frames, height, width]`,
/// weight contiguous `[out_channels, in_channels, kt, kh, kw]` (PyTorch's),
/// bias `[out_channels]`, optional residual contiguous of the output's dims
/// added in the same pass; output `[batch, out_channels, frames, height,
/// width]`. `kh` and `kw` are odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dSpec {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: [usize; 3],
    pub time_padding: TimePadding,
}

/// Order in which the sub-positions `(a, i, j)` of one `ft × fh × fw` block
/// are packed into channels by space-to-depth (and read by depth-to-space).
/// LTX-Video's (down/up)samplers use time-height-width; its patchify and
/// unpatchify use time-width-height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubOrder {
    /// Channel `((c * ft + a) * fh + i) * fw + j` holds sub-position (a, i, j).
    TimeHeightWidth,
    /// Channel `((c * ft + a) * fw + j) * fh + i` holds sub-position (a, i, j).
    TimeWidthHeight,
}

type Out = Result<Box<dyn BackendStorage>>;

/// The operations a device provides. See the module docs for conventions.
// Default bodies name their parameters for the docs but do not use them.
#[allow(unused_variables)]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Human-readable and unique per device, e.g. `cpu`, `cuda:0`.
    fn name(&self) -> String;

    /// The dtype models should hold their weights in here: f32 on the CPU
    /// reference, the card's 16-bit type on a GPU.
    fn compute_dtype(&self) -> DType {
        DType::F32
    }

    /// The dtype a weight stored in `stored` is kept in here when a model
    /// asks for `requested`. A device keeps what the model asks for; the CPU
    /// keeps 16-bit weights in 16 bits and widens them per operation.
    fn weight_dtype(&self, stored: DType, requested: DType) -> DType {
        let _ = stored;
        requested
    }

    /// The dtype activations take where they meet a weight of `weight`'s
    /// dtype: the weight's own on a device computing in it, f32 on the CPU
    /// (which computes in f32 whatever its weights are stored in).
    fn activation_dtype(&self, weight: DType) -> DType {
        weight
    }

    /// Copies host data onto the device.
    fn upload(&self, data: CpuStorage) -> Out;
    /// Copies a whole buffer back to the host.
    fn download(&self, src: &dyn BackendStorage) -> Result<CpuStorage>;
    fn zeros(&self, len: usize, dtype: DType) -> Out;

    /// Contiguous copy of a strided view, same dtype.
    fn copy_strided(&self, src: Operand<'_>) -> Out;
    /// Contiguous copy converted to `dtype`.
    fn to_dtype(&self, src: Operand<'_>, dtype: DType) -> Out;
    /// Concatenates views along `dim`; `out_dims` is the result's dims.
    fn cat(&self, parts: &[Operand<'_>], dim: usize, out_dims: &[usize]) -> Out;

    fn unary(&self, op: UnaryOp, src: Operand<'_>) -> Out {
        Err(self.unsupported("unary", src.dtype()))
    }
    /// `src * mul + add`.
    fn affine(&self, src: Operand<'_>, mul: f32, add: f32) -> Out {
        Err(self.unsupported("affine", src.dtype()))
    }
    /// Both layouts have the same dims (broadcast dims have stride 0).
    fn binary(&self, op: BinaryOp, lhs: Operand<'_>, rhs: Operand<'_>) -> Out {
        Err(self.unsupported("binary", lhs.dtype()))
    }
    /// See [`MatmulSpec`]; `bias` is a contiguous `[n]` vector.
    fn matmul(
        &self,
        lhs: &dyn BackendStorage,
        rhs: &dyn BackendStorage,
        bias: Option<Operand<'_>>,
        spec: &MatmulSpec,
    ) -> Out {
        Err(self.unsupported("matmul", lhs.dtype()))
    }
    /// Softmax over the last dim of a contiguous tensor.
    fn softmax_last_dim(&self, src: Operand<'_>) -> Out {
        Err(self.unsupported("softmax", src.dtype()))
    }
    /// RMSNorm over the last dim of contiguous `src`; `weight` is `[dim]`.
    fn rms_norm(&self, src: Operand<'_>, weight: Option<Operand<'_>>, eps: f32) -> Out {
        Err(self.unsupported("rms_norm", src.dtype()))
    }
    /// LayerNorm over the last dim of contiguous `src`; affine terms `[dim]`.
    fn layer_norm(
        &self,
        src: Operand<'_>,
        weight: Option<Operand<'_>>,
        bias: Option<Operand<'_>>,
        eps: f32,
    ) -> Out {
        Err(self.unsupported("layer_norm", src.dtype()))
    }
    /// See [`AttentionSpec`].
    fn attention(
        &self,
        q: Operand<'_>,
        k: Operand<'_>,
        v: Operand<'_>,
        key_bias: Option<Operand<'_>>,
        spec: &AttentionSpec,
    ) -> Out {
        Err(self.unsupported("attention", q.dtype()))
    }
    /// Rotary embedding on interleaved pairs: with `x` contiguous `[.., d]`
    /// and `cos`, `sin` of x's dims (possibly broadcast, last stride 1),
    /// `out[2i] = x[2i] cos[2i] - x[2i+1] sin[2i]`,
    /// `out[2i+1] = x[2i+1] cos[2i+1] + x[2i] sin[2i+1]`.
    fn rope_interleaved(&self, x: Operand<'_>, cos: Operand<'_>, sin: Operand<'_>) -> Out {
        Err(self.unsupported("rope", x.dtype()))
    }
    /// AdaLN modulation `x * (1 + scale) + shift`; x contiguous, the others
    /// of x's dims (possibly broadcast, last stride 1).
    fn modulate(&self, x: Operand<'_>, shift: Operand<'_>, scale: Operand<'_>) -> Out {
        Err(self.unsupported("modulate", x.dtype()))
    }
    /// Gated residual `x + gate * y`; x and y contiguous, gate of x's dims
    /// (possibly broadcast, last stride 1).
    fn gated_residual(&self, x: Operand<'_>, gate: Operand<'_>, y: Operand<'_>) -> Out {
        Err(self.unsupported("gated_residual", x.dtype()))
    }

    /// See [`Conv3dSpec`].
    fn conv3d(
        &self,
        x: Operand<'_>,
        weight: Operand<'_>,
        bias: Option<Operand<'_>>,
        residual: Option<Operand<'_>>,
        spec: &Conv3dSpec,
    ) -> Out {
        Err(self.unsupported("conv3d", x.dtype()))
    }
    /// RMS norm across the channels (dim 1) of contiguous
    /// `[batch, channels, positions..]`, no learned weight, then
    /// `y * (1 + scale) + shift` with contiguous `[batch, channels]` scale
    /// and shift (both or neither), then SiLU when `silu`: the VAE's
    /// `RMSNorm` over `movedim(1, -1)` fused with what always follows it.
    fn channel_rms_norm(
        &self,
        x: Operand<'_>,
        scale: Option<Operand<'_>>,
        shift: Option<Operand<'_>>,
        eps: f32,
        silu: bool,
    ) -> Out {
        Err(self.unsupported("channel_rms_norm", x.dtype()))
    }
    /// Contiguous `[b, c*ft*fh*fw, t, h, w]` -> `[b, c, t*ft - drop_front,
    /// h*fh, w*fw]`, dropping the first `drop_front` output frames.
    fn depth_to_space_3d(
        &self,
        x: Operand<'_>,
        factors: [usize; 3],
        order: SubOrder,
        drop_front: usize,
    ) -> Out {
        Err(self.unsupported("depth_to_space_3d", x.dtype()))
    }
    /// Contiguous `[b, c, t, h, w]` -> `[b, c*ft*fh*fw, t/ft, h/fh, w/fw]`
    /// (the dims divide).
    fn space_to_depth_3d(&self, x: Operand<'_>, factors: [usize; 3], order: SubOrder) -> Out {
        Err(self.unsupported("space_to_depth_3d", x.dtype()))
    }

    /// Hands memory this backend keeps for reuse (freed buffers of a
    /// caching allocator) back to the device. Called after a large model is
    /// dropped (the text encoder once prompts are encoded) so that its
    /// memory is free for others, not parked in size classes the next
    /// model may never ask for. Nothing to do where memory is not cached.
    fn release_cached_memory(&self) {}
    /// `(free, total)` bytes of device memory, where the device has its own:
    /// free counts what the driver has left plus what this backend keeps
    /// cached for reuse. `None` on the CPU, whose memory is the host's.
    fn memory_info(&self) -> Option<(usize, usize)> {
        None
    }
    /// One flow-matching Euler step of `x` (contiguous f32 `[tokens,
    /// channels]`) along `v` (contiguous, same count, any float dtype):
    /// `out = x + (sigma_next - sigma) * v` per token, with `sigma`,
    /// `sigma_next` and `update` contiguous f32 `[tokens]`; tokens whose
    /// `update` is 0 are copied unchanged. Out is f32.
    fn euler_step(
        &self,
        x: Operand<'_>,
        v: Operand<'_>,
        sigma: Operand<'_>,
        sigma_next: Operand<'_>,
        update: Option<Operand<'_>>,
        channels: usize,
    ) -> Out {
        Err(self.unsupported("euler_step", v.dtype()))
    }
    /// Guidance of one sample's predictions (all contiguous, same count and
    /// dtype), as f32: `cond`, then `uncond + cfg (cond - uncond)` when
    /// `uncond` is given, then `+ stg (cond - perturbed)` when `perturbed`
    /// is, then rescaled towards `cond`'s standard deviation by
    /// `spec.rescale` (unbiased deviations over the whole sample).
    fn guidance(
        &self,
        cond: Operand<'_>,
        uncond: Option<Operand<'_>>,
        perturbed: Option<Operand<'_>>,
        spec: &GuidanceSpec,
    ) -> Out {
        Err(self.unsupported("guidance", cond.dtype()))
    }
    /// `len` f32 values `sampler::noise::normal(seed, stream, start + k)`:
    /// the same numbers on every device.
    fn noise_normal(&self, len: usize, seed: u64, stream: u64, start: u64) -> Out {
        Err(self.unsupported("noise_normal", DType::F32))
    }
    /// Sinusoidal timestep features `[n, 2·half]` (f32) of contiguous f32
    /// `timesteps` `[n]` and `freqs` `[half]`: `cos(a)` then `sin(a)` with
    /// `a = t · f` formed in f32, sin and cos evaluated in f64 and rounded
    /// once.
    fn timestep_features(&self, timesteps: Operand<'_>, freqs: Operand<'_>) -> Out {
        Err(self.unsupported("timestep_features", timesteps.dtype()))
    }
    /// A mark after the work queued so far, or `None` when that work has
    /// already run (a device that computes as it is called, like the CPU).
    fn queue_mark(&self) -> Result<Option<Box<dyn QueueMark>>> {
        Ok(None)
    }

    /// The error for an op this backend lacks.
    fn unsupported(&self, op: &'static str, dtype: DType) -> TensorError {
        TensorError::Unsupported {
            op,
            device: self.name(),
            dtype,
        }
    }
}

/// A handle on one compute device; cheap to clone.
#[derive(Clone)]
pub struct Device(Arc<dyn Backend>);

impl Device {
    /// The CPU reference backend (one shared instance, rayon's global pool).
    pub fn cpu() -> Self {
        static CPU: std::sync::OnceLock<Arc<dyn Backend>> = std::sync::OnceLock::new();
        Device(CPU.get_or_init(|| Arc::new(CpuBackend)).clone())
    }

    /// Wraps a backend, e.g. the CUDA one.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Device(backend)
    }

    pub fn backend(&self) -> &dyn Backend {
        self.0.as_ref()
    }

    pub fn name(&self) -> String {
        self.0.name()
    }

    pub fn is_cpu(&self) -> bool {
        self.name() == "cpu"
    }

    /// See [`Backend::compute_dtype`].
    pub fn compute_dtype(&self) -> DType {
        self.0.compute_dtype()
    }

    /// See [`Backend::release_cached_memory`].
    pub fn release_cached_memory(&self) {
        self.0.release_cached_memory()
    }

    /// See [`Backend::memory_info`].
    pub fn memory_info(&self) -> Option<(usize, usize)> {
        self.0.memory_info()
    }

    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.name() == other.name()
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({})", self.name())
    }
}
