// Depth-to-space and space-to-depth in three dimensions, as the LTX VAE's
// upsamplers, downsamplers and (un)patchify do them, on the layout its
// tensors have: x [B, C*st*sh*sw, T, H, W] <-> y [B, C, T*st - drop_front,
// H*sh, W*sw] (the first `drop_front` output frames are dropped: st - 1 for
// the causal VAE). `order` 0 packs sub-position (a, i, j) of channel c into
// channel ((c*st + a)*sh + i)*sw + j (the samplers), 1 into
// ((c*st + a)*sw + j)*sh + i (patchify). One thread per output element.
#include "elementwise.cuh"

__device__ __forceinline__ i64 sub_channel(int order, i64 c, i64 a, i64 i, i64 j, int st, int sh, int sw) {
    return order == 0 ? ((c * st + a) * sh + i) * sw + j : ((c * st + a) * sw + j) * sh + i;
}

// channels, frames, height, width: the output's channels and the input's
// frames, height and width.
template <class T>
__device__ void depth_to_space_ncdhw_kernel(dptr<const T> x, dptr<T> y, int batch, int channels, int frames,
                                            int height, int width, int st, int sh, int sw, int drop_front,
                                            int order) {
    const i64 to = i64(frames) * st - drop_front, ho = i64(height) * sh, wo = i64(width) * sw;
    const i64 n = i64(batch) * channels * to * ho * wo;
    const i64 cin = i64(channels) * st * sh * sw, plane = i64(height) * width;
    for (i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += i64(gridDim.x) * blockDim.x) {
        i64 r = o;
        const i64 xo = r % wo;
        r /= wo;
        const i64 yo = r % ho;
        r /= ho;
        const i64 tf = r % to + drop_front;
        r /= to;
        const i64 c = r % channels, b = r / channels;
        const i64 ci = sub_channel(order, c, tf % st, yo % sh, xo % sw, st, sh, sw);
        y[o] = T(x[((b * cin + ci) * frames + tf / st) * plane + (yo / sh) * width + xo / sw]);
    }
}

// channels, frames, height, width: the input's.
template <class T>
__device__ void space_to_depth_ncdhw_kernel(dptr<const T> x, dptr<T> y, int batch, int channels, int frames,
                                            int height, int width, int st, int sh, int sw, int order) {
    const i64 to = frames / st, ho = height / sh, wo = width / sw, block = i64(st) * sh * sw;
    const i64 cout = i64(channels) * block;
    const i64 n = i64(batch) * cout * to * ho * wo;
    for (i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += i64(gridDim.x) * blockDim.x) {
        i64 r = o;
        const i64 xo = r % wo;
        r /= wo;
        const i64 yo = r % ho;
        r /= ho;
        const i64 t = r % to;
        r /= to;
        const i64 oc = r % cout, b = r / cout;
        const i64 c = oc / block, s = oc % block;
        i64 a, i, j;
        if (order == 0) {
            a = s / (sh * sw), i = (s / sw) % sh, j = s % sw;
        } else {
            a = s / (sh * sw), j = (s / sh) % sw, i = s % sh;
        }
        y[o] = T(x[(((b * channels + c) * frames + t * st + a) * height + yo * sh + i) * width + xo * sw + j]);
    }
}

#define GENFX_VOLUME_SHUFFLE(N, T)                                                                             \
    extern "C" __global__ void depth_to_space_ncdhw_##N(dptr<const T> x, dptr<T> y, int batch, int channels,   \
                                                        int frames, int height, int width, int st, int sh,      \
                                                        int sw, int drop_front, int order) {                    \
        depth_to_space_ncdhw_kernel<T>(x, y, batch, channels, frames, height, width, st, sh, sw, drop_front,    \
                                       order);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void space_to_depth_ncdhw_##N(dptr<const T> x, dptr<T> y, int batch, int channels,   \
                                                        int frames, int height, int width, int st, int sh,      \
                                                        int sw, int order) {                                    \
        space_to_depth_ncdhw_kernel<T>(x, y, batch, channels, frames, height, width, st, sh, sw, order);        \
    }
GENFX_VOLUME_SHUFFLE(f32, float)
GENFX_VOLUME_SHUFFLE(bf16, bf16)
GENFX_VOLUME_SHUFFLE(f16, f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(pixel_shuffle) {
    GENFX_SIMT_KERNEL(depth_to_space_ncdhw_f32);
    GENFX_SIMT_KERNEL(depth_to_space_ncdhw_bf16);
    GENFX_SIMT_KERNEL(depth_to_space_ncdhw_f16);
    GENFX_SIMT_KERNEL(space_to_depth_ncdhw_f32);
    GENFX_SIMT_KERNEL(space_to_depth_ncdhw_bf16);
    GENFX_SIMT_KERNEL(space_to_depth_ncdhw_f16);
}
#endif
