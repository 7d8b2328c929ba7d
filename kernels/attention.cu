// Flash attention forward (FlashAttention-2 schedule) on tensor cores:
// mma.sync m16n8k16 with f32 accumulation, ldmatrix fragment loads, cp.async
// tile copies, online softmax in registers; no N x N buffer exists.
//
// Block: 4 warps = 64 query rows of one (batch, head); each warp owns 16 rows.
// Key/value tiles of 64 rows stream through shared memory; loading the next
// key tile overlaps P V, and the value tile overlaps Q K^T and the softmax.
//
// Layout: token-major with heads side by side, as the projections produce it:
// element (b, row, h, d) of q sits at q[b * q_batch + row * q_row + h * D + d]
// (same for k, v, out). Strides are in elements and multiples of 8; pointers
// 16-byte aligned. Self- and cross-attention differ only in lq / lk.
// `key_bias` [batch, lk] f32 (or null) is added to the scaled logits: the
// reference's padding mask is (1 - mask) * -10000.
//
// Grid (ceil(lq / 64), heads, batch), block 128, dynamic shared memory
// 3 * 64 * (D + 8) * 2 bytes (above 48 KiB for D = 128: needs the opt-in).
// sm_80 path; sm_90 runs it too (a wgmma path would sit behind this same
// interface).
#include "common.cuh"

namespace flash {
constexpr int BR = 64, BC = 64, THREADS = 128;

template <class T, int D>
__device__ __forceinline__ void load_tile(dptr<T> dst, dptr<const T> src, i64 row_stride, int row0, int rows) {
    constexpr int LDS = D + 8, CHUNKS = D / 8;
    for (int e = int(threadIdx.x); e < BR * CHUNKS; e += THREADS) {
        const int r = e / CHUNKS, c = (e % CHUNKS) * 8;
        const bool valid = row0 + r < rows;
        cp_async_16<T>(dst + r * LDS + c, valid ? src + i64(row0 + r) * row_stride + c : src, valid);
    }
}

template <class T, int D>
__device__ void forward(dptr<const T> q, dptr<const T> k, dptr<const T> v, dptr<T> out, dptr<const float> key_bias,
                        int lq, int lk, i64 q_batch, i64 q_row, i64 k_batch, i64 k_row, i64 v_batch, i64 v_row,
                        i64 o_batch, i64 o_row, float scale) {
    constexpr int LDS = D + 8, KSTEPS = D / 16, NT = BC / 8, DT = D / 8;
    const float LOG2E = 1.4426950408889634f;
    const float NEG_INF = bits_to_f32(0xff800000u);
    DYNAMIC_SHARED(T, smem);
    dptr<T> sQ = smem;
    dptr<T> sK = smem + BR * LDS;
    dptr<T> sV = smem + 2 * BR * LDS;

    const int b = int(blockIdx.z), h = int(blockIdx.y), q0 = int(blockIdx.x) * BR;
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    dptr<const T> qb = q + i64(b) * q_batch + i64(h) * D;
    dptr<const T> kb = k + i64(b) * k_batch + i64(h) * D;
    dptr<const T> vb = v + i64(b) * v_batch + i64(h) * D;
    const float scale_log2 = scale * LOG2E;

    load_tile<T, D>(sQ, qb, q_row, q0, lq);
    cp_async_commit();
    load_tile<T, D>(sK, kb, k_row, 0, lk);
    cp_async_commit();
    load_tile<T, D>(sV, vb, v_row, 0, lk);
    cp_async_commit();

    u32 qf[KSTEPS][4];
    float o[DT][4];
    for (int d = 0; d < DT; d++)
        for (int i = 0; i < 4; i++) o[d][i] = 0.0f;
    float m_run[2] = {NEG_INF, NEG_INF}, l_run[2] = {0.0f, 0.0f};

    const int tiles = (lk + BC - 1) / BC;
    for (int kt = 0; kt < tiles; kt++) {
        cp_async_wait<1>();  // Q and this key tile have landed; values may still be in flight
        __syncthreads();
        if (kt == 0) {
            for (int ks = 0; ks < KSTEPS; ks++) {
                ldmatrix_x4<T>(qf[ks], dptr<const T>(sQ + (warp * 16 + lane % 16) * LDS + ks * 16 + (lane / 16) * 8));
            }
        }
        // S = Q K^T for this warp's 16 rows x 64 keys.
        float s[NT][4];
        for (int n = 0; n < NT; n++)
            for (int i = 0; i < 4; i++) s[n][i] = 0.0f;
        for (int ks = 0; ks < KSTEPS; ks++) {
            for (int n = 0; n < NT; n += 2) {
                u32 r[4];
                const int key = n * 8 + lane % 8 + 8 * (lane / 16), dim = ks * 16 + 8 * ((lane / 8) % 2);
                ldmatrix_x4<T>(r, dptr<const T>(sK + key * LDS + dim));
                const u32 b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816<T>(s[n], qf[ks], b0);
                mma_16816<T>(s[n + 1], qf[ks], b1);
            }
        }
        // Online softmax in the log2 domain; rows g (i = 0, 1) and g + 8 (i = 2, 3).
        float m_tile[2] = {NEG_INF, NEG_INF};
        for (int n = 0; n < NT; n++) {
            for (int i = 0; i < 4; i++) {
                const int key = kt * BC + n * 8 + 2 * t + (i & 1);
                float val = NEG_INF;
                if (key < lk) {
                    val = s[n][i] * scale_log2;
                    if (key_bias) val += float(key_bias[i64(b) * lk + key]) * LOG2E;
                }
                s[n][i] = val;
                m_tile[i / 2] = fmaxf(m_tile[i / 2], val);
            }
        }
        float alpha[2], base[2];
        for (int r = 0; r < 2; r++) {
            m_tile[r] = fmaxf(m_tile[r], __shfl_xor_sync(0xffffffffu, m_tile[r], 1));
            m_tile[r] = fmaxf(m_tile[r], __shfl_xor_sync(0xffffffffu, m_tile[r], 2));
            const float m_new = fmaxf(m_run[r], m_tile[r]);
            base[r] = m_new == NEG_INF ? 0.0f : m_new;  // a row masked so far stays all zeros
            alpha[r] = exp2f(m_run[r] - base[r]);
            m_run[r] = m_new;
            l_run[r] *= alpha[r];
        }
        for (int n = 0; n < NT; n++) {
            for (int i = 0; i < 4; i++) {
                const float p = exp2f(s[n][i] - base[i / 2]);
                s[n][i] = p;
                l_run[i / 2] += p;
            }
        }
        for (int d = 0; d < DT; d++) {
            for (int i = 0; i < 4; i++) o[d][i] *= alpha[i / 2];
        }

        cp_async_wait<0>();  // the value tile has landed
        __syncthreads();     // ...for every thread, and every warp is done with sK
        if (kt + 1 < tiles) {
            load_tile<T, D>(sK, kb, k_row, (kt + 1) * BC, lk);
            cp_async_commit();
        }
        // O += P V: P from the S accumulators (C layout = A layout per 16 keys).
        for (int kk = 0; kk < BC / 16; kk++) {
            u32 a[4];
            a[0] = pack2(from_f32<T>(s[2 * kk][0]), from_f32<T>(s[2 * kk][1]));
            a[1] = pack2(from_f32<T>(s[2 * kk][2]), from_f32<T>(s[2 * kk][3]));
            a[2] = pack2(from_f32<T>(s[2 * kk + 1][0]), from_f32<T>(s[2 * kk + 1][1]));
            a[3] = pack2(from_f32<T>(s[2 * kk + 1][2]), from_f32<T>(s[2 * kk + 1][3]));
            for (int d = 0; d < DT; d += 2) {
                u32 r[4];
                const int key = kk * 16 + lane % 8 + 8 * ((lane / 8) % 2), dim = d * 8 + 8 * (lane / 16);
                ldmatrix_x4_trans<T>(r, dptr<const T>(sV + key * LDS + dim));
                const u32 b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
                mma_16816<T>(o[d], a, b0);
                mma_16816<T>(o[d + 1], a, b1);
            }
        }
        __syncthreads();  // every warp is done with sV
        if (kt + 1 < tiles) {
            load_tile<T, D>(sV, vb, v_row, (kt + 1) * BC, lk);
            cp_async_commit();
        }
    }
    cp_async_wait<0>();  // nothing may stay in flight past the end (lk == 0 leaves tiles pending)

    dptr<T> ob = out + i64(b) * o_batch + i64(h) * D;
    for (int r = 0; r < 2; r++) {
        l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
        l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
    }
    for (int r = 0; r < 2; r++) {
        const int row = q0 + warp * 16 + g + 8 * r;
        if (row >= lq) continue;
        const float inv = l_run[r] > 0.0f ? 1.0f / l_run[r] : 0.0f;
        for (int d = 0; d < DT; d++) {
            const int col = d * 8 + 2 * t;
            ob[i64(row) * o_row + col] = from_f32<T>(o[d][2 * r] * inv);
            ob[i64(row) * o_row + col + 1] = from_f32<T>(o[d][2 * r + 1] * inv);
        }
    }
}
}  // namespace flash

#define GENFX_FLASH(T, D)                                                                                         \
    extern "C" __global__ void __launch_bounds__(128)                                                             \
        flash_attention_##T##_d##D(dptr<const T> q, dptr<const T> k, dptr<const T> v, dptr<T> out,                \
                                   dptr<const float> key_bias, int lq, int lk, i64 q_batch, i64 q_row,            \
                                   i64 k_batch, i64 k_row, i64 v_batch, i64 v_row, i64 o_batch, i64 o_row,        \
                                   float scale) {                                                                 \
        flash::forward<T, D>(q, k, v, out, key_bias, lq, lk, q_batch, q_row, k_batch, k_row, v_batch, v_row,       \
                             o_batch, o_row, scale);                                                              \
    }
GENFX_FLASH(bf16, 64)
GENFX_FLASH(bf16, 128)
GENFX_FLASH(f16, 64)
GENFX_FLASH(f16, 128)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(attention) {
    GENFX_SIMT_KERNEL(flash_attention_bf16_d64);
    GENFX_SIMT_KERNEL(flash_attention_bf16_d128);
    GENFX_SIMT_KERNEL(flash_attention_f16_d64);
    GENFX_SIMT_KERNEL(flash_attention_f16_d128);
}
#endif
