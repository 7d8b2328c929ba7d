//! Our CUDA kernels (`kernels/*.cu`): the embedded module sources (and PTX
//! when build.rs found nvcc), and for every kernel its name, parameter order
//! and launch configuration.
//!
//! The launch configurations are plain functions so that the CUDA backend and
//! the emulated tests (which run the same sources on the CPU) launch exactly
//! the same grid and block. Parameter lists are given as `name: type` in the
//! order the kernel takes them; `T` is the 16-bit storage type the kernel name
//! ends in, `dptr<T>` a device pointer, `i64`/`u64` 64-bit integers.

use thiserror::Error;

/// One kernel file as the binary carries it.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// File stem (`attention` for `kernels/attention.cu`).
    pub name: &'static str,
    /// Self-contained CUDA C++ (our headers inlined; needs no include path).
    pub source: &'static str,
    /// PTX made by nvcc at build time, by architecture; empty without nvcc.
    pub ptx: &'static [(&'static str, &'static str)],
}

mod embedded {
    use super::KernelModule;
    include!(concat!(env!("OUT_DIR"), "/kernels_embedded.rs"));
}

/// Every kernel module.
pub const MODULES: &[KernelModule] = embedded::MODULES;
/// Whether build.rs found nvcc and embedded PTX.
pub const PTX_FROM_NVCC: bool = embedded::PTX_FROM_NVCC;
/// The architectures PTX is made for, and that the NVRTC test compiles for.
pub const ARCHS: [&str; 3] = ["sm_80", "sm_89", "sm_90"];

/// The module called `name`.
pub fn module(name: &str) -> Option<&'static KernelModule> {
    MODULES.iter().find(|m| m.name == name)
}

/// 16-bit storage type of a kernel's tensors (f32 accumulation inside).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Half {
    Bf16,
    F16,
}

impl Half {
    pub fn suffix(self) -> &'static str {
        match self {
            Half::Bf16 => "bf16",
            Half::F16 => "f16",
        }
    }
}

/// Element type of a sampler input (model outputs may stay 16-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    F32,
    Bf16,
    F16,
}

impl Value {
    pub fn suffix(self) -> &'static str {
        match self {
            Value::F32 => "f32",
            Value::Bf16 => "bf16",
            Value::F16 => "f16",
        }
    }
}

/// Sample type of a host RGBA frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sample {
    U8,
    U16,
    F32,
}

impl Sample {
    pub fn suffix(self) -> &'static str {
        match self {
            Sample::U8 => "u8",
            Sample::U16 => "u16",
            Sample::F32 => "f32",
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            Sample::U8 => 1,
            Sample::U16 => 2,
            Sample::F32 => 4,
        }
    }
}

/// Oldest architecture the flash attention kernel compiles for: its
/// `mma.sync` m16n8k16 with 16-bit inputs and its `cp.async` loads are
/// Ampere instructions.
pub const FLASH_MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
}

/// What to launch: module, kernel and configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub module: &'static str,
    pub kernel: String,
    pub config: LaunchConfig,
}

/// Shared memory a block may use without the opt-in attribute.
pub const DEFAULT_SHARED_MEM_LIMIT: u32 = 48 * 1024;

impl Launch {
    /// Whether the CUDA backend must raise the function's maximum dynamic
    /// shared memory (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`) first.
    pub fn needs_shared_mem_opt_in(&self) -> bool {
        self.config.shared_mem_bytes > DEFAULT_SHARED_MEM_LIMIT
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    #[error("{kernel}: {what}")]
    Unsupported { kernel: &'static str, what: String },
}

fn unsupported(kernel: &'static str, what: impl Into<String>) -> KernelError {
    KernelError::Unsupported {
        kernel,
        what: what.into(),
    }
}

const THREADS: u32 = 256;
/// Grid-stride kernels need no more blocks than this to fill any GPU.
const MAX_STRIDE_BLOCKS: u64 = 65_536;

fn grid_stride(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(u64::from(THREADS)).clamp(1, MAX_STRIDE_BLOCKS);
    LaunchConfig {
        grid: [blocks as u32, 1, 1],
        block: [THREADS, 1, 1],
        shared_mem_bytes: 0,
    }
}

fn fits_i32(kernel: &'static str, what: &str, v: usize) -> Result<(), KernelError> {
    if v > i32::MAX as usize {
        return Err(unsupported(kernel, format!("{what} = {v} exceeds i32")));
    }
    Ok(())
}

// --- tensor_ops.cu: the CUDA backend's generic kernels ------------------------------------
// Launched by name from the backend (src/backend/cuda/backend.rs), `D`/`S` in
// {f32, bf16, f16}; `Strided` is a 144-byte view passed by value (`StridedArg`):
//   convert_S_D(src, Strided, dst, Strided, n: i64)                     elementwise
//   unary_D(src, Strided, dst, n: i64, op: i32)                         elementwise
//   affine_D(src, Strided, dst, n: i64, mul: f32, add: f32)             elementwise
//   binary_D(a, Strided, b, Strided, dst, n: i64, op: i32)              elementwise
//   modulate_D(x, shift, Strided, scale, Strided, dst, n: i64)          elementwise
//   gated_residual_D(x, gate, Strided, y, dst, n: i64)                  elementwise
//   rope_D(x, cos, Strided, sin, Strided, dst, n: i64)                  elementwise
//   softmax_D(src, bias, rows_per_bias: i64, dst, cols: i32, scale: f32)    rows
//   softmax_f32_to_D(src: f32, bias: f32, rows_per_bias, dst, cols, scale)   rows
//   rms_norm_D(src, weight, dst, cols: i32, eps: f32)                   rows
//   layer_norm_D(src, weight, bias, dst, cols: i32, eps: f32)           rows

/// Threads per block of the tensor_ops kernels.
const TENSOR_OPS_BLOCK: u32 = 256;

/// Grid-stride launch of a tensor_ops elementwise kernel over `n` elements.
pub fn elementwise_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(TENSOR_OPS_BLOCK as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid: [blocks, 1, 1],
        block: [TENSOR_OPS_BLOCK, 1, 1],
        shared_mem_bytes: 0,
    }
}

/// One block per row of `cols` for the tensor_ops row kernels (softmax and
/// the norms): 1024 threads for rows of 4096 and more, else 256.
pub fn row_config(rows: usize, cols: usize) -> Result<LaunchConfig, KernelError> {
    let rows = u32::try_from(rows)
        .ok()
        .filter(|&r| r < (1 << 31))
        .ok_or_else(|| unsupported("row op", format!("{rows} rows exceed one grid")))?;
    let threads = if cols >= 4096 { 1024 } else { 256 };
    Ok(LaunchConfig {
        grid: [rows.max(1), 1, 1],
        block: [threads, 1, 1],
        shared_mem_bytes: 0,
    })
}

/// Elementwise activations, in `activation.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_tanh_T(x: dptr<const T>, y: dptr<T>, n: i64)`
    GeluTanh,
    /// `silu_T(x: dptr<const T>, y: dptr<T>, n: i64)`
    Silu,
    /// `gelu_tanh_mul_T(gate: dptr<const T>, up: dptr<const T>, y: dptr<T>, n: i64)`:
    /// y = gelu_tanh(gate) * up (T5's gated FFN).
    GeluTanhMul,
}

pub fn activation(kind: Activation, dtype: Half, n: usize) -> Launch {
    let base = match kind {
        Activation::GeluTanh => "gelu_tanh",
        Activation::Silu => "silu",
        Activation::GeluTanhMul => "gelu_tanh_mul",
    };
    Launch {
        module: "activation",
        kernel: format!("{base}_{}", dtype.suffix()),
        config: grid_stride(n as u64),
    }
}

/// `euler_step_V(x: dptr<const f32>, v: dptr<const V>, sigma: dptr<const f32>,
/// sigma_next: dptr<const f32>, update: dptr<const f32> (null = all),
/// out: dptr<f32> (may alias x), tokens: i64, channels: i32)`:
/// out = x + (sigma_next - sigma) * v per token, frozen tokens (update = 0)
/// copied unchanged.
pub fn euler_step(velocity: Value, tokens: usize, channels: usize) -> Result<Launch, KernelError> {
    fits_i32("euler_step", "channels", channels)?;
    Ok(Launch {
        module: "sampler",
        kernel: format!("euler_step_{}", velocity.suffix()),
        config: grid_stride((tokens * channels) as u64),
    })
}

/// Chunks per batch item that [`guidance_combine`] writes partial sums for.
pub fn guidance_chunks(per_item: usize) -> u32 {
    (per_item as u64)
        .div_ceil(u64::from(THREADS) * 4)
        .clamp(1, 1024) as u32
}

/// `guidance_combine_V(uncond, cond, perturbed (null = CFG only): dptr<const V>,
/// out: dptr<f32>, partials: dptr<f32> [items * chunks * 4] (null = no rescale),
/// cfg: f32, stg: f32, per_item: i64)`.
pub fn guidance_combine(
    values: Value,
    per_item: usize,
    items: usize,
) -> Result<Launch, KernelError> {
    if items == 0 || items > 65_535 {
        return Err(unsupported(
            "guidance_combine",
            format!("{items} batch items"),
        ));
    }
    Ok(Launch {
        module: "sampler",
        kernel: format!("guidance_combine_{}", values.suffix()),
        config: LaunchConfig {
            grid: [guidance_chunks(per_item), items as u32, 1],
            block: [THREADS, 1, 1],
            shared_mem_bytes: 0,
        },
    })
}

/// `guidance_rescale(out: dptr<f32>, partials: dptr<const f32>, rescale: f32,
/// per_item: i64, chunks: i32)`, after [`guidance_combine`] with partials.
pub fn guidance_rescale(per_item: usize, items: usize) -> Result<Launch, KernelError> {
    if items == 0 || items > 65_535 {
        return Err(unsupported(
            "guidance_rescale",
            format!("{items} batch items"),
        ));
    }
    if per_item < 2 {
        return Err(unsupported(
            "guidance_rescale",
            "needs two values per item for a deviation",
        ));
    }
    Ok(Launch {
        module: "sampler",
        kernel: "guidance_rescale".into(),
        config: LaunchConfig {
            grid: [guidance_chunks(per_item), items as u32, 1],
            block: [THREADS, 1, 1],
            shared_mem_bytes: 0,
        },
    })
}

/// `noise_normal_f32(out: dptr<f32>, n: i64, seed: u64, stream: u64, start: u64)`:
/// out[k] = `sampler::noise::normal(seed, stream, start + k)`.
pub fn noise_normal(n: usize) -> Launch {
    Launch {
        module: "sampler",
        kernel: "noise_normal_f32".into(),
        config: grid_stride((n as u64).div_ceil(4) + 1),
    }
}

/// `timestep_features_f32(t: dptr<const f32> [rows], freqs: dptr<const f32>
/// [half], out: dptr<f32> [rows, 2·half], rows: i64, half: i32)`:
/// `out[r] = [cos(t[r]·freqs), sin(t[r]·freqs)]`, the product in f32, sin
/// and cos in f64.
pub fn timestep_features(rows: usize, half: usize) -> Result<Launch, KernelError> {
    fits_i32("timestep_features", "half", half)?;
    Ok(Launch {
        module: "sampler",
        kernel: "timestep_features_f32".into(),
        config: grid_stride((rows * half) as u64),
    })
}

/// `norm_modulate_T(x, weight, bias, scale, shift: dptr<const T> (all but x
/// nullable), y: dptr<T>, rows: i32, cols: i32, x_ld: i64, y_ld: i64,
/// mod_ld: i64, rows_per_mod: i32, eps: f32, layer_norm: i32)`:
/// y = norm(x) * weight + bias, then * (1 + scale) + shift with the
/// modulation row `row / rows_per_mod`. One block per row.
pub fn norm_modulate(dtype: Half, rows: usize, cols: usize) -> Result<Launch, KernelError> {
    fits_i32("norm_modulate", "rows", rows)?;
    fits_i32("norm_modulate", "cols", cols)?;
    if rows == 0 || cols == 0 {
        return Err(unsupported("norm_modulate", "empty rows"));
    }
    let block = (cols as u32).next_multiple_of(32).clamp(32, THREADS);
    Ok(Launch {
        module: "norm",
        kernel: format!("norm_modulate_{}", dtype.suffix()),
        config: LaunchConfig {
            grid: [rows as u32, 1, 1],
            block: [block, 1, 1],
            shared_mem_bytes: 0,
        },
    })
}

/// `gated_residual_T(x: dptr<T>, y: dptr<const T>, gate: dptr<const T> (nullable),
/// rows: i32, cols: i32, x_ld: i64, y_ld: i64, gate_ld: i64, rows_per_gate: i32)`:
/// x += gate * y.
pub fn gated_residual(dtype: Half, rows: usize, cols: usize) -> Result<Launch, KernelError> {
    fits_i32("gated_residual", "rows", rows)?;
    fits_i32("gated_residual", "cols", cols)?;
    Ok(Launch {
        module: "norm",
        kernel: format!("gated_residual_{}", dtype.suffix()),
        config: grid_stride((rows * cols) as u64),
    })
}

/// `rope_interleaved_T(x: dptr<const T>, y: dptr<T>, cos: dptr<const f32>,
/// sin: dptr<const f32>, rows: i32, cols: i32, x_ld: i64, y_ld: i64,
/// table_rows: i32)`: LTX rotary embedding over interleaved pairs, tables
/// `[table_rows, cols]` used for row `r % table_rows`.
pub fn rope_interleaved(dtype: Half, rows: usize, cols: usize) -> Result<Launch, KernelError> {
    fits_i32("rope_interleaved", "rows", rows)?;
    if cols % 2 != 0 {
        return Err(unsupported("rope_interleaved", format!("odd width {cols}")));
    }
    Ok(Launch {
        module: "rope",
        kernel: format!("rope_interleaved_{}", dtype.suffix()),
        config: grid_stride((rows * cols / 2) as u64),
    })
}

fn frame_config(width: usize, height: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [width.div_ceil(32) as u32, height.div_ceil(8) as u32, 1],
        block: [32, 8, 1],
        shared_mem_bytes: 0,
    }
}

fn check_frame(kernel: &'static str, width: usize, height: usize) -> Result<(), KernelError> {
    if width == 0 || height == 0 || width > 1 << 16 || height > 1 << 16 {
        return Err(unsupported(kernel, format!("frame {width}x{height}")));
    }
    Ok(())
}

/// `rgba_S_to_planar_V(base: dptr<const u8>, origin: i64, row_stride: i64,
/// width: i32, height: i32, out: dptr<V> [3, height, width])`: host RGBA
/// (row y at byte `origin + y * row_stride`, negative for bottom-up) to
/// planar RGB in [-1, 1].
pub fn rgba_to_planar(
    sample: Sample,
    out: Value,
    width: usize,
    height: usize,
) -> Result<Launch, KernelError> {
    check_frame("rgba_to_planar", width, height)?;
    Ok(Launch {
        module: "frame",
        kernel: format!("rgba_{}_to_planar_{}", sample.suffix(), out.suffix()),
        config: frame_config(width, height),
    })
}

/// `planar_V_to_rgba_S(in: dptr<const V> [3, height, width], base: dptr<u8>,
/// origin: i64, row_stride: i64, width: i32, height: i32)`: back to host RGBA,
/// clamped to [0, 1], alpha opaque.
pub fn planar_to_rgba(
    input: Value,
    sample: Sample,
    width: usize,
    height: usize,
) -> Result<Launch, KernelError> {
    check_frame("planar_to_rgba", width, height)?;
    Ok(Launch {
        module: "frame",
        kernel: format!("planar_{}_to_rgba_{}", input.suffix(), sample.suffix()),
        config: frame_config(width, height),
    })
}

/// `conv3d_ncdhw_V(x, w, bias (nullable), residual (nullable): dptr<const V>,
/// y: dptr<V>, batch, frames, height, width, c_in, c_out, kt, kh, kw,
/// pad_t_front: i32)`: stride-1 3-D convolution on `[B, C, T, H, W]` with
/// PyTorch's weight layout `[c_out, c_in, kt, kh, kw]`; output of the
/// input's frames, height and width (edge frames replicated in time, `k / 2`
/// zeros in space), plus `residual` when given.
/// `output_voxels` = batch * frames * height * width.
pub fn conv3d_ncdhw(
    dtype: Value,
    output_voxels: usize,
    c_out: usize,
) -> Result<Launch, KernelError> {
    let grid_x = output_voxels.div_ceil(64);
    if grid_x == 0 || grid_x > i32::MAX as usize || c_out == 0 || c_out.div_ceil(64) > 65_535 {
        return Err(unsupported(
            "conv3d_ncdhw",
            format!("{output_voxels} voxels x {c_out} channels"),
        ));
    }
    Ok(Launch {
        module: "conv3d",
        kernel: format!("conv3d_ncdhw_{}", dtype.suffix()),
        config: LaunchConfig {
            grid: [grid_x as u32, c_out.div_ceil(64) as u32, 1],
            block: [THREADS, 1, 1],
            shared_mem_bytes: 0,
        },
    })
}

/// Oldest architecture the tensor-core conv3d runs on: `mma.sync` m16n8k16
/// with 16-bit inputs is an Ampere instruction.
pub const CONV3D_MMA_MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// Output voxels x output channels of one tensor-core conv3d block.
pub const CONV3D_MMA_TILE: (usize, usize) = (128, 64);

/// `conv3d_mma_ncdhw_T(x, w, bias (nullable), residual (nullable):
/// dptr<const T>, y: dptr<T>, batch, frames, height, width, c_in, c_out, kt,
/// kh, kw, pad_t_front: i32)`: [`conv3d_ncdhw`] on tensor cores (16-bit
/// inputs, f32 accumulation), same parameters and result; compute
/// capability [`CONV3D_MMA_MIN_COMPUTE_CAPABILITY`] and up.
pub fn conv3d_mma_ncdhw(
    dtype: Half,
    output_voxels: usize,
    c_out: usize,
) -> Result<Launch, KernelError> {
    let (bm, bn) = CONV3D_MMA_TILE;
    let grid_x = output_voxels.div_ceil(bm);
    if grid_x == 0 || grid_x > i32::MAX as usize || c_out == 0 || c_out.div_ceil(bn) > 65_535 {
        return Err(unsupported(
            "conv3d_mma_ncdhw",
            format!("{output_voxels} voxels x {c_out} channels"),
        ));
    }
    Ok(Launch {
        module: "conv3d_mma",
        kernel: format!("conv3d_mma_ncdhw_{}", dtype.suffix()),
        config: LaunchConfig {
            grid: [grid_x as u32, c_out.div_ceil(bn) as u32, 1],
            block: [256, 1, 1],
            shared_mem_bytes: 0,
        },
    })
}

/// `channel_rms_norm_V(x, scale, shift (both nullable): dptr<const V>,
/// y: dptr<V>, batch: i32, channels: i32, positions: i64, eps: f32,
/// apply_silu: i32)`: RMS norm across the channels of `[B, C, positions]`,
/// then `* (1 + scale) + shift` (`[B, C]`) and SiLU. One thread per (batch,
/// position).
pub fn channel_rms_norm(
    dtype: Value,
    batch: usize,
    channels: usize,
    positions: usize,
) -> Result<Launch, KernelError> {
    fits_i32("channel_rms_norm", "batch", batch)?;
    fits_i32("channel_rms_norm", "channels", channels)?;
    Ok(Launch {
        module: "norm",
        kernel: format!("channel_rms_norm_{}", dtype.suffix()),
        config: grid_stride((batch * positions) as u64),
    })
}

/// `depth_to_space_ncdhw_V(x: dptr<const V>, y: dptr<V>, batch, channels
/// (the output's), frames, height, width (the input's), st, sh, sw,
/// drop_front, order: i32)`: `[B, C*st*sh*sw, T, H, W] -> [B, C, T*st -
/// drop_front, H*sh, W*sw]`; order 0 is time-height-width, 1 time-width-height.
pub fn depth_to_space_ncdhw(dtype: Value, output_elements: usize) -> Launch {
    Launch {
        module: "pixel_shuffle",
        kernel: format!("depth_to_space_ncdhw_{}", dtype.suffix()),
        config: grid_stride(output_elements as u64),
    }
}

/// `space_to_depth_ncdhw_V(x: dptr<const V>, y: dptr<V>, batch, channels,
/// frames, height, width (the input's), st, sh, sw, order: i32)`: the inverse
/// of [`depth_to_space_ncdhw`] without dropped frames.
pub fn space_to_depth_ncdhw(dtype: Value, output_elements: usize) -> Launch {
    Launch {
        module: "pixel_shuffle",
        kernel: format!("space_to_depth_ncdhw_{}", dtype.suffix()),
        config: grid_stride(output_elements as u64),
    }
}

/// Query rows per attention block.
pub const ATTENTION_BLOCK_ROWS: usize = 64;

/// `flash_attention_T_dD(q, k, v: dptr<const T>, out: dptr<T>,
/// key_bias: dptr<const f32> [batch, lk] (nullable), lq: i32, lk: i32,
/// q_batch, q_row, k_batch, k_row, v_batch, v_row, o_batch, o_row: i64,
/// scale: f32)`. Element (b, row, h, d) of q is at
/// `q[b * q_batch + row * q_row + h * D + d]`; strides are in elements and
/// must be multiples of 8, pointers 16-byte aligned. `key_bias` is added to
/// the scaled logits (the reference's mask is `(1 - mask) * -10000`).
pub fn flash_attention(
    dtype: Half,
    head_dim: usize,
    batch: usize,
    heads: usize,
    lq: usize,
    lk: usize,
) -> Result<Launch, KernelError> {
    const K: &str = "flash_attention";
    if head_dim != 64 && head_dim != 128 {
        return Err(unsupported(
            K,
            format!("head dim {head_dim} (64 and 128 are built)"),
        ));
    }
    if heads == 0 || heads > 65_535 || batch == 0 || batch > 65_535 {
        return Err(unsupported(K, format!("{batch} batch x {heads} heads")));
    }
    fits_i32(K, "query length", lq)?;
    fits_i32(K, "key length", lk)?;
    let tiles = lq.div_ceil(ATTENTION_BLOCK_ROWS).max(1);
    Ok(Launch {
        module: "attention",
        kernel: format!("flash_attention_{}_d{head_dim}", dtype.suffix()),
        config: LaunchConfig {
            grid: [tiles as u32, heads as u32, batch as u32],
            block: [128, 1, 1],
            shared_mem_bytes: (3 * ATTENTION_BLOCK_ROWS * (head_dim + 8) * 2) as u32,
        },
    })
}

/// Checks the stride rules of [`flash_attention`] for one tensor.
pub fn attention_strides_ok(batch_stride: usize, row_stride: usize) -> bool {
    batch_stride % 8 == 0 && row_stride % 8 == 0
}
