// Elementwise activations: GELU (tanh), SiLU, and T5's gated GELU fused with
// its product so the gate never makes a separate pass.
#include "elementwise.cuh"

template <class T>
__device__ void gelu_tanh_kernel(dptr<const T> x, dptr<T> y, i64 n) {
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        y[i] = from_f32<T>(gelu_tanh(to_f32(T(x[i]))));
    }
}
template <class T>
__device__ void silu_kernel(dptr<const T> x, dptr<T> y, i64 n) {
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        y[i] = from_f32<T>(silu(to_f32(T(x[i]))));
    }
}
// y = gelu_tanh(gate) * up
template <class T>
__device__ void gelu_tanh_mul_kernel(dptr<const T> gate, dptr<const T> up, dptr<T> y, i64 n) {
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        y[i] = from_f32<T>(gelu_tanh(to_f32(T(gate[i]))) * to_f32(T(up[i])));
    }
}

#define GENFX_ACTIVATIONS(T)                                                                              \
    extern "C" __global__ void gelu_tanh_##T(dptr<const T> x, dptr<T> y, i64 n) { gelu_tanh_kernel<T>(x, y, n); } \
    extern "C" __global__ void silu_##T(dptr<const T> x, dptr<T> y, i64 n) { silu_kernel<T>(x, y, n); }          \
    extern "C" __global__ void gelu_tanh_mul_##T(dptr<const T> gate, dptr<const T> up, dptr<T> y, i64 n) {       \
        gelu_tanh_mul_kernel<T>(gate, up, y, n);                                                              \
    }
GENFX_ACTIVATIONS(bf16)
GENFX_ACTIVATIONS(f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(activation) {
    GENFX_SIMT_KERNEL(gelu_tanh_bf16);
    GENFX_SIMT_KERNEL(silu_bf16);
    GENFX_SIMT_KERNEL(gelu_tanh_mul_bf16);
    GENFX_SIMT_KERNEL(gelu_tanh_f16);
    GENFX_SIMT_KERNEL(silu_f16);
    GENFX_SIMT_KERNEL(gelu_tanh_mul_f16);
}
#endif
