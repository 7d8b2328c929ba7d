// Layout and generic tensor kernels of the CUDA backend: strided copies with
// dtype conversion, elementwise maps, softmax and the normalisations, for
// f32, bf16 and f16 storage with f32 arithmetic.
//
// These serve the backend interface's general ops (any strides, broadcast
// operands), launched by name from src/backend/cuda/backend.rs with the
// configurations of `genfx::kernels::{elementwise, rows}`; the model's fused
// hot-path kernels live in the other files here. Several names (e.g.
// gated_residual_bf16) also exist in other modules with other parameters:
// each module is loaded on its own, so kernels are GENFX_KERNEL (internal
// linkage in the emulator, where all files share one library).
#include "common.cuh"

namespace tensor_ops {

constexpr int MAX_RANK = 8;

// A view into a buffer, in elements. Mirrors `StridedArg` in
// src/backend/cuda/tensor_ops.rs byte for byte; passed by value.
struct Strided {
    int rank;
    int pad_;
    i64 offset;
    i64 dims[MAX_RANK];
    i64 strides[MAX_RANK];
};
static_assert(sizeof(Strided) == 144, "Strided must match StridedArg (144 bytes)");

// Storage offset of the i-th element in row-major order of `l.dims`.
__device__ __forceinline__ i64 strided_index(const Strided& l, i64 i) {
    i64 at = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        const i64 n = l.dims[d];
        at += (i % n) * l.strides[d];
        i /= n;
    }
    return at;
}

template <class T>
__device__ __forceinline__ float load(dptr<const T> p, i64 i) {
    return to_f32(T(p[i]));
}

// f32 -> storage type. bf16 rounds to nearest even and keeps a NaN's sign and
// top payload bits (setting the quiet bit), exactly as `half::bf16::from_f32`
// does in the CPU backend, so converted tensors are bit-identical on both
// backends; common.cuh's bf16_from_f32 makes a canonical NaN instead.
template <class T>
__device__ __forceinline__ T narrow(float v) {
    return from_f32<T>(v);
}
template <>
__device__ __forceinline__ bf16 narrow<bf16>(float v) {
    u32 u = f32_to_bits(v);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = u16((u >> 16) | 0x40u);
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = u16(u >> 16);
    return r;
}

template <class T>
__device__ __forceinline__ void store(dptr<T> p, i64 i, float v) {
    p[i] = narrow<T>(v);
}

__device__ __forceinline__ float neg_inf() { return bits_to_f32(0xff800000u); }
__device__ __forceinline__ float quiet_nan() { return bits_to_f32(0x7fc00000u); }

// Grid-stride loop over n elements.
#define TENSOR_OPS_FOR_EACH(i, n) \
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += i64(gridDim.x) * blockDim.x)

// dst (own layout) <- src (own layout), both walked in the order of src's dims.
template <class S, class D>
__device__ void convert(dptr<const S> src, Strided sl, dptr<D> dst, Strided dl, i64 n) {
    TENSOR_OPS_FOR_EACH(i, n) { store<D>(dst, strided_index(dl, i), load<S>(src, strided_index(sl, i))); }
}

// Unary op codes; must match `unary_code` in src/backend/cuda/backend.rs.
__device__ __forceinline__ float unary_fn(int op, float x) {
    switch (op) {
        case 0: {  // GELU, tanh approximation
            const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
            return 0.5f * x * (1.0f + tanhf(inner));
        }
        case 1: return x / (1.0f + expf(-x));  // SiLU
        case 2: return expf(x);
        case 3: return -x;
        case 4: return sqrtf(x);
        case 5: return 1.0f / x;
        case 6: return fabsf(x);
        case 7: return tanhf(x);
        case 8: return sinf(x);
        case 9: return cosf(x);
        case 10: return x * x;
        default: return quiet_nan();
    }
}

// Binary op codes; must match `binary_code` in src/backend/cuda/backend.rs.
__device__ __forceinline__ float binary_fn(int op, float a, float b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return fmaxf(a, b);
        case 5: return fminf(a, b);
        default: return quiet_nan();
    }
}

template <class T>
__device__ void unary(dptr<const T> src, Strided l, dptr<T> dst, i64 n, int op) {
    TENSOR_OPS_FOR_EACH(i, n) { store<T>(dst, i, unary_fn(op, load<T>(src, strided_index(l, i)))); }
}

template <class T>
__device__ void affine(dptr<const T> src, Strided l, dptr<T> dst, i64 n, float mul, float add) {
    TENSOR_OPS_FOR_EACH(i, n) { store<T>(dst, i, load<T>(src, strided_index(l, i)) * mul + add); }
}

template <class T>
__device__ void binary(dptr<const T> a, Strided la, dptr<const T> b, Strided lb, dptr<T> dst, i64 n, int op) {
    TENSOR_OPS_FOR_EACH(i, n) {
        const float x = load<T>(a, strided_index(la, i));
        const float y = load<T>(b, strided_index(lb, i));
        store<T>(dst, i, binary_fn(op, x, y));
    }
}

// x * (1 + scale) + shift; x contiguous.
template <class T>
__device__ void modulate(dptr<const T> x, dptr<const T> shift, Strided lsh, dptr<const T> scale, Strided lsc,
                         dptr<T> dst, i64 n) {
    TENSOR_OPS_FOR_EACH(i, n) {
        const float v = load<T>(x, i);
        const float s = load<T>(scale, strided_index(lsc, i));
        const float t = load<T>(shift, strided_index(lsh, i));
        store<T>(dst, i, v * (1.0f + s) + t);
    }
}

// x + gate * y; x and y contiguous.
template <class T>
__device__ void gated_residual(dptr<const T> x, dptr<const T> gate, Strided lg, dptr<const T> y, dptr<T> dst,
                               i64 n) {
    TENSOR_OPS_FOR_EACH(i, n) {
        const float g = load<T>(gate, strided_index(lg, i));
        store<T>(dst, i, load<T>(x, i) + g * load<T>(y, i));
    }
}

// Interleaved pairs (x0, x1) -> (x0 c - x1 s, x1 c + x0 s); x contiguous with
// an even last dim, so element i's partner is i ^ 1.
template <class T>
__device__ void rope(dptr<const T> x, dptr<const T> cos_t, Strided lc, dptr<const T> sin_t, Strided ls, dptr<T> dst,
                     i64 n) {
    TENSOR_OPS_FOR_EACH(i, n) {
        const float c = load<T>(cos_t, strided_index(lc, i));
        const float s = load<T>(sin_t, strided_index(ls, i));
        const float v = load<T>(x, i);
        const float out = (i & 1) ? v * c + load<T>(x, i - 1) * s : v * c - load<T>(x, i + 1) * s;
        store<T>(dst, i, out);
    }
}

// Block-wide sum or max of one value per thread (blockDim.x a multiple of 32,
// at most 1024). Every thread gets the result.
template <bool IS_MAX>
__device__ float block_reduce(float v) {
    SHARED_ARRAY(float, partial, 32);
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5);
    __syncthreads();  // `partial` may still be read by a previous call
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    const int warps = int(blockDim.x >> 5);
    v = lane < warps ? float(partial[lane]) : (IS_MAX ? neg_inf() : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    return v;
}

// One block per row of `cols` contiguous values.
// dst = softmax(scale * src + bias); `bias` (may be null) is one row of
// `cols` shared by `rows_per_bias` consecutive rows, advancing after them.
template <class S, class D>
__device__ void softmax_rows(dptr<const S> src, dptr<const S> bias, i64 rows_per_bias, dptr<D> dst, int cols,
                             float scale) {
    const i64 row = blockIdx.x;
    const dptr<const S> in = src + row * cols;
    const dptr<D> out = dst + row * cols;
    const dptr<const S> b = bias ? bias + (row / rows_per_bias) * cols : dptr<const S>();
    const int stride = int(blockDim.x);
    float m = neg_inf();
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        const float v = load<S>(in, j) * scale + (b ? load<S>(b, j) : 0.0f);
        m = fmaxf(m, v);
    }
    m = block_reduce<true>(m);
    float sum = 0.0f;
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        const float v = load<S>(in, j) * scale + (b ? load<S>(b, j) : 0.0f);
        sum += __expf(v - m);
    }
    sum = block_reduce<false>(sum);
    const float inv = 1.0f / sum;
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        const float v = load<S>(in, j) * scale + (b ? load<S>(b, j) : 0.0f);
        store<D>(out, j, __expf(v - m) * inv);
    }
}

// One block per row; `weight` may be null.
template <class T>
__device__ void rms_norm_rows(dptr<const T> src, dptr<const T> weight, dptr<T> dst, int cols, float eps) {
    const i64 row = blockIdx.x;
    const dptr<const T> in = src + row * cols;
    const int stride = int(blockDim.x);
    float ss = 0.0f;
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        const float v = load<T>(in, j);
        ss += v * v;
    }
    ss = block_reduce<false>(ss);
    const float r = rsqrtf(ss / cols + eps);
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        float v = load<T>(in, j) * r;
        if (weight) v *= load<T>(weight, j);
        store<T>(dst, row * cols + j, v);
    }
}

// One block per row; `weight`/`bias` may be null. Two-pass variance.
template <class T>
__device__ void layer_norm_rows(dptr<const T> src, dptr<const T> weight, dptr<const T> bias, dptr<T> dst, int cols,
                                float eps) {
    const i64 row = blockIdx.x;
    const dptr<const T> in = src + row * cols;
    const int stride = int(blockDim.x);
    float s = 0.0f;
    for (int j = int(threadIdx.x); j < cols; j += stride) s += load<T>(in, j);
    const float mean = block_reduce<false>(s) / cols;
    float ss = 0.0f;
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        const float d = load<T>(in, j) - mean;
        ss += d * d;
    }
    const float r = rsqrtf(block_reduce<false>(ss) / cols + eps);
    for (int j = int(threadIdx.x); j < cols; j += stride) {
        float v = (load<T>(in, j) - mean) * r;
        if (weight) v *= load<T>(weight, j);
        if (bias) v += load<T>(bias, j);
        store<T>(dst, row * cols + j, v);
    }
}

}  // namespace tensor_ops

using tensor_ops::Strided;

#define TENSOR_OPS_CONVERT(SN, S, DN, D)                                                                       \
    GENFX_KERNEL void convert_##SN##_##DN(dptr<const S> src, Strided sl, dptr<D> dst, Strided dl, i64 n) {     \
        tensor_ops::convert<S, D>(src, sl, dst, dl, n);                                                        \
    }
TENSOR_OPS_CONVERT(f32, float, f32, float)
TENSOR_OPS_CONVERT(f32, float, bf16, bf16)
TENSOR_OPS_CONVERT(f32, float, f16, f16)
TENSOR_OPS_CONVERT(bf16, bf16, f32, float)
TENSOR_OPS_CONVERT(bf16, bf16, bf16, bf16)
TENSOR_OPS_CONVERT(bf16, bf16, f16, f16)
TENSOR_OPS_CONVERT(f16, f16, f32, float)
TENSOR_OPS_CONVERT(f16, f16, bf16, bf16)
TENSOR_OPS_CONVERT(f16, f16, f16, f16)

#define TENSOR_OPS_ELEMENTWISE(N, T)                                                                           \
    GENFX_KERNEL void unary_##N(dptr<const T> src, Strided l, dptr<T> dst, i64 n, int op) {                    \
        tensor_ops::unary<T>(src, l, dst, n, op);                                                              \
    }                                                                                                          \
    GENFX_KERNEL void affine_##N(dptr<const T> src, Strided l, dptr<T> dst, i64 n, float mul, float add) {     \
        tensor_ops::affine<T>(src, l, dst, n, mul, add);                                                       \
    }                                                                                                          \
    GENFX_KERNEL void binary_##N(dptr<const T> a, Strided la, dptr<const T> b, Strided lb, dptr<T> dst, i64 n, \
                                 int op) {                                                                     \
        tensor_ops::binary<T>(a, la, b, lb, dst, n, op);                                                       \
    }                                                                                                          \
    GENFX_KERNEL void modulate_##N(dptr<const T> x, dptr<const T> shift, Strided lsh, dptr<const T> scale,     \
                                   Strided lsc, dptr<T> dst, i64 n) {                                          \
        tensor_ops::modulate<T>(x, shift, lsh, scale, lsc, dst, n);                                            \
    }                                                                                                          \
    GENFX_KERNEL void gated_residual_##N(dptr<const T> x, dptr<const T> gate, Strided lg, dptr<const T> y,     \
                                         dptr<T> dst, i64 n) {                                                 \
        tensor_ops::gated_residual<T>(x, gate, lg, y, dst, n);                                                 \
    }                                                                                                          \
    GENFX_KERNEL void rope_##N(dptr<const T> x, dptr<const T> cos_t, Strided lc, dptr<const T> sin_t,          \
                               Strided ls, dptr<T> dst, i64 n) {                                               \
        tensor_ops::rope<T>(x, cos_t, lc, sin_t, ls, dst, n);                                                  \
    }
TENSOR_OPS_ELEMENTWISE(f32, float)
TENSOR_OPS_ELEMENTWISE(bf16, bf16)
TENSOR_OPS_ELEMENTWISE(f16, f16)

#define TENSOR_OPS_ROWWISE(N, T)                                                                               \
    GENFX_KERNEL void softmax_##N(dptr<const T> src, dptr<const T> bias, i64 rows_per_bias, dptr<T> dst,       \
                                  int cols, float scale) {                                                     \
        tensor_ops::softmax_rows<T, T>(src, bias, rows_per_bias, dst, cols, scale);                            \
    }                                                                                                          \
    /* attention scores kept in f32, probabilities stored as N */                                              \
    GENFX_KERNEL void softmax_f32_to_##N(dptr<const float> src, dptr<const float> bias, i64 rows_per_bias,     \
                                         dptr<T> dst, int cols, float scale) {                                 \
        tensor_ops::softmax_rows<float, T>(src, bias, rows_per_bias, dst, cols, scale);                        \
    }                                                                                                          \
    GENFX_KERNEL void rms_norm_##N(dptr<const T> src, dptr<const T> weight, dptr<T> dst, int cols, float eps) {\
        tensor_ops::rms_norm_rows<T>(src, weight, dst, cols, eps);                                             \
    }                                                                                                          \
    GENFX_KERNEL void layer_norm_##N(dptr<const T> src, dptr<const T> weight, dptr<const T> bias, dptr<T> dst, \
                                     int cols, float eps) {                                                    \
        tensor_ops::layer_norm_rows<T>(src, weight, bias, dst, cols, eps);                                     \
    }
TENSOR_OPS_ROWWISE(f32, float)
TENSOR_OPS_ROWWISE(bf16, bf16)
TENSOR_OPS_ROWWISE(f16, f16)

#ifdef GENFX_SIMT
#define TENSOR_OPS_REGISTER_TYPE(N)             \
    GENFX_SIMT_KERNEL(unary_##N);               \
    GENFX_SIMT_KERNEL(affine_##N);              \
    GENFX_SIMT_KERNEL(binary_##N);              \
    GENFX_SIMT_KERNEL(modulate_##N);            \
    GENFX_SIMT_KERNEL(gated_residual_##N);      \
    GENFX_SIMT_KERNEL(rope_##N);                \
    GENFX_SIMT_KERNEL(softmax_##N);             \
    GENFX_SIMT_KERNEL(softmax_f32_to_##N);      \
    GENFX_SIMT_KERNEL(rms_norm_##N);            \
    GENFX_SIMT_KERNEL(layer_norm_##N);
GENFX_SIMT_EXPORTS(tensor_ops) {
    GENFX_SIMT_KERNEL(convert_f32_f32);
    GENFX_SIMT_KERNEL(convert_f32_bf16);
    GENFX_SIMT_KERNEL(convert_f32_f16);
    GENFX_SIMT_KERNEL(convert_bf16_f32);
    GENFX_SIMT_KERNEL(convert_bf16_bf16);
    GENFX_SIMT_KERNEL(convert_bf16_f16);
    GENFX_SIMT_KERNEL(convert_f16_f32);
    GENFX_SIMT_KERNEL(convert_f16_bf16);
    GENFX_SIMT_KERNEL(convert_f16_f16);
    TENSOR_OPS_REGISTER_TYPE(f32)
    TENSOR_OPS_REGISTER_TYPE(bf16)
    TENSOR_OPS_REGISTER_TYPE(f16)
}
#endif
