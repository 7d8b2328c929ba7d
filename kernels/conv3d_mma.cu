// The VAE's 3-D convolution on tensor cores: the same implicit GEMM and the
// same parameters as conv3d.cu (output voxels x output channels, reduced over
// (c_in, dt, dy, dx), the im2col gather done while loading the tile), with
// 16-bit inputs multiplied by mma.sync m16n8k16 and f32 accumulation. Stride
// 1; time padded `pad_t_front` before and kt - 1 - pad_t_front after by
// replicating the edge frames, space by kh / 2 and kw / 2 zeros; bias [Cout]
// and residual [B, Cout, T, H, W] (both nullable) added in the epilogue.
// Layouts as in conv3d.cu: x [B, Cin, T, H, W], w [Cout, Cin, kt, kh, kw].
//
// A separate module because mma.sync with 16-bit inputs is an Ampere
// instruction: the backend loads it only on compute capability 8.0 and up,
// and conv3d.cu (f32 FMA) stays the path for f32 and older cards.
//
// Block: 256 threads = 8 warps over a tile of 128 voxels x 64 channels,
// warps 4 (voxels) x 2 (channels), each warp 32 x 32 = 2 x 4 mma tiles.
// The reduction advances 32 at a time. Shared memory holds the gathered
// input tile k-major (voxels contiguous, as the gather reads them), which
// ldmatrix .trans turns into row-major A fragments, and the weight tile
// channel-major (k contiguous, as stored), read by plain ldmatrix as the
// column-major B fragments. The next tile's global loads go to registers
// before this tile's MMAs, so they overlap. Rows padded by 8 elements keep
// every ldmatrix row 16-byte aligned and spread over the banks.
//
// Grid (ceil(M / 128), ceil(Cout / 64)), M = B * T * H * W.
#include "common.cuh"

namespace conv_mma {
constexpr int BM = 128, BN = 64, BK = 32, THREADS = 256;
constexpr int LDA = BM + 8, LDB = BK + 8;
constexpr int A_LOADS = BM * BK / THREADS, B_LOADS = BN * BK / THREADS;

// Where this thread's gathered voxel sits in the input (fixed for the whole
// reduction: each thread always gathers the same voxel column of the tile).
struct Voxel {
    bool valid;
    i64 item_base;  // offset of (b, ci = 0, t = 0, 0, 0) in x
    int t, h, w;
};

struct Geometry {
    int frames, height, width, c_in, kt, kh, kw, taps, K, pad_t_front, pad_h, pad_w;
    i64 plane;
};

template <class T>
__device__ __forceinline__ T zero() {
    T z;
    z.bits = 0;
    return z;
}

// Input value for reduction index k of `v`: zero outside the volume in
// space or past the reduction, the edge frame outside it in time.
template <class T>
__device__ __forceinline__ T gather(dptr<const T> x, const Voxel& v, const Geometry& g, int k) {
    if (!v.valid || k >= g.K) return zero<T>();
    const int ci = k / g.taps, rk = k % g.taps;
    const int dt = rk / (g.kh * g.kw), dy = (rk / g.kw) % g.kh, dx = rk % g.kw;
    int ti = v.t + dt - g.pad_t_front;
    ti = ti < 0 ? 0 : (ti >= g.frames ? g.frames - 1 : ti);
    const int hi = v.h + dy - g.pad_h, wi = v.w + dx - g.pad_w;
    if (hi < 0 || hi >= g.height || wi < 0 || wi >= g.width) return zero<T>();
    return x[v.item_base + (i64(ci) * g.frames + ti) * g.plane + i64(hi) * g.width + wi];
}

template <class T>
__device__ void forward(dptr<const T> x, dptr<const T> w, dptr<const T> bias, dptr<const T> residual, dptr<T> y,
                        int batch, int frames, int height, int width, int c_in, int c_out, int kt, int kh, int kw,
                        int pad_t_front) {
    SHARED_ARRAY(T, sa, BK * LDA);
    SHARED_ARRAY(T, sb, BN * LDB);
    Geometry geo;
    geo.frames = frames;
    geo.height = height;
    geo.width = width;
    geo.c_in = c_in;
    geo.kt = kt;
    geo.kh = kh;
    geo.kw = kw;
    geo.taps = kt * kh * kw;
    geo.K = c_in * geo.taps;
    geo.pad_t_front = pad_t_front;
    geo.pad_h = kh / 2;
    geo.pad_w = kw / 2;
    geo.plane = i64(height) * width;
    const i64 per_item = i64(frames) * geo.plane;
    const i64 M = i64(batch) * per_item;
    const i64 m0 = i64(blockIdx.x) * BM;
    const int n0 = int(blockIdx.y) * BN;
    const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int warp_m = (warp % 4) * 32, warp_n = (warp / 4) * 32;

    // The gather: thread tid fills column tid % BM of rows tid / BM + 2q.
    const int a_col = tid % BM, a_row = tid / BM;
    Voxel vox;
    {
        const i64 m = m0 + a_col;
        vox.valid = m < M;
        const i64 b = vox.valid ? m / per_item : 0, r = vox.valid ? m % per_item : 0;
        vox.item_base = b * c_in * per_item;
        vox.t = int(r / geo.plane);
        vox.h = int((r % geo.plane) / width);
        vox.w = int(r % width);
    }

    T ra[A_LOADS], rb[B_LOADS];
    float acc[2][4][4];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int c = 0; c < 4; c++) acc[i][j][c] = 0.0f;

    // Global -> registers for the tile starting at reduction index k0.
    auto fetch = [&](int k0) {
        for (int q = 0; q < A_LOADS; q++) ra[q] = gather<T>(x, vox, geo, k0 + a_row + 2 * q);
        for (int q = 0; q < B_LOADS; q++) {
            const int e = tid + THREADS * q, nn = e / BK, kk = e % BK;
            const int n = n0 + nn, k = k0 + kk;
            rb[q] = (n < c_out && k < geo.K) ? T(w[i64(n) * geo.K + k]) : zero<T>();
        }
    };

    fetch(0);
    for (int k0 = 0; k0 < geo.K; k0 += BK) {
        for (int q = 0; q < A_LOADS; q++) sa[(a_row + 2 * q) * LDA + a_col] = ra[q];
        for (int q = 0; q < B_LOADS; q++) {
            const int e = tid + THREADS * q;
            sb[(e / BK) * LDB + e % BK] = rb[q];
        }
        __syncthreads();
        if (k0 + BK < geo.K) fetch(k0 + BK);  // in flight while the MMAs below run
        for (int ks = 0; ks < BK / 16; ks++) {
            u32 af[2][4], bf[4][2];
            for (int i = 0; i < 2; i++) {
                // matrices: (voxels 0-7 | 8-15) x (k 0-7 | 8-15), stored k-major
                const int krow = ks * 16 + lane % 8 + 8 * (lane / 16);
                const int mcol = warp_m + i * 16 + 8 * ((lane / 8) % 2);
                ldmatrix_x4_trans<T>(af[i], dptr<const T>(sa + krow * LDA + mcol));
            }
            for (int j = 0; j < 4; j += 2) {
                u32 r[4];
                const int nrow = warp_n + j * 8 + lane % 8 + 8 * (lane / 16);
                const int kcol = ks * 16 + 8 * ((lane / 8) % 2);
                ldmatrix_x4<T>(r, dptr<const T>(sb + nrow * LDB + kcol));
                bf[j][0] = r[0];
                bf[j][1] = r[1];
                bf[j + 1][0] = r[2];
                bf[j + 1][1] = r[3];
            }
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++) mma_16816<T>(acc[i][j], af[i], bf[j]);
        }
        __syncthreads();  // every warp is done with this tile before the next is stored
    }

    // Accumulator c of tile (i, j): voxel row g (+8 for c >= 2), channel 2t (+1 for odd c).
    for (int i = 0; i < 2; i++) {
        for (int half = 0; half < 2; half++) {
            const i64 m = m0 + warp_m + i * 16 + g + 8 * half;
            if (m >= M) continue;
            const i64 b = m / per_item, r = m % per_item;
            for (int j = 0; j < 4; j++) {
                for (int c = 0; c < 2; c++) {
                    const int n = n0 + warp_n + j * 8 + 2 * t + c;
                    if (n >= c_out) continue;
                    const i64 o = (b * c_out + n) * per_item + r;
                    float v = acc[i][j][2 * half + c];
                    if (bias) v += to_f32(T(bias[n]));
                    if (residual) v += to_f32(T(residual[o]));
                    y[o] = from_f32<T>(v);
                }
            }
        }
    }
}
}  // namespace conv_mma

#define GENFX_CONV3D_MMA(N, T)                                                                                 \
    extern "C" __global__ void __launch_bounds__(256)                                                          \
        conv3d_mma_ncdhw_##N(dptr<const T> x, dptr<const T> w, dptr<const T> bias, dptr<const T> residual,     \
                             dptr<T> y, int batch, int frames, int height, int width, int c_in, int c_out,     \
                             int kt, int kh, int kw, int pad_t_front) {                                        \
        conv_mma::forward<T>(x, w, bias, residual, y, batch, frames, height, width, c_in, c_out, kt, kh, kw,   \
                             pad_t_front);                                                                     \
    }
GENFX_CONV3D_MMA(bf16, bf16)
GENFX_CONV3D_MMA(f16, f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(conv3d_mma) {
    GENFX_SIMT_KERNEL(conv3d_mma_ncdhw_bf16);
    GENFX_SIMT_KERNEL(conv3d_mma_ncdhw_f16);
}
#endif
