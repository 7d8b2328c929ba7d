// Layout and generic tensor kernels of the CUDA backend: strided copies with
// dtype conversion, elementwise maps, softmax and the normalisations, for
// f32, bf16 and f16 storage with f32 arithmetic.
//
// These serve the backend interface's general ops (any strides, broadcast
// operands). The model's fused hot-path kernels live in kernels/.
//
// No CUDA headers are included, so NVRTC compiles this without a toolkit's
// include folder: 16-bit values are handled as raw bits, converted with PTX
// `cvt` instructions (f16) or bit shifts (bf16).

#define MAX_RANK 8

typedef unsigned short u16;
typedef long long i64;

#define NEG_INF __int_as_float(0xff800000)

// A view into a buffer, in elements. Mirrors `StridedArg` in Rust.
struct Strided {
    int rank;
    int pad_;
    i64 offset;
    i64 dims[MAX_RANK];
    i64 strides[MAX_RANK];
};

// Storage offset of the i-th element in row-major order of `l.dims`.
__device__ __forceinline__ i64 strided_index(const Strided& l, i64 i) {
    i64 at = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        i64 n = l.dims[d];
        at += (i % n) * l.strides[d];
        i /= n;
    }
    return at;
}

struct F32 {
    typedef float T;
    static __device__ __forceinline__ float load(const T* p) { return *p; }
    static __device__ __forceinline__ void store(T* p, float v) { *p = v; }
};

struct BF16 {
    typedef u16 T;
    static __device__ __forceinline__ float load(const T* p) {
        return __uint_as_float(((unsigned)*p) << 16);
    }
    // round to nearest even; NaN stays a (quiet) NaN
    static __device__ __forceinline__ void store(T* p, float v) {
        unsigned u = __float_as_uint(v);
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            *p = (u16)((u >> 16) | 0x40u);
            return;
        }
        u += 0x7fffu + ((u >> 16) & 1u);
        *p = (u16)(u >> 16);
    }
};

struct F16 {
    typedef u16 T;
    static __device__ __forceinline__ float load(const T* p) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(*p));
        return f;
    }
    static __device__ __forceinline__ void store(T* p, float v) {
        u16 h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
        *p = h;
    }
};

// Grid-stride loop over n elements.
#define FOR_EACH(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// dst (own layout) <- src (own layout), both walked in the order of src's dims.
template <class S, class D>
__device__ void convert(const typename S::T* src, Strided sl, typename D::T* dst, Strided dl, i64 n) {
    FOR_EACH(i, n) { D::store(dst + strided_index(dl, i), S::load(src + strided_index(sl, i))); }
}

#define CONVERT(SN, S, DN, D)                                                                        \
    extern "C" __global__ void convert_##SN##_##DN(const S::T* src, Strided sl, D::T* dst, Strided dl, \
                                                   i64 n) {                                         \
        convert<S, D>(src, sl, dst, dl, n);                                                         \
    }
CONVERT(f32, F32, f32, F32)
CONVERT(f32, F32, bf16, BF16)
CONVERT(f32, F32, f16, F16)
CONVERT(bf16, BF16, f32, F32)
CONVERT(bf16, BF16, bf16, BF16)
CONVERT(bf16, BF16, f16, F16)
CONVERT(f16, F16, f32, F32)
CONVERT(f16, F16, bf16, BF16)
CONVERT(f16, F16, f16, F16)

// Unary op codes; must match `unary_code` in ops.rs.
__device__ __forceinline__ float unary_fn(int op, float x) {
    switch (op) {
        case 0: {  // GELU, tanh approximation
            float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
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
        default: return __int_as_float(0x7fc00000);
    }
}

// Binary op codes; must match `binary_code` in ops.rs.
__device__ __forceinline__ float binary_fn(int op, float a, float b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return fmaxf(a, b);
        case 5: return fminf(a, b);
        default: return __int_as_float(0x7fc00000);
    }
}

#define ELEMENTWISE(N, X)                                                                           \
    extern "C" __global__ void unary_##N(const X::T* src, Strided l, X::T* dst, i64 n, int op) {     \
        FOR_EACH(i, n) { X::store(dst + i, unary_fn(op, X::load(src + strided_index(l, i)))); }     \
    }                                                                                               \
    extern "C" __global__ void affine_##N(const X::T* src, Strided l, X::T* dst, i64 n, float mul,  \
                                          float add) {                                              \
        FOR_EACH(i, n) { X::store(dst + i, X::load(src + strided_index(l, i)) * mul + add); }       \
    }                                                                                               \
    extern "C" __global__ void binary_##N(const X::T* a, Strided la, const X::T* b, Strided lb,      \
                                          X::T* dst, i64 n, int op) {                               \
        FOR_EACH(i, n) {                                                                            \
            float x = X::load(a + strided_index(la, i));                                            \
            float y = X::load(b + strided_index(lb, i));                                            \
            X::store(dst + i, binary_fn(op, x, y));                                                 \
        }                                                                                           \
    }                                                                                               \
    /* x * (1 + scale) + shift; x contiguous */                                                     \
    extern "C" __global__ void modulate_##N(const X::T* x, const X::T* shift, Strided lsh,          \
                                            const X::T* scale, Strided lsc, X::T* dst, i64 n) {     \
        FOR_EACH(i, n) {                                                                            \
            float v = X::load(x + i);                                                               \
            float s = X::load(scale + strided_index(lsc, i));                                       \
            float t = X::load(shift + strided_index(lsh, i));                                       \
            X::store(dst + i, v * (1.0f + s) + t);                                                  \
        }                                                                                           \
    }                                                                                               \
    /* x + gate * y; x and y contiguous */                                                          \
    extern "C" __global__ void gated_residual_##N(const X::T* x, const X::T* gate, Strided lg,      \
                                                  const X::T* y, X::T* dst, i64 n) {                \
        FOR_EACH(i, n) {                                                                            \
            float g = X::load(gate + strided_index(lg, i));                                         \
            X::store(dst + i, X::load(x + i) + g * X::load(y + i));                                 \
        }                                                                                           \
    }                                                                                               \
    /* interleaved pairs (x0, x1): (x0 c - x1 s, x1 c + x0 s); x contiguous, even last dim */       \
    extern "C" __global__ void rope_##N(const X::T* x, const X::T* cos, Strided lc, const X::T* sin, \
                                        Strided ls, X::T* dst, i64 n) {                             \
        FOR_EACH(i, n) {                                                                            \
            float c = X::load(cos + strided_index(lc, i));                                          \
            float s = X::load(sin + strided_index(ls, i));                                          \
            float v = X::load(x + i);                                                               \
            float out = (i & 1) ? v * c + X::load(x + i - 1) * s : v * c - X::load(x + i + 1) * s;  \
            X::store(dst + i, out);                                                                 \
        }                                                                                           \
    }

ELEMENTWISE(f32, F32)
ELEMENTWISE(bf16, BF16)
ELEMENTWISE(f16, F16)

// Block-wide sum or max of one value per thread (blockDim.x a multiple of 32,
// at most 1024). Every thread gets the result.
template <bool IS_MAX>
__device__ float block_reduce(float v) {
    __shared__ float partial[32];
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // `partial` may still be read by a previous call
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int warps = blockDim.x >> 5;
    v = lane < warps ? partial[lane] : (IS_MAX ? NEG_INF : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = IS_MAX ? fmaxf(v, w) : v + w;
    }
    return v;
}

// One block per row of `cols` contiguous values.
// dst = softmax(scale * src + bias); `bias` (may be null) is one row of
// `cols` shared by `rows_per_bias` consecutive rows, advancing after them.
template <class S, class D>
__device__ void softmax_rows(const typename S::T* src, const typename S::T* bias, i64 rows_per_bias,
                             typename D::T* dst, int cols, float scale) {
    i64 row = blockIdx.x;
    const typename S::T* in = src + row * cols;
    typename D::T* out = dst + row * cols;
    const typename S::T* b = bias ? bias + (row / rows_per_bias) * cols : 0;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = S::load(in + j) * scale + (b ? S::load(b + j) : 0.0f);
        m = fmaxf(m, v);
    }
    m = block_reduce<true>(m);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = S::load(in + j) * scale + (b ? S::load(b + j) : 0.0f);
        sum += __expf(v - m);
    }
    sum = block_reduce<false>(sum);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = S::load(in + j) * scale + (b ? S::load(b + j) : 0.0f);
        D::store(out + j, __expf(v - m) * inv);
    }
}

// One block per row; `weight`/`bias` may be null.
template <class X>
__device__ void rms_norm_rows(const typename X::T* src, const typename X::T* weight, typename X::T* dst,
                              int cols, float eps) {
    i64 row = blockIdx.x;
    const typename X::T* in = src + row * cols;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = X::load(in + j);
        ss += v * v;
    }
    ss = block_reduce<false>(ss);
    float r = rsqrtf(ss / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = X::load(in + j) * r;
        if (weight) v *= X::load(weight + j);
        X::store(dst + row * cols + j, v);
    }
}

template <class X>
__device__ void layer_norm_rows(const typename X::T* src, const typename X::T* weight,
                                const typename X::T* bias, typename X::T* dst, int cols, float eps) {
    i64 row = blockIdx.x;
    const typename X::T* in = src + row * cols;
    float s = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += X::load(in + j);
    float mean = block_reduce<false>(s) / cols;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = X::load(in + j) - mean;
        ss += d * d;
    }
    float r = rsqrtf(block_reduce<false>(ss) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = (X::load(in + j) - mean) * r;
        if (weight) v *= X::load(weight + j);
        if (bias) v += X::load(bias + j);
        X::store(dst + row * cols + j, v);
    }
}

#define ROWWISE(N, X)                                                                               \
    extern "C" __global__ void softmax_##N(const X::T* src, const X::T* bias, i64 rows_per_bias,     \
                                           X::T* dst, int cols, float scale) {                      \
        softmax_rows<X, X>(src, bias, rows_per_bias, dst, cols, scale);                             \
    }                                                                                               \
    /* attention scores kept in f32, probabilities stored as N */                                   \
    extern "C" __global__ void softmax_f32_to_##N(const float* src, const float* bias,               \
                                                  i64 rows_per_bias, X::T* dst, int cols,           \
                                                  float scale) {                                    \
        softmax_rows<F32, X>(src, bias, rows_per_bias, dst, cols, scale);                           \
    }                                                                                               \
    extern "C" __global__ void rms_norm_##N(const X::T* src, const X::T* weight, X::T* dst, int cols, \
                                            float eps) {                                            \
        rms_norm_rows<X>(src, weight, dst, cols, eps);                                              \
    }                                                                                               \
    extern "C" __global__ void layer_norm_##N(const X::T* src, const X::T* weight, const X::T* bias,  \
                                              X::T* dst, int cols, float eps) {                     \
        layer_norm_rows<X>(src, weight, bias, dst, cols, eps);                                      \
    }

ROWWISE(f32, F32)
ROWWISE(bf16, BF16)
ROWWISE(f16, F16)
