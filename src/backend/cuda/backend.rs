//! [`CudaBackend`]: the engine's [`Backend`] interface on one GPU stream.
//!
//! One backend value serves one job: its own stream (or the host's), its own
//! caching allocator, its own cuBLAS and cuBLASLt handles. The device
//! (context, modules) is shared by all jobs of the process.

use std::sync::{Arc, Once};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{result as drv, CudaStream, LaunchConfig, PushKernelArg};
use parking_lot::Mutex;

use super::alloc::{AllocStats, CachingAllocator};
use super::blas::{self, as_blas_operand, Gemm, MatView};
use super::blaslt::{self, LtBlas};
use super::device::{driver_err, DriverMemory, GpuDevice};
use super::dtype::{first_non_finite, Half};
use super::error::CudaError;
use super::modules::ModuleSource;
use super::probe::{guard, Libraries};
use super::storage::CudaStorage;
use super::tensor_ops::{StridedArg, TENSOR_OPS};
use crate::backend::{
    AttentionSpec, Backend, BackendStorage, BinaryOp, Conv3dSpec, CpuStorage, GuidanceSpec,
    HostSlice, MatmulSpec, Operand, QueueMark, SubOrder, TimePadding, UnaryOp,
};
use crate::kernels;
use crate::tensor::{contiguous_strides, DType, Layout, Result, TensorError};

type Out = Result<Box<dyn BackendStorage>>;

/// Scores of one attention chunk are kept under this many bytes.
const ATTENTION_CHUNK_BYTES: usize = 1 << 30;

pub struct CudaBackend {
    dev: Arc<GpuDevice>,
    stream: Arc<CudaStream>,
    alloc: Arc<CachingAllocator<DriverMemory>>,
    blas: Mutex<Option<CudaBlas>>,
    lt: Mutex<LtSlot>,
}

/// cuBLASLt, for GEMMs with the bias in their epilogue: not tried yet,
/// ready with its workspace, or not usable on this machine (the bias is
/// then copied into the output before a cuBLAS GEMM).
enum LtSlot {
    Untried,
    Ready(LtBlas, CudaStorage),
    Unusable,
}

static LT_NOTICE: Once = Once::new();

/// Says once per process why biases are not fused into the GEMM.
fn note_no_lt(reason: &str) {
    LT_NOTICE.call_once(|| {
        log::info!(
            "cuBLASLt is not used ({reason}): each Linear's bias is copied into its output \
             before the cuBLAS GEMM instead of being added in the GEMM's epilogue"
        );
    });
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend({:?})", self.dev)
    }
}

fn suffix(dtype: DType) -> &'static str {
    dtype.name()
}

/// The storage type of the kernels that come in f32, bf16 and f16.
fn value(dtype: DType) -> kernels::Value {
    match dtype {
        DType::F32 => kernels::Value::F32,
        DType::BF16 => kernels::Value::Bf16,
        DType::F16 => kernels::Value::F16,
    }
}

fn order_code(order: SubOrder) -> i32 {
    match order {
        SubOrder::TimeHeightWidth => 0,
        SubOrder::TimeWidthHeight => 1,
    }
}

fn unary_code(op: UnaryOp) -> i32 {
    match op {
        UnaryOp::GeluTanh => 0,
        UnaryOp::Silu => 1,
        UnaryOp::Exp => 2,
        UnaryOp::Neg => 3,
        UnaryOp::Sqrt => 4,
        UnaryOp::Recip => 5,
        UnaryOp::Abs => 6,
        UnaryOp::Tanh => 7,
        UnaryOp::Sin => 8,
        UnaryOp::Cos => 9,
        UnaryOp::Sqr => 10,
    }
}

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Maximum => 4,
        BinaryOp::Minimum => 5,
    }
}

/// Grid-stride launch over `n` elements (shared with the emulated tests).
fn elementwise_cfg(n: usize) -> LaunchConfig {
    driver_cfg(kernels::elementwise_config(n))
}

/// One block per row of `cols` (shared with the emulated tests).
fn row_cfg(rows: usize, cols: usize) -> Result<LaunchConfig> {
    kernels::row_config(rows, cols)
        .map(driver_cfg)
        .map_err(|e| match e {
            kernels::KernelError::Unsupported { kernel, what } => TensorError::InvalidArgument {
                op: kernel,
                msg: what,
            },
        })
}

fn driver_cfg(c: kernels::LaunchConfig) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (c.grid[0], c.grid[1], c.grid[2]),
        block_dim: (c.block[0], c.block[1], c.block[2]),
        shared_mem_bytes: c.shared_mem_bytes,
    }
}

/// One kernel argument, passed by value.
#[derive(Clone, Copy, Debug)]
enum KArg {
    U64(u64),
    I64(i64),
    I32(i32),
    F32(f32),
    Strided(StridedArg),
}

impl From<u64> for KArg {
    fn from(v: u64) -> Self {
        KArg::U64(v)
    }
}
impl From<i64> for KArg {
    fn from(v: i64) -> Self {
        KArg::I64(v)
    }
}
impl From<i32> for KArg {
    fn from(v: i32) -> Self {
        KArg::I32(v)
    }
}
impl From<f32> for KArg {
    fn from(v: f32) -> Self {
        KArg::F32(v)
    }
}
impl From<StridedArg> for KArg {
    fn from(v: StridedArg) -> Self {
        KArg::Strided(v)
    }
}

/// The GPU buffer behind an operand.
fn cuda<'a>(op: &'static str, s: &'a dyn BackendStorage) -> Result<&'a CudaStorage> {
    s.as_any()
        .downcast_ref::<CudaStorage>()
        .ok_or_else(|| TensorError::InvalidArgument {
            op,
            msg: "operand is not in GPU memory".into(),
        })
}

fn strided(op: &'static str, l: &Layout) -> Result<StridedArg> {
    StridedArg::new(l.dims(), l.strides(), l.offset()).ok_or_else(|| TensorError::InvalidArgument {
        op,
        msg: format!("rank {} exceeds the GPU kernels' 8", l.rank()),
    })
}

fn int(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| TensorError::InvalidArgument {
        op,
        msg: format!("{v} exceeds 32 bits"),
    })
}

/// An operand brought to the dtype (and, when asked, contiguity) an op
/// needs: the caller's buffer, or a converted copy owned here.
struct Arg<'a> {
    storage: ArgStorage<'a>,
    layout: Layout,
}

enum ArgStorage<'a> {
    Borrowed(&'a CudaStorage),
    Copied(CudaStorage),
}

impl Arg<'_> {
    fn storage(&self) -> &CudaStorage {
        match &self.storage {
            ArgStorage::Borrowed(s) => s,
            ArgStorage::Copied(s) => s,
        }
    }
    /// Address of the first element (contiguous operands).
    fn ptr(&self) -> u64 {
        self.storage().ptr_at(self.layout.offset())
    }
    /// Base address for strided kernels (offset travels in the layout).
    fn base(&self) -> u64 {
        self.storage().ptr()
    }
}

impl CudaBackend {
    /// A backend for one job on its own new stream of `dev`.
    pub fn new(dev: Arc<GpuDevice>) -> std::result::Result<Self, CudaError> {
        let stream = dev.new_stream()?;
        Ok(Self::with_stream(dev, stream))
    }

    /// A backend for one job on the stream the host handed us.
    ///
    /// # Safety
    /// As [`GpuDevice::borrow_host_stream`].
    pub unsafe fn on_host_stream(dev: Arc<GpuDevice>, raw: cudarc::driver::sys::CUstream) -> Self {
        // SAFETY: forwarded to the caller.
        let stream = unsafe { dev.borrow_host_stream(raw) };
        Self::with_stream(dev, stream)
    }

    fn with_stream(dev: Arc<GpuDevice>, stream: Arc<CudaStream>) -> Self {
        let alloc = CachingAllocator::new(dev.raw_memory());
        Self {
            dev,
            stream,
            alloc,
            blas: Mutex::new(None),
            lt: Mutex::new(LtSlot::Untried),
        }
    }

    pub fn device(&self) -> &Arc<GpuDevice> {
        &self.dev
    }

    /// The stream this job's work is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Which implementation [`Backend::attention`] uses for `spec` with
    /// contiguous, 16-byte aligned operands.
    pub fn attention_path(&self, spec: &AttentionSpec, dtype: DType) -> &'static str {
        if flash_kind(spec, dtype, self.dev.compute_capability()).is_some() {
            "flash (kernels/attention.cu)"
        } else {
            "cublas-reference"
        }
    }

    pub fn alloc_stats(&self) -> AllocStats {
        self.alloc.stats()
    }

    /// A weight on the GPU, uploaded once per process under `key` (file and
    /// tensor name) and shared by every later job. f32 weights are stored in
    /// the card's 16-bit type ([`GpuDevice::half`]), converted on the host
    /// so that half the bytes cross the bus.
    pub fn upload_weight(&self, key: &str, data: &CpuStorage) -> Result<Arc<dyn BackendStorage>> {
        if let Some(w) = self.dev.weights.lock().get(key) {
            return Ok(w.clone());
        }
        let half = self.dev.half();
        let bits: Vec<u16> = match data.view() {
            HostSlice::F32(v) => half.encode_vec(v),
            HostSlice::BF16(v) if half == super::Half::Bf16 => {
                v.iter().map(|x| x.to_bits()).collect()
            }
            HostSlice::F16(v) if half == super::Half::F16 => {
                v.iter().map(|x| x.to_bits()).collect()
            }
            HostSlice::BF16(v) => {
                half.encode_vec(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>())
            }
            HostSlice::F16(v) => half.encode_vec(&v.iter().map(|x| x.to_f32()).collect::<Vec<_>>()),
        };
        let dtype = match half {
            super::Half::Bf16 => DType::BF16,
            super::Half::F16 => DType::F16,
        };
        let block = self
            .dev
            .weight_memory
            .alloc(bits.len() * 2)
            .map_err(|e| self.err(e))?;
        let stored = Arc::new(CudaStorage::new(block, bits.len(), dtype));
        let stream = self.stream.cu_stream();
        guard("cuMemcpyHtoDAsync", || {
            self.dev
                .context()
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: `stored` holds exactly `bits.len()` 16-bit elements.
            unsafe { drv::memcpy_htod_async(stored.ptr(), &bits, stream) }
                .map_err(|e| driver_err("cuMemcpyHtoDAsync", e))
        })
        .map_err(|e| self.err(e))?;
        // other jobs read it from their own streams: it must be complete
        self.synchronize().map_err(|e| self.err(e))?;
        let mut weights = self.dev.weights.lock();
        let entry = weights.entry(key.to_string()).or_insert(stored);
        Ok(entry.clone())
    }

    /// Waits for every op queued so far; reports a kernel fault from any.
    pub fn synchronize(&self) -> std::result::Result<(), CudaError> {
        guard("cuStreamSynchronize", || {
            self.stream.synchronize().map_err(|e| CudaError::Launch {
                kernel: "(a kernel queued earlier)".into(),
                detail: driver_err("cuStreamSynchronize", e).to_string(),
            })
        })
    }

    /// Fails with [`CudaError::NonFinite`] when `src` holds a NaN or an
    /// infinity. Downloads the buffer: meant for checkpoints (after the
    /// first denoising step, on inputs from the host), not every op.
    pub fn check_finite(&self, what: &str, src: &dyn BackendStorage) -> Result<()> {
        let host = self.download(src)?;
        let values: Vec<f32> = match host {
            CpuStorage::F32(v) => v,
            other => other.view().widen(0, other.len()),
        };
        match first_non_finite(&values) {
            None => Ok(()),
            Some((index, value)) => Err(self.err(CudaError::NonFinite {
                what: what.into(),
                index,
                value,
            })),
        }
    }

    fn err(&self, e: CudaError) -> TensorError {
        let device = self.name();
        match e {
            CudaError::OutOfMemory { .. } => TensorError::OutOfMemory {
                device,
                msg: e.to_string(),
            },
            CudaError::Invalid { op, detail } => TensorError::InvalidArgument { op, msg: detail },
            other => TensorError::Backend {
                device,
                msg: other.to_string(),
            },
        }
    }

    fn alloc(&self, len: usize, dtype: DType) -> Result<CudaStorage> {
        let block = self
            .alloc
            .alloc(len * dtype.size_in_bytes())
            .map_err(|e| self.err(e))?;
        Ok(CudaStorage::new(block, len, dtype))
    }

    /// Writes the first `n` values of `bias` into every one of the `rows`
    /// rows of `out`.
    fn broadcast_bias(
        &self,
        bias: &Arg<'_>,
        out: &CudaStorage,
        rows: usize,
        n: usize,
    ) -> Result<()> {
        let sl = StridedArg::new(&[rows, n], &[0, 1], bias.layout.offset());
        let dl = StridedArg::contiguous(&[rows, n], 0);
        if let (Some(sl), Some(dl)) = (sl, dl) {
            self.convert_into(bias.storage(), sl, out, dl, rows * n)?;
        }
        Ok(())
    }

    /// Queues `g` with `bias` (its `g.n` values at that device address)
    /// added in the epilogue, through cuBLASLt. `false` when that cannot be
    /// done here (no cuBLASLt, a bias address its vector loads cannot take,
    /// no algorithm for the shape): nothing was queued.
    fn gemm_bias_lt(&self, g: &Gemm, bias: u64) -> Result<bool> {
        // The heuristic is told the alignment of A, B, C and D but not of
        // the bias; a bias off a 16-byte boundary (a view into a larger
        // tensor) takes the copy path rather than an epilogue kernel that
        // may assume vector loads.
        if bias % 16 != 0 {
            return Ok(false);
        }
        let mut slot = self.lt.lock();
        if matches!(*slot, LtSlot::Untried) {
            *slot = self.open_lt();
        }
        let LtSlot::Ready(lt, workspace) = &*slot else {
            return Ok(false);
        };
        let stream = self.stream.cu_stream().cast::<std::ffi::c_void>();
        lt.gemm_bias(stream, g, bias, workspace.ptr(), workspace.bytes())
            .map_err(|e| self.err(e))
    }

    fn open_lt(&self) -> LtSlot {
        if !Libraries::detect().cublaslt {
            note_no_lt("libcublasLt is not installed");
            return LtSlot::Unusable;
        }
        let lt = match LtBlas::new() {
            Ok(lt) => lt,
            Err(e) => {
                note_no_lt(&e.to_string());
                return LtSlot::Unusable;
            }
        };
        let bytes = blaslt::workspace_bytes(self.dev.compute_capability());
        match self.alloc(bytes / 4, DType::F32) {
            Ok(workspace) => LtSlot::Ready(lt, workspace),
            Err(e) => {
                note_no_lt(&format!("no memory for its workspace: {e}"));
                LtSlot::Unusable
            }
        }
    }

    /// Launches `name` from the backend's own kernels with `args` in order.
    fn launch(&self, name: &str, cfg: LaunchConfig, args: &[KArg]) -> Result<()> {
        let func = self
            .dev
            .function(&TENSOR_OPS, name)
            .map_err(|e| self.err(e))?;
        guard("cuLaunchKernel", || {
            // SAFETY: every kernel of tensor_ops.cu takes exactly the
            // arguments its Rust caller passes, in order, with the C types
            // of StridedArg/u64/i64/i32/f32; pointers address buffers sized
            // for the layouts passed alongside.
            unsafe { launch_with_args(&self.stream, &func, cfg, name, args) }
        })
        .map_err(|e| self.err(e))
    }

    /// Launches a kernel of `kernels/` as [`kernels`] describes it.
    fn launch_kernel(&self, launch: &kernels::Launch, args: &[KArg]) -> Result<()> {
        let module = kernels::module(launch.module).ok_or_else(|| {
            self.err(CudaError::Invalid {
                op: "launch",
                detail: format!("no kernel module '{}'", launch.module),
            })
        })?;
        let source = ModuleSource {
            name: module.name,
            source: module.source,
            ptx: module.ptx,
            options: &[],
        };
        let func = self
            .dev
            .function(&source, &launch.kernel)
            .map_err(|e| self.err(e))?;
        let c = launch.config;
        let cfg = LaunchConfig {
            grid_dim: (c.grid[0], c.grid[1], c.grid[2]),
            block_dim: (c.block[0], c.block[1], c.block[2]),
            shared_mem_bytes: c.shared_mem_bytes,
        };
        let name = launch.kernel.as_str();
        guard("cuLaunchKernel", || {
            if launch.needs_shared_mem_opt_in() {
                func.set_attribute(
                    cudarc::driver::sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    c.shared_mem_bytes as i32,
                )
                .map_err(|e| CudaError::Launch {
                    kernel: name.into(),
                    detail: format!(
                        "{} bytes of shared memory refused: {}",
                        c.shared_mem_bytes,
                        driver_err("cuFuncSetAttribute", e)
                    ),
                })?;
            }
            // SAFETY: `args` follow the parameter list that src/kernels.rs
            // documents for this kernel, in order and with its C types;
            // buffers are sized for the shapes the launch was made for.
            unsafe { launch_with_args(&self.stream, &func, cfg, name, args) }
        })
        .map_err(|e| self.err(e))
    }

    /// Flash attention of `kernels/attention.cu`: tensor cores, online
    /// softmax, no N×N buffer. `flash_kind` has checked dtype and head dim.
    fn attention_flash(
        &self,
        q: &Arg<'_>,
        k: &Arg<'_>,
        v: &Arg<'_>,
        bias: Option<&Arg<'_>>,
        spec: &AttentionSpec,
        half: kernels::Half,
    ) -> Result<CudaStorage> {
        let dtype = match half {
            kernels::Half::Bf16 => DType::BF16,
            kernels::Half::F16 => DType::F16,
        };
        let AttentionSpec {
            batch,
            q_len,
            kv_len,
            heads,
            head_dim,
            scale,
        } = *spec;
        let out = self.alloc(batch * q_len * heads * head_dim, dtype)?;
        let launch = kernels::flash_attention(half, head_dim, batch, heads, q_len, kv_len)
            .map_err(|e| {
                self.err(CudaError::Invalid {
                    op: "attention",
                    detail: e.to_string(),
                })
            })?;
        let row = (heads * head_dim) as i64;
        let (qb, kb) = (q_len as i64 * row, kv_len as i64 * row);
        let args = [
            q.ptr().into(),
            k.ptr().into(),
            v.ptr().into(),
            out.ptr().into(),
            bias.map_or(0u64, |b| b.ptr()).into(),
            int("attention", q_len)?.into(),
            int("attention", kv_len)?.into(),
            qb.into(),
            row.into(),
            kb.into(),
            row.into(),
            kb.into(),
            row.into(),
            qb.into(),
            row.into(),
            scale.into(),
        ];
        self.launch_kernel(&launch, &args)?;
        Ok(out)
    }

    /// `o` as dtype `dtype`, copied (and made contiguous) only when needed.
    fn arg<'a>(
        &self,
        op: &'static str,
        o: Operand<'a>,
        dtype: DType,
        contiguous: bool,
    ) -> Result<Arg<'a>> {
        let storage = cuda(op, o.storage)?;
        if o.dtype() == dtype && (!contiguous || o.layout.is_contiguous()) {
            return Ok(Arg {
                storage: ArgStorage::Borrowed(storage),
                layout: o.layout.clone(),
            });
        }
        let copy = self.convert(storage, o.layout, dtype)?;
        Ok(Arg {
            storage: ArgStorage::Copied(copy),
            layout: Layout::contiguous(o.layout.dims()),
        })
    }

    /// Contiguous copy of a strided view, converted to `dtype`.
    fn convert(&self, src: &CudaStorage, l: &Layout, dtype: DType) -> Result<CudaStorage> {
        let n = l.elem_count();
        let out = self.alloc(n, dtype)?;
        if n == 0 {
            return Ok(out);
        }
        let sl = strided("convert", l)?;
        let dl =
            StridedArg::contiguous(l.dims(), 0).ok_or_else(|| TensorError::InvalidArgument {
                op: "convert",
                msg: "rank too high".into(),
            })?;
        let name = format!("convert_{}_{}", suffix(src.dtype()), suffix(dtype));
        let (sp, dp, n64) = (src.ptr(), out.ptr(), n as i64);
        self.launch(
            &name,
            elementwise_cfg(n),
            &[sp.into(), sl.into(), dp.into(), dl.into(), n64.into()],
        )?;
        Ok(out)
    }

    /// Writes the view `sl` of `src` into the view `dl` of `dst` (same dims).
    fn convert_into(
        &self,
        src: &CudaStorage,
        sl: StridedArg,
        dst: &CudaStorage,
        dl: StridedArg,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let name = format!("convert_{}_{}", suffix(src.dtype()), suffix(dst.dtype()));
        let (sp, dp, n64) = (src.ptr(), dst.ptr(), n as i64);
        self.launch(
            &name,
            elementwise_cfg(n),
            &[sp.into(), sl.into(), dp.into(), dl.into(), n64.into()],
        )
    }

    fn blas<R>(&self, f: impl FnOnce(&CudaBlas) -> std::result::Result<R, CudaError>) -> Result<R> {
        let mut slot = self.blas.lock();
        if slot.is_none() {
            if !Libraries::detect().cublas {
                return Err(self.err(CudaError::Blas {
                    op: "create",
                    detail: "libcublas is not installed".into(),
                }));
            }
            let created = guard("cublasCreate", || {
                CudaBlas::new(self.stream.clone()).map_err(|e| CudaError::Blas {
                    op: "create",
                    detail: format!("{e:?}"),
                })
            })
            .map_err(|e| self.err(e))?;
            *slot = Some(created);
        }
        match slot.as_ref() {
            Some(handle) => f(handle).map_err(|e| {
                // cuBLAS answers "execution failed" when the stream already
                // carries an error from earlier work; the stream says which.
                if let CudaError::Blas { op, detail } = &e {
                    if detail.contains("EXECUTION_FAILED") {
                        if let Err(earlier) = self.synchronize() {
                            return self.err(CudaError::Blas {
                                op,
                                detail: format!(
                                    "{detail}; earlier work on the stream failed: {earlier}"
                                ),
                            });
                        }
                    }
                }
                self.err(e)
            }),
            None => Err(self.err(CudaError::Blas {
                op: "create",
                detail: "no handle".into(),
            })),
        }
    }

    /// A matrix operand cuBLAS can read: the view itself, or a contiguous
    /// copy of it when neither of its strides is 1.
    #[allow(clippy::too_many_arguments)]
    fn mat_operand(
        &self,
        s: &CudaStorage,
        batch: usize,
        rows: usize,
        cols: usize,
        st: &crate::backend::MatStrides,
        dtype: DType,
        keep: &mut Vec<CudaStorage>,
    ) -> Result<MatView> {
        let view = MatView {
            ptr: s.ptr_at(st.offset),
            row_stride: st.row,
            col_stride: st.col,
            batch_stride: st.batch,
        };
        if s.dtype() == dtype && as_blas_operand(&view, rows, cols).is_some() {
            return Ok(view);
        }
        let shared = st.batch == 0;
        let nb = if shared { 1 } else { batch };
        let layout = Layout::new(
            vec![nb, rows, cols],
            vec![st.batch, st.row, st.col],
            st.offset,
        )?;
        let copy = self.convert(s, &layout, dtype)?;
        let view = MatView {
            ptr: copy.ptr(),
            row_stride: cols,
            col_stride: 1,
            batch_stride: if shared { 0 } else { rows * cols },
        };
        keep.push(copy);
        Ok(view)
    }

    /// Reference attention from cuBLAS products and a row softmax, in
    /// chunks of query rows so that the f32 scores stay under
    /// [`ATTENTION_CHUNK_BYTES`].
    fn attention_blas(
        &self,
        q: &Arg<'_>,
        k: &Arg<'_>,
        v: &Arg<'_>,
        bias: Option<&Arg<'_>>,
        spec: &AttentionSpec,
        dtype: DType,
    ) -> Result<CudaStorage> {
        let AttentionSpec {
            batch,
            q_len,
            kv_len,
            heads,
            head_dim,
            scale,
        } = *spec;
        let es = dtype.size_in_bytes();
        let out = self.alloc(batch * q_len * heads * head_dim, dtype)?;
        if out.len() == 0 || kv_len == 0 {
            return Ok(out);
        }
        let row = heads * head_dim;
        let per_query = heads * kv_len * (4 + es);
        let chunk = (ATTENTION_CHUNK_BYTES / per_query.max(1)).clamp(1, q_len);
        let scores = self.alloc(heads * chunk * kv_len, DType::F32)?;
        let probs = self.alloc(heads * chunk * kv_len, dtype)?;
        let cols = int("attention", kv_len)?;
        let softmax = format!("softmax_f32_to_{}", suffix(dtype));
        for b in 0..batch {
            let mut q0 = 0;
            while q0 < q_len {
                let lc = chunk.min(q_len - q0);
                let q_ptr = q.ptr() + ((b * q_len + q0) * row * es) as u64;
                let k_ptr = k.ptr() + ((b * kv_len) * row * es) as u64;
                let v_ptr = v.ptr() + ((b * kv_len) * row * es) as u64;
                let o_ptr = out.ptr_at((b * q_len + q0) * row);
                // S[h] (lc×kv) = Q[h] (lc×D) · K[h]ᵀ (D×kv), heads D apart
                self.blas(|h| {
                    blas::gemm(
                        h,
                        &Gemm {
                            batch: heads,
                            m: lc,
                            n: kv_len,
                            k: head_dim,
                            lhs: MatView {
                                ptr: q_ptr,
                                row_stride: row,
                                col_stride: 1,
                                batch_stride: head_dim,
                            },
                            rhs: MatView {
                                ptr: k_ptr,
                                row_stride: 1,
                                col_stride: row,
                                batch_stride: head_dim,
                            },
                            in_dtype: dtype,
                            out: MatView {
                                ptr: scores.ptr(),
                                row_stride: kv_len,
                                col_stride: 1,
                                batch_stride: lc * kv_len,
                            },
                            out_dtype: DType::F32,
                            beta: 0.0,
                        },
                    )
                })?;
                let rows = heads * lc;
                let (sp, pp) = (scores.ptr(), probs.ptr());
                let bp: u64 = bias.map_or(0, |a| a.ptr() + (b * kv_len * 4) as u64);
                let rows_per_bias = rows as i64;
                self.launch(
                    &softmax,
                    row_cfg(rows, kv_len)?,
                    &[
                        sp.into(),
                        bp.into(),
                        rows_per_bias.into(),
                        pp.into(),
                        cols.into(),
                        scale.into(),
                    ],
                )?;
                // O[h] (lc×D) = P[h] (lc×kv) · V[h] (kv×D), into [L, H, D]
                self.blas(|h| {
                    blas::gemm(
                        h,
                        &Gemm {
                            batch: heads,
                            m: lc,
                            n: head_dim,
                            k: kv_len,
                            lhs: MatView {
                                ptr: pp,
                                row_stride: kv_len,
                                col_stride: 1,
                                batch_stride: lc * kv_len,
                            },
                            rhs: MatView {
                                ptr: v_ptr,
                                row_stride: row,
                                col_stride: 1,
                                batch_stride: head_dim,
                            },
                            in_dtype: dtype,
                            out: MatView {
                                ptr: o_ptr,
                                row_stride: row,
                                col_stride: 1,
                                batch_stride: head_dim,
                            },
                            out_dtype: dtype,
                            beta: 0.0,
                        },
                    )
                })?;
                q0 += lc;
            }
        }
        // `scores` and `probs` go back to the free list here; later work on
        // this stream that reuses them is queued after these kernels.
        Ok(out)
    }

    /// Shared body of ops `x ∘ (a, b)` with x contiguous and a, b strided
    /// operands of x's dims.
    fn ternary(
        &self,
        op: &'static str,
        kernel: &str,
        x: Operand<'_>,
        a: Operand<'_>,
        b: Operand<'_>,
    ) -> Out {
        let dtype = x.dtype();
        let x = self.arg(op, x, dtype, true)?;
        let a = self.arg(op, a, dtype, false)?;
        let b = self.arg(op, b, dtype, false)?;
        let n = x.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let (la, lb) = (strided(op, &a.layout)?, strided(op, &b.layout)?);
            let (xp, ap, bp, op_, n64) = (x.ptr(), a.base(), b.base(), out.ptr(), n as i64);
            let name = format!("{kernel}_{}", suffix(dtype));
            self.launch(
                &name,
                elementwise_cfg(n),
                &[
                    xp.into(),
                    ap.into(),
                    la.into(),
                    bp.into(),
                    lb.into(),
                    op_.into(),
                    n64.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
    }
}

/// The tensor-core conv3d's storage type for `dtype` on a card of compute
/// capability `cc`: 16-bit data from Ampere on; f32 data and older cards
/// (Turing's f16) take the f32 FMA kernel of conv3d.cu.
fn conv3d_mma_kind(dtype: DType, cc: (i32, i32)) -> Option<kernels::Half> {
    if cc < kernels::CONV3D_MMA_MIN_COMPUTE_CAPABILITY {
        return None;
    }
    match dtype {
        DType::BF16 => Some(kernels::Half::Bf16),
        DType::F16 => Some(kernels::Half::F16),
        DType::F32 => None,
    }
}

/// The flash kernel's storage type when it serves `spec` (16-bit storage,
/// head dim 64 or 128, strides multiples of 8 elements) on a card of
/// compute capability `cc`, else `None`. The kernel's `mma.sync` m16n8k16
/// and `cp.async` need Ampere (8.0); Turing and Volta take the cuBLAS path.
fn flash_kind(spec: &AttentionSpec, dtype: DType, cc: (i32, i32)) -> Option<kernels::Half> {
    if cc < kernels::FLASH_MIN_COMPUTE_CAPABILITY {
        return None;
    }
    let half = match dtype {
        DType::BF16 => kernels::Half::Bf16,
        DType::F16 => kernels::Half::F16,
        DType::F32 => return None,
    };
    let row = spec.heads * spec.head_dim;
    let ok = matches!(spec.head_dim, 64 | 128)
        && kernels::attention_strides_ok(spec.q_len * row, row)
        && kernels::attention_strides_ok(spec.kv_len * row, row)
        && kernels::flash_attention(
            half,
            spec.head_dim,
            spec.batch,
            spec.heads,
            spec.q_len,
            spec.kv_len,
        )
        .is_ok();
    ok.then_some(half)
}

fn kernel_err(op: &'static str, e: kernels::KernelError) -> TensorError {
    TensorError::InvalidArgument {
        op,
        msg: e.to_string(),
    }
}

/// An event recorded on a job's stream.
struct StreamMark {
    event: cudarc::driver::CudaEvent,
    device: String,
}

impl QueueMark for StreamMark {
    fn wait(&self) -> Result<()> {
        guard("cuEventSynchronize", || {
            self.event.synchronize().map_err(|e| CudaError::Launch {
                kernel: "(a kernel queued earlier)".into(),
                detail: driver_err("cuEventSynchronize", e).to_string(),
            })
        })
        .map_err(|e| TensorError::Backend {
            device: self.device.clone(),
            msg: e.to_string(),
        })
    }
}

fn volume(op: &'static str, dims: &[usize]) -> Result<[usize; 5]> {
    dims.try_into().map_err(|_| TensorError::InvalidArgument {
        op,
        msg: format!("expected 5 dims, got {dims:?}"),
    })
}

fn check_same_dims(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: a.dims().to_vec(),
            rhs: b.dims().to_vec(),
        });
    }
    Ok(())
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.dev.label()
    }

    fn compute_dtype(&self) -> DType {
        match self.dev.half() {
            Half::Bf16 => DType::BF16,
            Half::F16 => DType::F16,
        }
    }

    fn release_cached_memory(&self) {
        // Only blocks no tensor holds are on the free lists; the driver's
        // free waits for queued work that may still read them.
        self.alloc.release_cached();
    }

    fn memory_info(&self) -> Option<(usize, usize)> {
        let (free, total) = self.dev.mem_info().ok()?;
        Some((free + self.alloc.stats().bytes_cached, total))
    }

    fn upload(&self, data: CpuStorage) -> Out {
        let out = self.alloc(data.len(), data.dtype())?;
        let stream = self.stream.cu_stream();
        let copied = guard("cuMemcpyHtoDAsync", || {
            self.dev
                .context()
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: `out` holds exactly `data.len()` elements of the same
            // size; from pageable host memory (a memory map included) the
            // call returns only after the source has been staged, so `data`
            // may be dropped after.
            unsafe {
                match data.view() {
                    HostSlice::F32(v) => drv::memcpy_htod_async(out.ptr(), v, stream),
                    HostSlice::BF16(v) => drv::memcpy_htod_async(out.ptr(), v, stream),
                    HostSlice::F16(v) => drv::memcpy_htod_async(out.ptr(), v, stream),
                }
            }
            .map_err(|e| driver_err("cuMemcpyHtoDAsync", e))
        });
        copied.map_err(|e| self.err(e))?;
        Ok(Box::new(out))
    }

    fn download(&self, src: &dyn BackendStorage) -> Result<CpuStorage> {
        let src = cuda("download", src)?;
        let mut host = CpuStorage::zeros(src.len(), src.dtype());
        let stream = self.stream.cu_stream();
        guard("cuMemcpyDtoHAsync", || {
            self.dev
                .context()
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: `host` has exactly the element count and size of `src`;
            // it stays borrowed until the stream is synchronised below.
            unsafe {
                match &mut host {
                    CpuStorage::F32(v) => drv::memcpy_dtoh_async(v, src.ptr(), stream),
                    CpuStorage::BF16(v) => drv::memcpy_dtoh_async(v, src.ptr(), stream),
                    CpuStorage::F16(v) => drv::memcpy_dtoh_async(v, src.ptr(), stream),
                    // `zeros` makes owned vectors: this arm never matches
                    CpuStorage::Mapped(_) => Err(cudarc::driver::DriverError(
                        cudarc::driver::sys::cudaError_enum::CUDA_ERROR_INVALID_VALUE,
                    )),
                }
            }
            .map_err(|e| driver_err("cuMemcpyDtoHAsync", e))
        })
        .map_err(|e| self.err(e))?;
        self.synchronize().map_err(|e| self.err(e))?;
        Ok(host)
    }

    fn zeros(&self, len: usize, dtype: DType) -> Out {
        let out = self.alloc(len, dtype)?;
        let stream = self.stream.cu_stream();
        guard("cuMemsetD8Async", || {
            self.dev
                .context()
                .bind_to_thread()
                .map_err(|e| driver_err("cuCtxSetCurrent", e))?;
            // SAFETY: clears exactly the bytes `out` owns, in stream order.
            unsafe { drv::memset_d8_async(out.ptr(), 0, out.bytes(), stream) }
                .map_err(|e| driver_err("cuMemsetD8Async", e))
        })
        .map_err(|e| self.err(e))?;
        Ok(Box::new(out))
    }

    fn copy_strided(&self, src: Operand<'_>) -> Out {
        self.to_dtype(src, src.dtype())
    }

    fn to_dtype(&self, src: Operand<'_>, dtype: DType) -> Out {
        let s = cuda("to_dtype", src.storage)?;
        Ok(Box::new(self.convert(s, src.layout, dtype)?))
    }

    fn cat(&self, parts: &[Operand<'_>], dim: usize, out_dims: &[usize]) -> Out {
        let first = parts.first().ok_or_else(|| TensorError::InvalidArgument {
            op: "cat",
            msg: "nothing to concatenate".into(),
        })?;
        let dtype = first.dtype();
        let out = self.alloc(out_dims.iter().product(), dtype)?;
        let out_strides = contiguous_strides(out_dims);
        let mut at = 0usize;
        for p in parts {
            let src = cuda("cat", p.storage)?;
            let dims = p.layout.dims();
            if dims.len() != out_dims.len() || dim >= dims.len() {
                return Err(TensorError::ShapeMismatch {
                    op: "cat",
                    lhs: dims.to_vec(),
                    rhs: out_dims.to_vec(),
                });
            }
            let offset = at * out_strides[dim];
            if at + dims[dim] > out_dims[dim] {
                return Err(TensorError::ShapeMismatch {
                    op: "cat",
                    lhs: dims.to_vec(),
                    rhs: out_dims.to_vec(),
                });
            }
            let dl = StridedArg::new(dims, &out_strides, offset).ok_or_else(|| {
                TensorError::InvalidArgument {
                    op: "cat",
                    msg: "rank too high".into(),
                }
            })?;
            self.convert_into(
                src,
                strided("cat", p.layout)?,
                &out,
                dl,
                p.layout.elem_count(),
            )?;
            at += dims[dim];
        }
        Ok(Box::new(out))
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
        const OP: &str = "euler_step";
        let n = x.layout.elem_count();
        let tokens = sigma.layout.elem_count();
        if v.layout.elem_count() != n || tokens * channels != n {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("{n} latents for {tokens} tokens of {channels}"),
            });
        }
        let xa = self.arg(OP, x, DType::F32, true)?;
        let va = self.arg(OP, v, v.dtype(), true)?;
        let sa = self.arg(OP, sigma, DType::F32, true)?;
        let na = self.arg(OP, sigma_next, DType::F32, true)?;
        let ua = update
            .map(|u| self.arg(OP, u, DType::F32, true))
            .transpose()?;
        let out = self.alloc(n, DType::F32)?;
        if n > 0 {
            let launch = kernels::euler_step(value(v.dtype()), tokens, channels)
                .map_err(|e| kernel_err(OP, e))?;
            let args = [
                xa.ptr().into(),
                va.ptr().into(),
                sa.ptr().into(),
                na.ptr().into(),
                ua.as_ref().map_or(0u64, |u| u.ptr()).into(),
                out.ptr().into(),
                (tokens as i64).into(),
                int(OP, channels)?.into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }

    fn guidance(
        &self,
        cond: Operand<'_>,
        uncond: Option<Operand<'_>>,
        perturbed: Option<Operand<'_>>,
        spec: &GuidanceSpec,
    ) -> Out {
        const OP: &str = "guidance";
        let dtype = cond.dtype();
        let n = cond.layout.elem_count();
        let c = self.arg(OP, cond, dtype, true)?;
        // Without an unconditional prediction the kernel's CFG term is
        // cond + 0 · (cond - cond): the prompt's own prediction.
        let (u, cfg) = match uncond {
            Some(u) => (Some(self.arg(OP, u, dtype, true)?), spec.cfg),
            None => (None, 0.0),
        };
        let p = perturbed
            .map(|p| self.arg(OP, p, dtype, true))
            .transpose()?;
        let out = self.alloc(n, DType::F32)?;
        if n == 0 {
            return Ok(Box::new(out));
        }
        let rescale = spec.rescale > 0.0 && n >= 2;
        let chunks = kernels::guidance_chunks(n);
        let partials = if rescale {
            Some(self.alloc(chunks as usize * 4, DType::F32)?)
        } else {
            None
        };
        let combine =
            kernels::guidance_combine(value(dtype), n, 1).map_err(|e| kernel_err(OP, e))?;
        let args = [
            u.as_ref().unwrap_or(&c).ptr().into(),
            c.ptr().into(),
            p.as_ref().map_or(0u64, |p| p.ptr()).into(),
            out.ptr().into(),
            partials.as_ref().map_or(0u64, |b| b.ptr()).into(),
            cfg.into(),
            spec.stg.into(),
            (n as i64).into(),
        ];
        self.launch_kernel(&combine, &args)?;
        if let Some(partials) = &partials {
            let launch = kernels::guidance_rescale(n, 1).map_err(|e| kernel_err(OP, e))?;
            let args = [
                out.ptr().into(),
                partials.ptr().into(),
                spec.rescale.into(),
                (n as i64).into(),
                (chunks as i32).into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }

    /// `len` Gaussian values of the counter-based generator, the same as
    /// `sampler::noise::fill_normal(seed, stream, start, ..)` gives on the
    /// CPU, made on the GPU (f32).
    fn noise_normal(&self, len: usize, seed: u64, stream: u64, start: u64) -> Out {
        let out = self.alloc(len, DType::F32)?;
        if len > 0 {
            let launch = kernels::noise_normal(len);
            let args = [
                out.ptr().into(),
                (len as i64).into(),
                seed.into(),
                stream.into(),
                start.into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }

    fn timestep_features(&self, timesteps: Operand<'_>, freqs: Operand<'_>) -> Out {
        const OP: &str = "timestep_features";
        let rows = timesteps.layout.elem_count();
        let half = freqs.layout.elem_count();
        let t = self.arg(OP, timesteps, DType::F32, true)?;
        let f = self.arg(OP, freqs, DType::F32, true)?;
        let out = self.alloc(rows * 2 * half, DType::F32)?;
        if rows > 0 && half > 0 {
            let launch = kernels::timestep_features(rows, half).map_err(|e| kernel_err(OP, e))?;
            let args = [
                t.ptr().into(),
                f.ptr().into(),
                out.ptr().into(),
                (rows as i64).into(),
                int(OP, half)?.into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }

    /// An event on the job's stream. Waiting on it blocks the thread (it
    /// does not spin): a plugin host's render thread waits seconds per
    /// denoising step.
    fn queue_mark(&self) -> Result<Option<Box<dyn QueueMark>>> {
        let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_BLOCKING_SYNC;
        let event = guard("cuEventRecord", || {
            self.stream
                .record_event(Some(flags))
                .map_err(|e| driver_err("cuEventRecord", e))
        })
        .map_err(|e| self.err(e))?;
        Ok(Some(Box::new(StreamMark {
            event,
            device: self.name(),
        })))
    }

    fn unary(&self, op: UnaryOp, src: Operand<'_>) -> Out {
        let s = cuda("unary", src.storage)?;
        let n = src.layout.elem_count();
        let out = self.alloc(n, src.dtype())?;
        if n > 0 {
            let l = strided("unary", src.layout)?;
            let (sp, dp, n64, code) = (s.ptr(), out.ptr(), n as i64, unary_code(op));
            let name = format!("unary_{}", suffix(src.dtype()));
            self.launch(
                &name,
                elementwise_cfg(n),
                &[sp.into(), l.into(), dp.into(), n64.into(), code.into()],
            )?;
        }
        Ok(Box::new(out))
    }

    fn affine(&self, src: Operand<'_>, mul: f32, add: f32) -> Out {
        let s = cuda("affine", src.storage)?;
        let n = src.layout.elem_count();
        let out = self.alloc(n, src.dtype())?;
        if n > 0 {
            let l = strided("affine", src.layout)?;
            let (sp, dp, n64) = (s.ptr(), out.ptr(), n as i64);
            let name = format!("affine_{}", suffix(src.dtype()));
            self.launch(
                &name,
                elementwise_cfg(n),
                &[
                    sp.into(),
                    l.into(),
                    dp.into(),
                    n64.into(),
                    mul.into(),
                    add.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
    }

    fn binary(&self, op: BinaryOp, lhs: Operand<'_>, rhs: Operand<'_>) -> Out {
        check_same_dims("binary", lhs.layout, rhs.layout)?;
        let dtype = lhs.dtype();
        let a = self.arg("binary", lhs, dtype, false)?;
        let b = self.arg("binary", rhs, dtype, false)?;
        let n = a.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let (la, lb) = (strided("binary", &a.layout)?, strided("binary", &b.layout)?);
            let (ap, bp, dp, n64, code) =
                (a.base(), b.base(), out.ptr(), n as i64, binary_code(op));
            let name = format!("binary_{}", suffix(dtype));
            self.launch(
                &name,
                elementwise_cfg(n),
                &[
                    ap.into(),
                    la.into(),
                    bp.into(),
                    lb.into(),
                    dp.into(),
                    n64.into(),
                    code.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
    }

    fn matmul(
        &self,
        lhs: &dyn BackendStorage,
        rhs: &dyn BackendStorage,
        bias: Option<Operand<'_>>,
        spec: &MatmulSpec,
    ) -> Out {
        let MatmulSpec { batch, m, n, k, .. } = *spec;
        let dtype = lhs.dtype();
        let (l, r) = (cuda("matmul", lhs)?, cuda("matmul", rhs)?);
        let out = self.alloc(batch * m * n, dtype)?;
        if out.len() == 0 {
            return Ok(Box::new(out));
        }
        let bias = bias
            .map(|b| self.arg("matmul", b, dtype, true))
            .transpose()?;
        if bias.as_ref().is_some_and(|b| b.layout.elem_count() < n) {
            return Err(TensorError::InvalidArgument {
                op: "matmul",
                msg: "bias shorter than n".into(),
            });
        }
        if k == 0 {
            // no products: the output is the bias on every row, or zeros
            return match &bias {
                Some(b) => {
                    self.broadcast_bias(b, &out, batch * m, n)?;
                    Ok(Box::new(out))
                }
                None => self.zeros(batch * m * n, dtype),
            };
        }
        let mut keep = Vec::new();
        let lv = self.mat_operand(l, batch, m, k, &spec.lhs, dtype, &mut keep)?;
        let rv = self.mat_operand(r, batch, k, n, &spec.rhs, dtype, &mut keep)?;
        let mut g = Gemm {
            batch,
            m,
            n,
            k,
            lhs: lv,
            rhs: rv,
            in_dtype: dtype,
            out: MatView {
                ptr: out.ptr(),
                row_stride: n,
                col_stride: 1,
                batch_stride: m * n,
            },
            out_dtype: dtype,
            beta: 0.0,
        };
        if let Some(b) = &bias {
            if self.gemm_bias_lt(&g, b.ptr())? {
                return Ok(Box::new(out));
            }
            // without cuBLASLt: the bias goes into the output first and the
            // GEMM accumulates onto it
            self.broadcast_bias(b, &out, batch * m, n)?;
            g.beta = 1.0;
        }
        self.blas(|h| blas::gemm(h, &g))?;
        Ok(Box::new(out))
    }

    fn softmax_last_dim(&self, src: Operand<'_>) -> Out {
        let x = self.arg("softmax", src, src.dtype(), true)?;
        let dims = x.layout.dims();
        let cols = dims.last().copied().unwrap_or(1);
        let n = x.layout.elem_count();
        let out = self.alloc(n, src.dtype())?;
        if n > 0 {
            let rows = n / cols;
            let (sp, dp, none, one, c, scale) = (
                x.ptr(),
                out.ptr(),
                0u64,
                1i64,
                int("softmax", cols)?,
                1.0f32,
            );
            let name = format!("softmax_{}", suffix(src.dtype()));
            self.launch(
                &name,
                row_cfg(rows, cols)?,
                &[
                    sp.into(),
                    none.into(),
                    one.into(),
                    dp.into(),
                    c.into(),
                    scale.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
    }

    fn rms_norm(&self, src: Operand<'_>, weight: Option<Operand<'_>>, eps: f32) -> Out {
        let dtype = src.dtype();
        let x = self.arg("rms_norm", src, dtype, true)?;
        let w = weight
            .map(|w| self.arg("rms_norm", w, dtype, true))
            .transpose()?;
        let cols = x.layout.dims().last().copied().unwrap_or(1);
        if w.as_ref().is_some_and(|w| w.layout.elem_count() != cols) {
            return Err(TensorError::InvalidArgument {
                op: "rms_norm",
                msg: "weight length differs from the last dim".into(),
            });
        }
        let n = x.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let (xp, wp, dp, c) = (
                x.ptr(),
                w.as_ref().map_or(0, |w| w.ptr()),
                out.ptr(),
                int("rms_norm", cols)?,
            );
            let name = format!("rms_norm_{}", suffix(dtype));
            self.launch(
                &name,
                row_cfg(n / cols, cols)?,
                &[xp.into(), wp.into(), dp.into(), c.into(), eps.into()],
            )?;
        }
        Ok(Box::new(out))
    }

    fn layer_norm(
        &self,
        src: Operand<'_>,
        weight: Option<Operand<'_>>,
        bias: Option<Operand<'_>>,
        eps: f32,
    ) -> Out {
        let dtype = src.dtype();
        let x = self.arg("layer_norm", src, dtype, true)?;
        let w = weight
            .map(|w| self.arg("layer_norm", w, dtype, true))
            .transpose()?;
        let bi = bias
            .map(|b| self.arg("layer_norm", b, dtype, true))
            .transpose()?;
        let cols = x.layout.dims().last().copied().unwrap_or(1);
        for a in [&w, &bi].into_iter().flatten() {
            if a.layout.elem_count() != cols {
                return Err(TensorError::InvalidArgument {
                    op: "layer_norm",
                    msg: "affine term length differs from the last dim".into(),
                });
            }
        }
        let n = x.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let (xp, wp, bp, dp, c) = (
                x.ptr(),
                w.as_ref().map_or(0, |w| w.ptr()),
                bi.as_ref().map_or(0, |b| b.ptr()),
                out.ptr(),
                int("layer_norm", cols)?,
            );
            let name = format!("layer_norm_{}", suffix(dtype));
            self.launch(
                &name,
                row_cfg(n / cols, cols)?,
                &[
                    xp.into(),
                    wp.into(),
                    bp.into(),
                    dp.into(),
                    c.into(),
                    eps.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
    }

    fn attention(
        &self,
        q: Operand<'_>,
        k: Operand<'_>,
        v: Operand<'_>,
        key_bias: Option<Operand<'_>>,
        spec: &AttentionSpec,
    ) -> Out {
        let dtype = q.dtype();
        let q = self.arg("attention", q, dtype, true)?;
        let k = self.arg("attention", k, dtype, true)?;
        let v = self.arg("attention", v, dtype, true)?;
        let bias = key_bias
            .map(|b| self.arg("attention", b, DType::F32, true))
            .transpose()?;
        let AttentionSpec {
            batch,
            q_len,
            kv_len,
            heads,
            head_dim,
            ..
        } = *spec;
        let expect = [
            (q.layout.elem_count(), batch * q_len * heads * head_dim, "q"),
            (
                k.layout.elem_count(),
                batch * kv_len * heads * head_dim,
                "k",
            ),
            (
                v.layout.elem_count(),
                batch * kv_len * heads * head_dim,
                "v",
            ),
        ];
        for (got, want, name) in expect {
            if got != want {
                return Err(TensorError::InvalidArgument {
                    op: "attention",
                    msg: format!("{name} holds {got} elements, the spec needs {want}"),
                });
            }
        }
        if bias
            .as_ref()
            .is_some_and(|b| b.layout.elem_count() != batch * kv_len)
        {
            return Err(TensorError::InvalidArgument {
                op: "attention",
                msg: "key bias must be [batch, kv_len]".into(),
            });
        }
        let aligned = [&q, &k, &v].iter().all(|a| a.ptr() % 16 == 0);
        if let (Some(half), true) = (
            flash_kind(spec, dtype, self.dev.compute_capability()),
            aligned,
        ) {
            return Ok(Box::new(self.attention_flash(
                &q,
                &k,
                &v,
                bias.as_ref(),
                spec,
                half,
            )?));
        }
        Ok(Box::new(self.attention_blas(
            &q,
            &k,
            &v,
            bias.as_ref(),
            spec,
            dtype,
        )?))
    }

    fn rope_interleaved(&self, x: Operand<'_>, cos: Operand<'_>, sin: Operand<'_>) -> Out {
        check_same_dims("rope", x.layout, cos.layout)?;
        check_same_dims("rope", x.layout, sin.layout)?;
        if x.layout.dims().last().is_some_and(|d| d % 2 != 0) {
            return Err(TensorError::InvalidArgument {
                op: "rope",
                msg: "the last dim must be even (interleaved pairs)".into(),
            });
        }
        self.ternary("rope", "rope", x, cos, sin)
    }

    fn modulate(&self, x: Operand<'_>, shift: Operand<'_>, scale: Operand<'_>) -> Out {
        check_same_dims("modulate", x.layout, shift.layout)?;
        check_same_dims("modulate", x.layout, scale.layout)?;
        self.ternary("modulate", "modulate", x, shift, scale)
    }

    fn gated_residual(&self, x: Operand<'_>, gate: Operand<'_>, y: Operand<'_>) -> Out {
        check_same_dims("gated_residual", x.layout, gate.layout)?;
        check_same_dims("gated_residual", x.layout, y.layout)?;
        let dtype = x.dtype();
        let xa = self.arg("gated_residual", x, dtype, true)?;
        let g = self.arg("gated_residual", gate, dtype, false)?;
        let ya = self.arg("gated_residual", y, dtype, true)?;
        let n = xa.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let lg = strided("gated_residual", &g.layout)?;
            let (xp, gp, yp, dp, n64) = (xa.ptr(), g.base(), ya.ptr(), out.ptr(), n as i64);
            let name = format!("gated_residual_{}", suffix(dtype));
            self.launch(
                &name,
                elementwise_cfg(n),
                &[
                    xp.into(),
                    gp.into(),
                    lg.into(),
                    yp.into(),
                    dp.into(),
                    n64.into(),
                ],
            )?;
        }
        Ok(Box::new(out))
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
        let dtype = x.dtype();
        let &Conv3dSpec {
            batch,
            in_channels: ci,
            out_channels: co,
            frames,
            height,
            width,
            kernel: [kt, kh, kw],
            time_padding,
        } = spec;
        let xa = self.arg(OP, x, dtype, true)?;
        let wa = self.arg(OP, weight, dtype, true)?;
        let ba = bias.map(|b| self.arg(OP, b, dtype, true)).transpose()?;
        let ra = residual.map(|r| self.arg(OP, r, dtype, true)).transpose()?;
        let voxels = batch * frames * height * width;
        let fits = xa.layout.elem_count() == voxels * ci
            && wa.layout.elem_count() == co * ci * kt * kh * kw
            && !ba.as_ref().is_some_and(|b| b.layout.elem_count() != co)
            && !ra
                .as_ref()
                .is_some_and(|r| r.layout.elem_count() != voxels * co);
        if !fits || kh % 2 == 0 || kw % 2 == 0 || kt == 0 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("operands do not fit {spec:?}"),
            });
        }
        let out = self.alloc(voxels * co, dtype)?;
        if voxels == 0 || co == 0 {
            return Ok(Box::new(out));
        }
        let pad_front = match time_padding {
            TimePadding::Causal => kt - 1,
            TimePadding::Symmetric => (kt - 1) / 2,
        };
        let launch = match conv3d_mma_kind(dtype, self.dev.compute_capability()) {
            Some(half) => kernels::conv3d_mma_ncdhw(half, voxels, co),
            None => kernels::conv3d_ncdhw(value(dtype), voxels, co),
        }
        .map_err(|e| {
            self.err(CudaError::Invalid {
                op: OP,
                detail: e.to_string(),
            })
        })?;
        let args = [
            xa.ptr().into(),
            wa.ptr().into(),
            ba.as_ref().map_or(0, |b| b.ptr()).into(),
            ra.as_ref().map_or(0, |r| r.ptr()).into(),
            out.ptr().into(),
            int(OP, batch)?.into(),
            int(OP, frames)?.into(),
            int(OP, height)?.into(),
            int(OP, width)?.into(),
            int(OP, ci)?.into(),
            int(OP, co)?.into(),
            int(OP, kt)?.into(),
            int(OP, kh)?.into(),
            int(OP, kw)?.into(),
            int(OP, pad_front)?.into(),
        ];
        self.launch_kernel(&launch, &args)?;
        Ok(Box::new(out))
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
        let dtype = x.dtype();
        let dims = x.layout.dims();
        if dims.len() < 2 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: "needs [batch, channels, ..]".into(),
            });
        }
        let (batch, channels) = (dims[0], dims[1]);
        let positions: usize = dims[2..].iter().product();
        let xa = self.arg(OP, x, dtype, true)?;
        let (sc, sh) = match (scale, shift) {
            (Some(a), Some(b)) => (
                Some(self.arg(OP, a, dtype, true)?),
                Some(self.arg(OP, b, dtype, true)?),
            ),
            (None, None) => (None, None),
            _ => {
                return Err(TensorError::InvalidArgument {
                    op: OP,
                    msg: "scale and shift come together".into(),
                })
            }
        };
        if [&sc, &sh].iter().any(|m| {
            m.as_ref()
                .is_some_and(|m| m.layout.elem_count() != batch * channels)
        }) {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: "modulation must be [batch, channels]".into(),
            });
        }
        let n = xa.layout.elem_count();
        let out = self.alloc(n, dtype)?;
        if n == 0 {
            return Ok(Box::new(out));
        }
        let launch =
            kernels::channel_rms_norm(value(dtype), batch, channels, positions).map_err(|e| {
                self.err(CudaError::Invalid {
                    op: OP,
                    detail: e.to_string(),
                })
            })?;
        let args = [
            xa.ptr().into(),
            sc.as_ref().map_or(0, |a| a.ptr()).into(),
            sh.as_ref().map_or(0, |a| a.ptr()).into(),
            out.ptr().into(),
            int(OP, batch)?.into(),
            int(OP, channels)?.into(),
            (positions as i64).into(),
            eps.into(),
            i32::from(silu).into(),
        ];
        self.launch_kernel(&launch, &args)?;
        Ok(Box::new(out))
    }

    fn depth_to_space_3d(
        &self,
        x: Operand<'_>,
        factors: [usize; 3],
        order: SubOrder,
        drop_front: usize,
    ) -> Out {
        const OP: &str = "depth_to_space_3d";
        let dtype = x.dtype();
        let [b, c, t, h, w] = volume(OP, x.layout.dims())?;
        let [st, sh, sw] = factors;
        let block = st * sh * sw;
        if block == 0 || c % block != 0 || drop_front > t * st {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("factors {factors:?} do not fit {:?}", x.layout.dims()),
            });
        }
        let xa = self.arg(OP, x, dtype, true)?;
        let n = b * (c / block) * (t * st - drop_front) * h * sh * w * sw;
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let launch = kernels::depth_to_space_ncdhw(value(dtype), n);
            let args = [
                xa.ptr().into(),
                out.ptr().into(),
                int(OP, b)?.into(),
                int(OP, c / block)?.into(),
                int(OP, t)?.into(),
                int(OP, h)?.into(),
                int(OP, w)?.into(),
                int(OP, st)?.into(),
                int(OP, sh)?.into(),
                int(OP, sw)?.into(),
                int(OP, drop_front)?.into(),
                order_code(order).into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }

    fn space_to_depth_3d(&self, x: Operand<'_>, factors: [usize; 3], order: SubOrder) -> Out {
        const OP: &str = "space_to_depth_3d";
        let dtype = x.dtype();
        let [b, c, t, h, w] = volume(OP, x.layout.dims())?;
        let [st, sh, sw] = factors;
        if factors.contains(&0) || t % st != 0 || h % sh != 0 || w % sw != 0 {
            return Err(TensorError::InvalidArgument {
                op: OP,
                msg: format!("factors {factors:?} do not divide {:?}", x.layout.dims()),
            });
        }
        let xa = self.arg(OP, x, dtype, true)?;
        let n = b * c * t * h * w;
        let out = self.alloc(n, dtype)?;
        if n > 0 {
            let launch = kernels::space_to_depth_ncdhw(value(dtype), n);
            let args = [
                xa.ptr().into(),
                out.ptr().into(),
                int(OP, b)?.into(),
                int(OP, c)?.into(),
                int(OP, t)?.into(),
                int(OP, h)?.into(),
                int(OP, w)?.into(),
                int(OP, st)?.into(),
                int(OP, sh)?.into(),
                int(OP, sw)?.into(),
                order_code(order).into(),
            ];
            self.launch_kernel(&launch, &args)?;
        }
        Ok(Box::new(out))
    }
}

/// Pushes `args` in order and launches `func` on `stream`.
///
/// # Safety
/// `args` must match the kernel's parameter list (count, order and C types),
/// and every device pointer among them must address a buffer large enough
/// for the launch.
unsafe fn launch_with_args(
    stream: &CudaStream,
    func: &cudarc::driver::CudaFunction,
    cfg: LaunchConfig,
    name: &str,
    args: &[KArg],
) -> std::result::Result<(), CudaError> {
    let mut builder = stream.launch_builder(func);
    for a in args {
        match a {
            KArg::U64(v) => builder.arg(v),
            KArg::I64(v) => builder.arg(v),
            KArg::I32(v) => builder.arg(v),
            KArg::F32(v) => builder.arg(v),
            KArg::Strided(v) => builder.arg(v),
        };
    }
    // SAFETY: the caller guarantees the arguments match the kernel.
    unsafe { builder.launch(cfg) }
        .map(|_| ())
        .map_err(|e| CudaError::Launch {
            kernel: name.into(),
            detail: driver_err("cuLaunchKernel", e).to_string(),
        })
}
