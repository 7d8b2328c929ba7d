// Depth-to-space in three dimensions, as the LTX VAE upsampler does it:
// channel ((c * st + i) * sh + j) * sw + k of input voxel (t, y, x) becomes
// channel c of output voxel (t * st + i, y * sh + j, x * sw + k), and the
// first `drop_front` output frames are dropped (st - 1 for the causal VAE).
// Channels-last layout: x [B, T, H, W, C*st*sh*sw] -> y [B, T*st - drop, H*sh, W*sw, C].
#include "elementwise.cuh"

template <class T>
__device__ void depth_to_space_kernel(dptr<const T> x, dptr<T> y, int batch, int frames, int height, int width,
                                      int channels, int st, int sh, int sw, int drop_front) {
    const i64 to = i64(frames) * st - drop_front, ho = i64(height) * sh, wo = i64(width) * sw;
    const i64 n = i64(batch) * to * ho * wo * channels;
    const i64 cin = i64(channels) * st * sh * sw;
    for (i64 o = i64(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += i64(gridDim.x) * blockDim.x) {
        i64 r = o;
        const int c = int(r % channels);
        r /= channels;
        const i64 xo = r % wo;
        r /= wo;
        const i64 yo = r % ho;
        r /= ho;
        const i64 tf = r % to + drop_front;
        const i64 b = r / to;
        const i64 t = tf / st, i = tf % st, yy = yo / sh, j = yo % sh, xx = xo / sw, k = xo % sw;
        const i64 ci = ((i64(c) * st + i) * sh + j) * sw + k;
        y[o] = T(x[(((b * frames + t) * height + yy) * width + xx) * cin + ci]);
    }
}

#define GENFX_D2S(T)                                                                                          \
    extern "C" __global__ void depth_to_space_3d_##T(dptr<const T> x, dptr<T> y, int batch, int frames,        \
                                                     int height, int width, int channels, int st, int sh, int sw, \
                                                     int drop_front) {                                          \
        depth_to_space_kernel<T>(x, y, batch, frames, height, width, channels, st, sh, sw, drop_front);         \
    }
GENFX_D2S(bf16)
GENFX_D2S(f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(pixel_shuffle) {
    GENFX_SIMT_KERNEL(depth_to_space_3d_bf16);
    GENFX_SIMT_KERNEL(depth_to_space_3d_f16);
}
#endif
