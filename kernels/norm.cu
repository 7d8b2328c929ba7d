// Row normalisation fused with AdaLN modulation, and the gated residual add.
#include "elementwise.cuh"

// One block per row (blockDim.x a multiple of 32):
//   n = RMSNorm(x) or LayerNorm(x) over `cols`, f32 statistics
//   n = n * weight + bias            (each optional, per column)
//   y = n * (1 + scale) + shift      (optional; AdaLN rows, see below)
// scale/shift row = row / rows_per_mod, so per-token modulation uses 1 and
// per-sample modulation uses the tokens per sample; `mod_ld` is their row
// stride. LayerNorm uses the two-pass variance.
template <class T>
__device__ void norm_modulate_kernel(dptr<const T> x, dptr<const T> weight, dptr<const T> bias,
                                     dptr<const T> scale, dptr<const T> shift, dptr<T> y, int rows, int cols,
                                     i64 x_ld, i64 y_ld, i64 mod_ld, int rows_per_mod, float eps,
                                     int layer_norm) {
    SHARED_ARRAY(float, scratch, 32);
    const int row = int(blockIdx.x);
    if (row >= rows) return;
    dptr<const T> xr = x + i64(row) * x_ld;
    float mean = 0.0f;
    if (layer_norm) {
        float s = 0.0f;
        for (int c = int(threadIdx.x); c < cols; c += int(blockDim.x)) s += to_f32(T(xr[c]));
        mean = block_sum(s, scratch) / float(cols);
    }
    float ss = 0.0f;
    for (int c = int(threadIdx.x); c < cols; c += int(blockDim.x)) {
        const float d = to_f32(T(xr[c])) - mean;
        ss += d * d;
    }
    const float rstd = rsqrtf(block_sum(ss, scratch) / float(cols) + eps);
    const i64 mrow = i64(row / rows_per_mod) * mod_ld;
    dptr<T> yr = y + i64(row) * y_ld;
    for (int c = int(threadIdx.x); c < cols; c += int(blockDim.x)) {
        float v = (to_f32(T(xr[c])) - mean) * rstd;
        if (weight) v *= to_f32(T(weight[c]));
        if (bias) v += to_f32(T(bias[c]));
        if (scale) v = v * (1.0f + to_f32(T(scale[mrow + c]))) + to_f32(T(shift[mrow + c]));
        yr[c] = from_f32<T>(v);
    }
}

// x += gate * y (gate optional, rows like the AdaLN modulation above).
template <class T>
__device__ void gated_residual_kernel(dptr<T> x, dptr<const T> y, dptr<const T> gate, int rows, int cols, i64 x_ld,
                                      i64 y_ld, i64 gate_ld, int rows_per_gate) {
    const i64 n = i64(rows) * cols;
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        const i64 r = i / cols, c = i % cols;
        float g = gate ? to_f32(T(gate[(r / rows_per_gate) * gate_ld + c])) : 1.0f;
        const i64 xi = r * x_ld + c;
        x[xi] = from_f32<T>(to_f32(T(x[xi])) + g * to_f32(T(y[r * y_ld + c])));
    }
}

#define GENFX_NORMS(T)                                                                                      \
    extern "C" __global__ void norm_modulate_##T(dptr<const T> x, dptr<const T> weight, dptr<const T> bias,   \
                                                 dptr<const T> scale, dptr<const T> shift, dptr<T> y, int rows, \
                                                 int cols, i64 x_ld, i64 y_ld, i64 mod_ld, int rows_per_mod,    \
                                                 float eps, int layer_norm) {                                   \
        norm_modulate_kernel<T>(x, weight, bias, scale, shift, y, rows, cols, x_ld, y_ld, mod_ld, rows_per_mod, \
                                eps, layer_norm);                                                               \
    }                                                                                                           \
    extern "C" __global__ void gated_residual_##T(dptr<T> x, dptr<const T> y, dptr<const T> gate, int rows,   \
                                                  int cols, i64 x_ld, i64 y_ld, i64 gate_ld, int rows_per_gate) { \
        gated_residual_kernel<T>(x, y, gate, rows, cols, x_ld, y_ld, gate_ld, rows_per_gate);                 \
    }
GENFX_NORMS(bf16)
GENFX_NORMS(f16)

// RMS norm across the channels of x [batch, channels, positions] (the VAE's
// RMSNorm over movedim(1, -1)), no learned weight, then the optional
// per-(batch, channel) modulation y * (1 + scale) + shift (scale and shift
// [batch, channels], both or neither) and SiLU. One thread per (batch,
// position): neighbouring threads read neighbouring positions of the same
// channel, so every pass over the channels is coalesced; f32 statistics.
template <class T>
__device__ void channel_rms_norm_kernel(dptr<const T> x, dptr<const T> scale, dptr<const T> shift, dptr<T> y,
                                        int batch, int channels, i64 positions, float eps, int apply_silu) {
    const i64 n = i64(batch) * positions;
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        const i64 b = i / positions, p = i % positions;
        const i64 base = b * channels * positions + p;
        float ss = 0.0f;
        for (int c = 0; c < channels; c++) {
            const float v = to_f32(T(x[base + c * positions]));
            ss += v * v;
        }
        const float r = 1.0f / sqrtf(ss / float(channels) + eps);
        for (int c = 0; c < channels; c++) {
            float v = to_f32(T(x[base + c * positions])) * r;
            if (scale) {
                const i64 m = b * channels + c;
                v = v * (1.0f + to_f32(T(scale[m]))) + to_f32(T(shift[m]));
            }
            if (apply_silu) v = silu(v);
            y[base + c * positions] = from_f32<T>(v);
        }
    }
}

#define GENFX_CHANNEL_NORM(N, T)                                                                               \
    extern "C" __global__ void channel_rms_norm_##N(dptr<const T> x, dptr<const T> scale, dptr<const T> shift, \
                                                    dptr<T> y, int batch, int channels, i64 positions,         \
                                                    float eps, int apply_silu) {                                \
        channel_rms_norm_kernel<T>(x, scale, shift, y, batch, channels, positions, eps, apply_silu);           \
    }
GENFX_CHANNEL_NORM(f32, float)
GENFX_CHANNEL_NORM(bf16, bf16)
GENFX_CHANNEL_NORM(f16, f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(norm) {
    GENFX_SIMT_KERNEL(norm_modulate_bf16);
    GENFX_SIMT_KERNEL(norm_modulate_f16);
    GENFX_SIMT_KERNEL(gated_residual_bf16);
    GENFX_SIMT_KERNEL(gated_residual_f16);
    GENFX_SIMT_KERNEL(channel_rms_norm_f32);
    GENFX_SIMT_KERNEL(channel_rms_norm_bf16);
    GENFX_SIMT_KERNEL(channel_rms_norm_f16);
}
#endif
