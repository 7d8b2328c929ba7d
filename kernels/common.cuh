// Shared by every kernel: 16-bit storage types, pointer and shared-memory
// spellings that are plain CUDA on the GPU and checked under the SIMT
// emulation (kernels/emu/simt.h), and the tensor-core / async-copy steps, each
// with one CUDA body (inline PTX) and one emulated body that implements the
// PTX ISA fragment layouts exactly.
//
// Self-contained on purpose: no CUDA headers, so NVRTC needs no include path
// on the user's machine.
#pragma once

#ifdef GENFX_SIMT
#include "emu/simt.h"
#endif

#define GENFX_HD __host__ __device__ __forceinline__

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long long u64;
typedef long long i64;

// --- 16-bit floating-point storage --------------------------------------------------
// Plain bit containers; arithmetic always happens in f32.
struct bf16 {
    u16 bits;
};
struct f16 {
    u16 bits;
};

GENFX_HD float bits_to_f32(u32 x) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(x);
#else
    float f;
    __builtin_memcpy(&f, &x, 4);
    return f;
#endif
}
GENFX_HD u32 f32_to_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    u32 x;
    __builtin_memcpy(&x, &f, 4);
    return x;
#endif
}

GENFX_HD float to_f32(bf16 v) { return bits_to_f32(u32(v.bits) << 16); }
GENFX_HD float to_f32(float v) { return v; }

// Round to nearest even, as __float2bfloat16_rn does; NaN stays NaN.
GENFX_HD bf16 bf16_from_f32(float f) {
    bf16 r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
#else
    // Before Ampere there is no bf16 conversion instruction: a module that
    // also has bf16 kernels must still build for Turing, which runs its f16
    // and f32 ones. Same rounding as the instruction.
    u32 x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        r.bits = u16(((x >> 16) & 0x8000u) | 0x7fc0u);
    } else {
        x += 0x7fffu + ((x >> 16) & 1u);
        r.bits = u16(x >> 16);
    }
#endif
    return r;
}

GENFX_HD float to_f32(f16 v) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#else
    u32 sign = u32(v.bits & 0x8000u) << 16;
    u32 exp = (v.bits >> 10) & 0x1fu;
    u32 man = v.bits & 0x3ffu;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        // Subnormal: value = man * 2^-24, exact in f32.
        float mag = float(man) * 5.9604644775390625e-8f;
        return sign ? -mag : mag;
    }
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

// Round to nearest even with subnormals and overflow to infinity, as
// __float2half_rn does.
GENFX_HD f16 f16_from_f32(float f) {
    f16 r;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(f));
#else
    u32 x = f32_to_bits(f);
    u32 sign = (x >> 16) & 0x8000u;
    u32 ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        r.bits = u16(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
    } else if (ax >= 0x477ff000u) {
        r.bits = u16(sign | 0x7c00u);
    } else if (ax <= 0x33000000u) {
        r.bits = u16(sign);
    } else if (ax < 0x38800000u) {
        u32 m = (ax & 0x7fffffu) | 0x800000u;
        u32 shift = 126u - (ax >> 23);
        u32 q = m >> shift;
        u32 rem = m & ((1u << shift) - 1u);
        u32 half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        r.bits = u16(sign | q);
    } else {
        u32 q = (ax - 0x38000000u) >> 13;
        u32 rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
        r.bits = u16(sign | q);
    }
#endif
    return r;
}

template <class T>
GENFX_HD T from_f32(float v);
template <>
GENFX_HD bf16 from_f32<bf16>(float v) {
    return bf16_from_f32(v);
}
template <>
GENFX_HD f16 from_f32<f16>(float v) {
    return f16_from_f32(v);
}
template <>
GENFX_HD float from_f32<float>(float v) {
    return v;
}

// Two 16-bit values in one 32-bit register, the first in the low half (the
// order tensor-core fragments use).
template <class T>
GENFX_HD u32 pack2(T lo, T hi) {
    return u32(lo.bits) | (u32(hi.bits) << 16);
}

// --- pointers and shared memory -------------------------------------------------------
#ifdef GENFX_SIMT
template <class T>
using dptr = simt::ptr<T>;
using simt::ptr_cast;
#define SHARED_ARRAY(T, name, N)                             \
    alignas(16) static thread_local T name##_storage[(N)];   \
    dptr<T> name = ::simt::shared_array(name##_storage, #name)
#define DYNAMIC_SHARED(T, name) dptr<T> name = ::simt::dynamic_shared<T>(#name)
#else
template <class T>
using dptr = T*;
template <class U, class T>
__device__ __forceinline__ U* ptr_cast(T* p) {
    return reinterpret_cast<U*>(p);
}
#define SHARED_ARRAY(T, name, N)                   \
    __shared__ __align__(16) T name##_storage[(N)]; \
    T* name = name##_storage
#define DYNAMIC_SHARED(T, name)                                 \
    extern __shared__ __align__(16) unsigned char genfx_dyn_smem[]; \
    T* name = reinterpret_cast<T*>(genfx_dyn_smem)
#endif

// A kernel entry point whose name may also be defined by another module (two
// CUDA modules may each have a `gated_residual_bf16`). On the GPU it is an
// unmangled `extern "C"` entry as usual; in the emulator, where every file is
// linked into one library, it has internal linkage instead and is reached only
// through its module's registry (GENFX_SIMT_EXPORTS), so equal names cannot
// clash at link time, and a kernel left unregistered is an unused-function
// error.
#ifdef GENFX_SIMT
#define GENFX_KERNEL static
#else
#define GENFX_KERNEL extern "C" __global__
#endif

// One 16-byte move through checked pointers (the vector width kernels use for
// coalesced copies).
template <class T>
__device__ __forceinline__ void copy16(dptr<T> dst, dptr<const T> src) {
    *ptr_cast<uint4>(dst) = uint4(*ptr_cast<const uint4>(src));
}

// --- warp reductions ---------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024);
// every thread gets the result. `scratch` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, dptr<float> scratch) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (unsigned w = 0; w < nwarps; w++) total += scratch[w];
    __syncthreads();  // scratch is reused by the next reduction
    return total;
}

// --- tensor-core and async-copy steps -------------------------------------------------------
// Element type tags for the MMA: bf16 or f16 inputs, f32 accumulators.
struct mma_bf16_tag {};
struct mma_f16_tag {};
template <class T>
struct mma_tag_of;
template <>
struct mma_tag_of<bf16> {
    typedef mma_bf16_tag type;
};
template <>
struct mma_tag_of<f16> {
    typedef mma_f16_tag type;
};

#ifdef GENFX_SIMT
namespace genfx_emu {
template <class T>
inline float half_value(u32 reg, int hi) {
    T v;
    v.bits = u16(hi ? reg >> 16 : reg & 0xffffu);
    return to_f32(v);
}
// m16n8k16, A row-major 16x16, B column-major 16x8, C/D 16x8 f32; fragment
// layout per the PTX ISA ("Matrix Fragments for mma.m16n8k16"):
//   groupID g = lane/4, t = lane%4
//   A regs {a0a1, a2a3, a4a5, a6a7}: rows g, g+8, g, g+8; cols 2t(+1), 2t(+1), 2t+8(+1), 2t+8(+1)
//   B regs {b0b1, b2b3}: rows(k) 2t(+1), 2t+8(+1); col(n) g
//   C/D {c0,c1,c2,c3}: row g (c0,c1), g+8 (c2,c3); col 2t + (i&1)
template <class T>
inline void mma_16816(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    struct Frag {
        u32 a[4];
        u32 b[2];
    } mine;
    for (int i = 0; i < 4; i++) mine.a[i] = a[i];
    for (int i = 0; i < 2; i++) mine.b[i] = b[i];
    const unsigned lane = simt::lane_id();
    if (simt::warp_size_of_this_warp() != 32) simt::fault("mma.sync needs a full warp");
    float out[4];
    simt::warp_exchange(&mine, sizeof mine, [&](const char* all, size_t stride) {
        auto frag = [&](unsigned l) {
            Frag f;
            __builtin_memcpy(&f, all + l * stride, sizeof f);
            return f;
        };
        auto A = [&](unsigned row, unsigned k) {
            unsigned l = (row % 8) * 4 + (k % 8) / 2;
            unsigned reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
            return half_value<T>(frag(l).a[reg], int(k % 2));
        };
        auto B = [&](unsigned k, unsigned col) {
            unsigned l = col * 4 + (k % 8) / 2;
            unsigned reg = k >= 8 ? 1 : 0;
            return half_value<T>(frag(l).b[reg], int(k % 2));
        };
        const unsigned g = lane / 4, t = lane % 4;
        for (int i = 0; i < 4; i++) {
            unsigned row = g + (i >= 2 ? 8 : 0);
            unsigned col = 2 * t + (i & 1);
            float acc = d[i];
            for (unsigned k = 0; k < 16; k++) acc = std::fma(A(row, k), B(k, col), acc);
            out[i] = acc;
        }
    });
    for (int i = 0; i < 4; i++) d[i] = out[i];
}

// ldmatrix .m8n8 .b16: lanes 8j..8j+7 give the row addresses of matrix j;
// lane l receives, of each matrix, row l/4 cols 2(l%4), 2(l%4)+1 — or with
// .trans the transposed pair: rows 2(l%4), 2(l%4)+1 of column l/4.
template <int N, bool Trans, class T>
inline void ldmatrix(u32 (&r)[N], dptr<const T> row) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
    if (simt::warp_size_of_this_warp() != 32) simt::fault("ldmatrix needs a full warp");
    if (reinterpret_cast<uintptr_t>(row.p) % 16 != 0 && simt::lane_id() < unsigned(8 * N)) {
        simt::fault("ldmatrix row address not 16-byte aligned");
    }
    if (row.alloc && row.alloc->space != simt::Space::Shared && simt::lane_id() < unsigned(8 * N)) {
        simt::fault(std::string("ldmatrix from non-shared buffer '") + row.alloc->name + "'");
    }
    const unsigned lane = simt::lane_id();
    simt::warp_exchange(&row, sizeof row, [&](const char* all, size_t stride) {
        auto row_of = [&](unsigned l) {
            dptr<const T> p;
            __builtin_memcpy(&p, all + l * stride, sizeof p);
            return p;
        };
        for (int j = 0; j < N; j++) {
            if (!Trans) {
                dptr<const T> p = row_of(8 * j + lane / 4);
                r[j] = ptr_cast<const u32>(p + 2 * (lane % 4)).load();
            } else {
                T lo = (row_of(8 * j + 2 * (lane % 4)) + lane / 4).load();
                T hi = (row_of(8 * j + 2 * (lane % 4) + 1) + lane / 4).load();
                r[j] = pack2(lo, hi);
            }
        }
    });
}
}  // namespace genfx_emu
#endif

// D += A * B on tensor cores (m16n8k16, f32 accumulate).
#ifndef GENFX_SIMT
__device__ __forceinline__ void mma_16816_ptx(mma_bf16_tag, float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16816_ptx(mma_f16_tag, float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2]) {
#ifdef GENFX_SIMT
    genfx_emu::mma_16816<T>(d, a, b);
#else
    mma_16816_ptx(typename mma_tag_of<T>::type(), d, a, b);
#endif
}

#ifndef GENFX_SIMT
__device__ __forceinline__ u32 shared_address(const void* p) {
    u64 a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
    return u32(a);
}
#endif

// Loads four 8x8 16-bit matrices from shared memory; `row` is this lane's row.
template <class T>
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], dptr<const T> row) {
#ifdef GENFX_SIMT
    genfx_emu::ldmatrix<4, false, T>(r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
#endif
}
template <class T>
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], dptr<const T> row) {
#ifdef GENFX_SIMT
    genfx_emu::ldmatrix<4, true, T>(r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
#endif
}
template <class T>
__device__ __forceinline__ void ldmatrix_x2(u32 (&r)[2], dptr<const T> row) {
#ifdef GENFX_SIMT
    genfx_emu::ldmatrix<2, false, T>(r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(shared_address(row)));
#endif
}
template <class T>
__device__ __forceinline__ void ldmatrix_x2_trans(u32 (&r)[2], dptr<const T> row) {
#ifdef GENFX_SIMT
    genfx_emu::ldmatrix<2, true, T>(r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(shared_address(row)));
#endif
}

// 16-byte global->shared copy that completes at a later cp_async_wait; when
// `valid` is false the destination is zero-filled and `src` is not read.
template <class T>
__device__ __forceinline__ void cp_async_16(dptr<T> dst, dptr<const T> src, bool valid) {
#ifdef GENFX_SIMT
    // The copy may land any time until its wait: the destination counts as
    // written from the issue on (so a missing barrier before reusing a tile
    // is a reported race) and again when it lands at the wait.
    simt::check_access(dst.alloc, reinterpret_cast<const char*>(dst.p), 16, 16, true);
    unsigned char data[16] = {0};
    if (valid) {
        uint4 v = ptr_cast<const uint4>(src).load();
        __builtin_memcpy(data, &v, 16);
    }
    simt::async_copy_push(dst.alloc, reinterpret_cast<char*>(dst.p), data, 16);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(shared_address(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef GENFX_SIMT
    simt::async_copy_commit();
#else
    asm volatile("cp.async.commit_group;");
#endif
}
// Waits until at most N committed groups of this thread are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef GENFX_SIMT
    simt::async_copy_wait(N);
#else
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
#endif
}

#ifdef GENFX_SIMT
#include "emu/registry.h"
#endif
