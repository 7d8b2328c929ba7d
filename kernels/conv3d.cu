// Causal 3-D convolution for the VAE as an implicit GEMM: output voxels x
// output channels, reduced over (c_in, dt, dy, dx), with the im2col gather
// done while loading the tile, so no unfolded copy of the input exists.
// Stride 1. Temporal padding replicates the edge frames (LTX's causal
// convolution pads the front with copies of the first frame; the non-causal
// one pads both ends); spatial padding is zeros. f32 FMA arithmetic: the
// path for f32 data and for cards before Ampere; 16-bit data on sm_80 and up
// runs conv3d_mma.cu (same parameters, tensor cores).
//
// The layout the VAE's tensors have (PyTorch's): x [B, Cin, T, H, W],
// w [Cout, Cin, kt, kh, kw] as stored, bias [Cout] or null, residual
// [B, Cout, T, H, W] or null (added in the same pass, as the resnet's
// shortcut), y [B, Cout, T, H, W]. Output frames, rows and columns equal the
// input's: time is padded `pad_t_front` before and kt - 1 - pad_t_front
// after, space by kh / 2 and kw / 2. Consecutive output voxels of one
// channel are consecutive addresses, so the tile's voxel index runs fastest
// across threads when gathering the input and when storing.
//
// Tiles of 64 voxels x 64 channels x 16 of the reduction, 256 threads each
// accumulating 4 x 4 in f32. Grid (ceil(M / 64), ceil(Cout / 64)).
#include "elementwise.cuh"

template <class T>
__device__ void conv3d_ncdhw_kernel(dptr<const T> x, dptr<const T> w, dptr<const T> bias, dptr<const T> residual,
                                    dptr<T> y, int batch, int frames, int height, int width, int c_in, int c_out,
                                    int kt, int kh, int kw, int pad_t_front) {
    constexpr int BM = 64, BN = 64, BK = 16;
    SHARED_ARRAY(float, sa, BK * BM);
    SHARED_ARRAY(float, sb, BK * BN);
    const i64 plane = i64(height) * width;
    const i64 per_item = i64(frames) * plane;
    const i64 M = i64(batch) * per_item;
    const int taps = kt * kh * kw;
    const int K = c_in * taps;
    const int pad_h = kh / 2, pad_w = kw / 2;
    const i64 m0 = i64(blockIdx.x) * BM;
    const int n0 = int(blockIdx.y) * BN;
    const int tid = int(threadIdx.x), tx = tid % 16, ty = tid / 16;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int q = 0; q < (BM * BK) / 256; q++) {
            const int e = tid + 256 * q, mm = e % BM, kk = e / BM;
            const i64 m = m0 + mm;
            const int k = k0 + kk;
            float v = 0.0f;
            if (m < M && k < K) {
                const i64 b = m / per_item, r = m % per_item;
                const int to = int(r / plane), ho = int((r % plane) / width), wo = int(r % width);
                const int ci = k / taps, rk = k % taps;
                const int dt = rk / (kh * kw), dy = (rk / kw) % kh, dx = rk % kw;
                int ti = to + dt - pad_t_front;
                ti = ti < 0 ? 0 : (ti >= frames ? frames - 1 : ti);
                const int hi = ho + dy - pad_h, wi = wo + dx - pad_w;
                if (hi >= 0 && hi < height && wi >= 0 && wi < width) {
                    v = to_f32(T(x[((b * c_in + ci) * frames + ti) * plane + i64(hi) * width + wi]));
                }
            }
            sa[kk * BM + mm] = v;
        }
        for (int q = 0; q < (BN * BK) / 256; q++) {
            const int e = tid + 256 * q, nn = e / BK, kk = e % BK;
            const int n = n0 + nn, k = k0 + kk;
            sb[kk * BN + nn] = (n < c_out && k < K) ? to_f32(T(w[i64(n) * K + k])) : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < BK; kk++) {
            float a[4], bv[4];
            for (int i = 0; i < 4; i++) a[i] = sa[kk * BM + tx * 4 + i];
            for (int j = 0; j < 4; j++) bv[j] = sb[kk * BN + ty * 4 + j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        const i64 m = m0 + tx * 4 + i;
        if (m >= M) continue;
        const i64 b = m / per_item, r = m % per_item;
        for (int j = 0; j < 4; j++) {
            const int n = n0 + ty * 4 + j;
            if (n >= c_out) continue;
            const i64 o = (b * c_out + n) * per_item + r;
            float v = acc[i][j];
            if (bias) v += to_f32(T(bias[n]));
            if (residual) v += to_f32(T(residual[o]));
            y[o] = from_f32<T>(v);
        }
    }
}

#define GENFX_CONV3D_NCDHW(N, T)                                                                                  \
    extern "C" __global__ void conv3d_ncdhw_##N(dptr<const T> x, dptr<const T> w, dptr<const T> bias,              \
                                                dptr<const T> residual, dptr<T> y, int batch, int frames,           \
                                                int height, int width, int c_in, int c_out, int kt, int kh, int kw, \
                                                int pad_t_front) {                                                  \
        conv3d_ncdhw_kernel<T>(x, w, bias, residual, y, batch, frames, height, width, c_in, c_out, kt, kh, kw,      \
                               pad_t_front);                                                                        \
    }
GENFX_CONV3D_NCDHW(f32, float)
GENFX_CONV3D_NCDHW(bf16, bf16)
GENFX_CONV3D_NCDHW(f16, f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(conv3d) {
    GENFX_SIMT_KERNEL(conv3d_ncdhw_f32);
    GENFX_SIMT_KERNEL(conv3d_ncdhw_bf16);
    GENFX_SIMT_KERNEL(conv3d_ncdhw_f16);
}
#endif
