// Kernels that pin the emulator's semantics (barriers, shuffles, MMA and
// ldmatrix fragment layouts, cp.async groups, checks). Emulator-only: not
// part of the shipped kernel set.
#include "../common.cuh"

// Each thread publishes its index, then reads its neighbour's after the
// barrier; run twice per launch so a barrier that let threads through early
// would show stale values from the first round.
extern "C" __global__ void selftest_barrier(dptr<int> out) {
    SHARED_ARRAY(int, slots, 256);
    const unsigned n = blockDim.x, t = threadIdx.x;
    for (int round = 0; round < 2; round++) {
        slots[t] = int(t) + 1000 * round + 100000 * int(blockIdx.x);
        __syncthreads();
        out[(blockIdx.x * 2 + round) * n + t] = slots[(t + 1) % n];
        __syncthreads();
    }
}

// Per lane: shfl idx (from lane 3), xor 5, down 1, up 2, ballot of odd lanes,
// any(lane==7), all(lane<32), shfl with width 8 (from sub-lane 2).
extern "C" __global__ void selftest_shuffle(dptr<int> out) {
    const int lane = int(threadIdx.x % 32);
    const int v = 100 + int(threadIdx.x);
    dptr<int> o = out + threadIdx.x * 8;
    o[0] = __shfl_sync(0xffffffffu, v, 3);
    o[1] = __shfl_xor_sync(0xffffffffu, v, 5);
    o[2] = __shfl_down_sync(0xffffffffu, v, 1);
    o[3] = __shfl_up_sync(0xffffffffu, v, 2);
    o[4] = int(__ballot_sync(0xffffffffu, lane % 2 == 1));
    o[5] = __any_sync(0xffffffffu, lane == 7);
    o[6] = __all_sync(0xffffffffu, lane < 32);
    o[7] = __shfl_sync(0xffffffffu, v, 2, 8);
}

// D(16x8, f32) = A(16x16 row-major) * B(16x8, k-major rows) with one warp.
// mode 0: fragments gathered straight from global memory by the PTX layout;
// mode 1: staged in shared memory and loaded with ldmatrix (.trans for B).
template <class T>
__device__ void selftest_mma(dptr<const T> a, dptr<const T> b, dptr<float> d, int mode) {
    SHARED_ARRAY(T, sa, 16 * 16);
    SHARED_ARRAY(T, sb, 16 * 8);
    const unsigned lane = threadIdx.x, g = lane / 4, t = lane % 4;
    u32 af[4], bf[2];
    if (mode == 0) {
        for (int r = 0; r < 4; r++) {
            unsigned row = g + ((r & 1) ? 8 : 0), col = 2 * t + ((r & 2) ? 8 : 0);
            af[r] = pack2(T(a[row * 16 + col]), T(a[row * 16 + col + 1]));
        }
        for (int r = 0; r < 2; r++) {
            unsigned k = 2 * t + (r ? 8 : 0);
            bf[r] = pack2(T(b[k * 8 + g]), T(b[(k + 1) * 8 + g]));
        }
    } else {
        for (unsigned i = lane; i < 256; i += 32) sa[i] = T(a[i]);
        for (unsigned i = lane; i < 128; i += 32) sb[i] = T(b[i]);
        __syncwarp();
        // Matrices in register order: rows 0-7/k 0-7, rows 8-15/k 0-7,
        // rows 0-7/k 8-15, rows 8-15/k 8-15.
        unsigned row = lane % 8 + 8 * ((lane / 8) % 2), col = 8 * (lane / 16);
        ldmatrix_x4<T>(af, dptr<const T>(sa + row * 16 + col));
        ldmatrix_x2_trans<T>(bf, dptr<const T>(sb + (lane % 16) * 8));
    }
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    mma_16816<T>(acc, af, bf);
    for (int i = 0; i < 4; i++) {
        unsigned row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        d[row * 8 + col] = acc[i];
    }
}
extern "C" __global__ void selftest_mma_bf16(dptr<const bf16> a, dptr<const bf16> b, dptr<float> d, int mode) {
    selftest_mma<bf16>(a, b, d, mode);
}
extern "C" __global__ void selftest_mma_f16(dptr<const f16> a, dptr<const f16> b, dptr<float> d, int mode) {
    selftest_mma<f16>(a, b, d, mode);
}

// cp.async groups: out[0] = first tile after wait<1>, out[1] = second tile
// after wait<1> (still the old contents in the emulator), out[2] = second
// tile after wait<0>. One thread per 16-byte chunk.
extern "C" __global__ void selftest_cp_async(dptr<const float> src, dptr<float> out) {
    SHARED_ARRAY(float, tile, 16);
    const unsigned t = threadIdx.x;  // 2 threads
    tile[t * 4] = -1.0f;
    tile[8 + t * 4] = -1.0f;
    cp_async_16<float>(tile + t * 4, src + t * 4, true);
    cp_async_commit();
    cp_async_16<float>(tile + 8 + t * 4, src + 8 + t * 4, true);
    cp_async_commit();
    cp_async_wait<1>();
    out[t] = tile[t * 4];
    out[2 + t] = tile[8 + t * 4];
    cp_async_wait<0>();
    out[4 + t] = tile[8 + t * 4];
}

// Thread `who` writes out[index]: index out of range must be reported.
extern "C" __global__ void selftest_global_oob(dptr<float> out, int index, int who) {
    if (int(threadIdx.x) == who && blockIdx.x == gridDim.x - 1) out[index] = 1.0f;
}

extern "C" __global__ void selftest_shared_oob(dptr<float> out, int index) {
    SHARED_ARRAY(float, s, 32);
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 5) out[0] = s[index];
}

// Threads below `split` skip the barrier: a divergent __syncthreads.
extern "C" __global__ void selftest_divergent(dptr<int> out, int split) {
    if (int(threadIdx.x) >= split) {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

// Neighbour exchange through shared memory with or without the barrier.
extern "C" __global__ void selftest_race(dptr<float> out, int with_barrier) {
    SHARED_ARRAY(float, s, 256);
    s[threadIdx.x] = float(threadIdx.x);
    if (with_barrier) __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// Overwriting a value other threads have read, with no barrier in between.
extern "C" __global__ void selftest_war_race(dptr<float> out, int with_barrier) {
    SHARED_ARRAY(float, s, 64);
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    float v = s[(threadIdx.x + 1) % blockDim.x];
    if (with_barrier) __syncthreads();
    s[threadIdx.x] = 2.0f + v;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

// Reusing a tile for the next cp.async while other threads may still read
// it: a race unless a barrier separates the reads from the issue.
extern "C" __global__ void selftest_cp_async_reuse(dptr<const float> src, dptr<float> out, int with_barrier) {
    SHARED_ARRAY(float, tile, 64 * 4);
    const unsigned t = threadIdx.x, n = blockDim.x;
    cp_async_16<float>(tile + t * 4, src + t * 4, true);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    out[t] = tile[((t + 1) % n) * 4];
    if (with_barrier) __syncthreads();
    cp_async_16<float>(tile + t * 4, src + n * 4 + t * 4, true);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    out[n + t] = tile[((t + 1) % n) * 4];
}

extern "C" __global__ void selftest_atomics(dptr<int> counter, dptr<float> sum) {
    atomicAdd(counter, 1);
    atomicAdd(sum, 0.5f);
    atomicMax(counter + 1, int(blockIdx.x * blockDim.x + threadIdx.x));
}

extern "C" __global__ void selftest_block_sum(dptr<const float> x, dptr<float> out) {
    SHARED_ARRAY(float, scratch, 32);
    float s = block_sum(x[blockIdx.x * blockDim.x + threadIdx.x], scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(selftest) {
    GENFX_SIMT_KERNEL(selftest_barrier);
    GENFX_SIMT_KERNEL(selftest_shuffle);
    GENFX_SIMT_KERNEL(selftest_mma_bf16);
    GENFX_SIMT_KERNEL(selftest_mma_f16);
    GENFX_SIMT_KERNEL(selftest_cp_async);
    GENFX_SIMT_KERNEL(selftest_global_oob);
    GENFX_SIMT_KERNEL(selftest_shared_oob);
    GENFX_SIMT_KERNEL(selftest_divergent);
    GENFX_SIMT_KERNEL(selftest_race);
    GENFX_SIMT_KERNEL(selftest_war_race);
    GENFX_SIMT_KERNEL(selftest_cp_async_reuse);
    GENFX_SIMT_KERNEL(selftest_atomics);
    GENFX_SIMT_KERNEL(selftest_block_sum);
}
#endif
