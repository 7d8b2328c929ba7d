// Denoising-step kernels: the flow-matching Euler update with per-token
// sigmas and frozen conditioning tokens, the CFG + STG guidance combination
// with guidance rescale, counter-based Gaussian noise, and the transformer's
// timestep features of the step's per-token timesteps. They only read 16-bit
// values, never write them, so the module builds for sm_75 too (bf16 stores
// need sm_80).
#include "elementwise.cuh"

// out[t, c] = x[t, c] + (sigma_next[t] - sigma[t]) * v[t, c] for tokens with
// update[t] != 0 (or all tokens when `update` is null); frozen conditioning
// tokens keep their values, as LTXConditionPipeline's tokens_to_denoise_mask
// does. The update flags are f32 (0 or 1) because they live in tensors, which
// have no byte type. `out` may alias `x`.
template <class V>
__device__ void euler_step_kernel(dptr<const float> x, dptr<const V> v, dptr<const float> sigma,
                                  dptr<const float> sigma_next, dptr<const float> update, dptr<float> out,
                                  i64 tokens, int channels) {
    const i64 n = tokens * channels;
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        const i64 t = i / channels;
        const float xi = float(x[i]);
        out[i] = (update && float(update[t]) == 0.0f)
                     ? xi
                     : euler_update(xi, to_f32(V(v[i])), float(sigma[t]), float(sigma_next[t]));
    }
}

// Guidance over `items` batch items of `per_item` values each. Block
// (bx, item) combines its chunk into `out` and, when `partials` is given,
// writes [sum(out), sum(out^2), sum(cond), sum(cond^2)] of the chunk to
// partials[(item * gridDim.x + bx) * 4 ...] for guidance_rescale.
// `perturbed` may be null (CFG only; stg is then ignored).
template <class V>
__device__ void guidance_combine_kernel(dptr<const V> uncond, dptr<const V> cond, dptr<const V> perturbed,
                                        dptr<float> out, dptr<float> partials, float cfg, float stg,
                                        i64 per_item) {
    SHARED_ARRAY(float, scratch, 32);
    const i64 item_base = i64(blockIdx.y) * per_item;
    float s_out = 0.f, s_out2 = 0.f, s_cond = 0.f, s_cond2 = 0.f;
    for (i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x; j < per_item; j += i64(gridDim.x) * blockDim.x) {
        const i64 i = item_base + j;
        const float c = to_f32(V(cond[i]));
        const float u = to_f32(V(uncond[i]));
        const float p = perturbed ? to_f32(V(perturbed[i])) : c;
        const float g = guidance(u, c, p, cfg, perturbed ? stg : 0.0f);
        out[i] = g;
        s_out += g;
        s_out2 += g * g;
        s_cond += c;
        s_cond2 += c * c;
    }
    if (!partials) return;
    const float sums[4] = {s_out, s_out2, s_cond, s_cond2};
    for (int k = 0; k < 4; k++) {
        const float total = block_sum(sums[k], scratch);
        if (threadIdx.x == 0) partials[(i64(blockIdx.y) * gridDim.x + blockIdx.x) * 4 + k] = total;
    }
}

// Guidance rescale (Lin et al. 2023, diffusers rescale_noise_cfg):
// out = r * out * std(cond) / std(out) + (1 - r) * out, with the unbiased
// standard deviation over each batch item. `partials` holds `chunks` entries
// per item from guidance_combine.
extern "C" __global__ void guidance_rescale(dptr<float> out, dptr<const float> partials, float rescale,
                                            i64 per_item, int chunks) {
    SHARED_ARRAY(float, factor, 1);
    if (threadIdx.x == 0) {
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        for (int c = 0; c < chunks; c++) {
            for (int k = 0; k < 4; k++) s[k] += double(float(partials[(i64(blockIdx.y) * chunks + c) * 4 + k]));
        }
        const double n = double(per_item);
        const double var_out = (s[1] - s[0] * s[0] / n) / (n - 1.0);
        const double var_cond = (s[3] - s[2] * s[2] / n) / (n - 1.0);
        const double ratio = var_out > 0.0 ? sqrt(var_cond > 0.0 ? var_cond : 0.0) / sqrt(var_out) : 1.0;
        factor[0] = float(double(rescale) * ratio + (1.0 - double(rescale)));
    }
    __syncthreads();
    const float f = factor[0];
    const i64 item_base = i64(blockIdx.y) * per_item;
    for (i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x; j < per_item; j += i64(gridDim.x) * blockDim.x) {
        out[item_base + j] = float(out[item_base + j]) * f;
    }
}

// out[k] = normal(seed, stream, start + k): one Philox block per thread and
// group of four positions.
extern "C" __global__ void noise_normal_f32(dptr<float> out, i64 n, u64 seed, u64 stream, u64 start) {
    const u64 first_group = start / 4;
    const u64 last_group = (start + u64(n) + 3) / 4;
    for (u64 g = first_group + u64(blockIdx.x) * blockDim.x + threadIdx.x; g < last_group;
         g += u64(gridDim.x) * blockDim.x) {
        float values[4];
        normal_block(seed, stream, g, values);
        for (int k = 0; k < 4; k++) {
            const u64 pos = g * 4 + u64(k);
            if (pos >= start && pos < start + u64(n)) out[i64(pos - start)] = values[k];
        }
    }
}

// Timestep features (diffusers `Timesteps`, flip_sin_to_cos, no shift):
// out[r, k] = cos(a), out[r, half + k] = sin(a) with a = t[r] * freqs[k] formed
// in f32 as the reference forms it (the model was trained on those values),
// then sin and cos taken in f64 and rounded once, as the CPU backend does.
// The timesteps change every step and already sit on the device.
extern "C" __global__ void timestep_features_f32(dptr<const float> t, dptr<const float> freqs, dptr<float> out,
                                                 i64 rows, int half) {
    const i64 n = rows * half;
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        const i64 r = i / half;
        const int k = int(i % half);
        const double a = double(float(t[r]) * float(freqs[k]));
        out[r * 2 * half + k] = float(cos(a));
        out[r * 2 * half + half + k] = float(sin(a));
    }
}

#define GENFX_SAMPLER(V)                                                                                   \
    extern "C" __global__ void euler_step_##V(dptr<const float> x, dptr<const V> v, dptr<const float> sigma, \
                                              dptr<const float> sigma_next, dptr<const float> update,       \
                                              dptr<float> out, i64 tokens, int channels) {                  \
        euler_step_kernel<V>(x, v, sigma, sigma_next, update, out, tokens, channels);                       \
    }                                                                                                       \
    extern "C" __global__ void guidance_combine_##V(dptr<const V> uncond, dptr<const V> cond,                \
                                                    dptr<const V> perturbed, dptr<float> out,                \
                                                    dptr<float> partials, float cfg, float stg, i64 per_item) { \
        guidance_combine_kernel<V>(uncond, cond, perturbed, out, partials, cfg, stg, per_item);             \
    }
typedef float f32;
GENFX_SAMPLER(f32)
GENFX_SAMPLER(bf16)
GENFX_SAMPLER(f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(sampler) {
    GENFX_SIMT_KERNEL(euler_step_f32);
    GENFX_SIMT_KERNEL(euler_step_bf16);
    GENFX_SIMT_KERNEL(euler_step_f16);
    GENFX_SIMT_KERNEL(guidance_combine_f32);
    GENFX_SIMT_KERNEL(guidance_combine_bf16);
    GENFX_SIMT_KERNEL(guidance_combine_f16);
    GENFX_SIMT_KERNEL(guidance_rescale);
    GENFX_SIMT_KERNEL(noise_normal_f32);
    GENFX_SIMT_KERNEL(timestep_features_f32);
}
#endif
