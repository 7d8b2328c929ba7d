// Per-element math of the simple kernels, as __host__ __device__ functions:
// the kernels call them on the GPU, and the same definitions compile for the
// CPU, where the tests compare them with the Rust CPU ops.
#pragma once

#include "common.cuh"

// GELU with the tanh approximation (PyTorch approximate="tanh"; T5's gelu_new).
GENFX_HD float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

GENFX_HD float silu(float x) { return x / (1.0f + expf(-x)); }

// Flow-matching Euler step of one value: the model predicts the velocity v,
// and the sample moves from sigma to sigma_next along it.
GENFX_HD float euler_update(float x, float v, float sigma, float sigma_next) { return x + (sigma_next - sigma) * v; }

// Classifier-free plus spatio-temporal guidance, as LTXConditionPipeline:
// uncond + cfg (cond - uncond) + stg (cond - perturbed).
GENFX_HD float guidance(float uncond, float cond, float perturbed, float cfg, float stg) {
    return uncond + cfg * (cond - uncond) + stg * (cond - perturbed);
}

// One interleaved RoPE pair (LTX: x_rotated = [-x1, x0] per pair).
GENFX_HD void rope_pair(float x0, float x1, float c0, float s0, float c1, float s1, float& y0, float& y1) {
    y0 = x0 * c0 - x1 * s0;
    y1 = x1 * c1 + x0 * s1;
}

// --- counter-based noise (same recipe as src/sampler/noise.rs) --------------------------
GENFX_HD u32 mulhi32(u32 a, u32 b) { return u32((u64(a) * u64(b)) >> 32); }

// Philox4x32-10 (Salmon et al. 2011).
GENFX_HD void philox4x32_10(u32 (&ctr)[4], u32 k0, u32 k1) {
    const u32 M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += W0;
            k1 += W1;
        }
        const u32 hi0 = mulhi32(M0, ctr[0]), lo0 = M0 * ctr[0];
        const u32 hi1 = mulhi32(M1, ctr[2]), lo1 = M1 * ctr[2];
        const u32 c0 = hi1 ^ ctr[1] ^ k0, c2 = hi0 ^ ctr[3] ^ k1;
        ctr[0] = c0;
        ctr[1] = lo1;
        ctr[2] = c2;
        ctr[3] = lo0;
    }
}

// The four normal values of Philox block `group` = positions 4 group .. 4 group + 3.
GENFX_HD void normal_block(u64 seed, u64 stream, u64 group, float (&out)[4]) {
    u32 b[4] = {u32(group), u32(group >> 32), u32(stream), u32(stream >> 32)};
    philox4x32_10(b, u32(seed), u32(seed >> 32));
    const double two_pow_32 = 4294967296.0;
    const double two_pi = 2.0 * 3.14159265358979323846;
    for (int p = 0; p < 2; p++) {
        const double u1 = (double(b[2 * p]) + 1.0) / two_pow_32;
        const double u2 = double(b[2 * p + 1]) / two_pow_32;
        const double r = sqrt(-2.0 * log(u1));
        const double t = two_pi * u2;
        out[2 * p] = float(r * cos(t));
        out[2 * p + 1] = float(r * sin(t));
    }
}

// --- frame conversion ----------------------------------------------------------------------
// Host samples in [0, 1] (unorm integers or float) <-> model values in [-1, 1].
GENFX_HD float sample_to_unit(u8 v) { return float(v) * (1.0f / 255.0f); }
GENFX_HD float sample_to_unit(u16 v) { return float(v) * (1.0f / 65535.0f); }
GENFX_HD float sample_to_unit(float v) { return v; }
GENFX_HD float unit_to_model(float u) { return 2.0f * u - 1.0f; }
// Back to the host, clamped to [0, 1] as the reference postprocessing does.
GENFX_HD float model_to_unit(float m) {
    float u = 0.5f * m + 0.5f;
    return u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u);
}
template <class S>
GENFX_HD S unit_to_sample(float u);
template <>
GENFX_HD u8 unit_to_sample<u8>(float u) {
    return u8(u * 255.0f + 0.5f);
}
template <>
GENFX_HD u16 unit_to_sample<u16>(float u) {
    return u16(u * 65535.0f + 0.5f);
}
template <>
GENFX_HD float unit_to_sample<float>(float u) {
    return u;
}
