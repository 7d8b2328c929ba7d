// SIMT emulation: lets the CUDA C++ in kernels/*.cu compile as ordinary C++17
// and run on the CPU, so that every kernel is executed in tests on machines
// without a GPU.
//
// Model: a launch runs its blocks on a few worker OS threads; inside a block
// every CUDA thread is a fiber (ucontext) with its own stack. Fibers switch
// only at barriers and warp collectives, so a block runs deterministically and
// a barrier that not every thread reaches is detected exactly (no thread can
// make progress) instead of hanging. A watchdog ends the process with the
// kernel and block named if a launch spins for longer than its time limit.
//
// Memory checks: kernels take `dptr<T>` instead of `T*`. Here it is a checked
// pointer that knows its allocation; every access is bounds- and
// alignment-checked, and shared-memory accesses go through a shadow that
// reports two threads touching the same byte with no barrier in between
// (read-after-write, write-after-write, write-after-read).
//
// Not modelled: memory ordering between blocks, timing, occupancy, register
// limits, Hopper instructions (wgmma, TMA), partial-warp masks.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#define GENFX_SIMT 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
// Raw `__shared__` arrays work (one copy per worker thread, shared by all
// fibers of the block it runs) but are unchecked; kernels use SHARED_ARRAY.
#define __shared__ static thread_local

namespace simt {

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};

// Raised inside a fiber for a checked fault; caught at the fiber's entry.
struct Fault {
    std::string message;
};

enum class Space : uint8_t { Global, Shared };

struct ShadowEntry;

// One checked allocation: a global buffer handed to a launch, or a block's
// shared array.
struct Alloc {
    const char* name = "?";
    Space space = Space::Global;
    char* base = nullptr;
    size_t bytes = 0;
    bool writable = true;
    ShadowEntry* shadow = nullptr;  // shared memory only
};

// --- per-thread state (valid inside a kernel) --------------------------------
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

[[noreturn]] void fault(const std::string& what);
void check_access(const Alloc* a, const char* p, size_t n, size_t align, bool write);

// --- checked pointers ---------------------------------------------------------
template <class T>
struct ref;

template <class T>
struct ptr {
    const Alloc* alloc = nullptr;
    T* p = nullptr;

    ptr() = default;
    ptr(std::nullptr_t) {}
    ptr(const Alloc* a, T* at) : alloc(a), p(at) {}
    template <class U, class = std::enable_if_t<std::is_convertible<U*, T*>::value>>
    ptr(const ptr<U>& o) : alloc(o.alloc), p(o.p) {}

    ref<T> operator[](long long i) const { return ref<T>(alloc, p + i); }
    ref<T> operator*() const { return ref<T>(alloc, p); }
    ptr operator+(long long i) const { return ptr(alloc, p + i); }
    ptr operator-(long long i) const { return ptr(alloc, p - i); }
    long long operator-(const ptr& o) const { return p - o.p; }
    ptr& operator+=(long long i) {
        p += i;
        return *this;
    }
    ptr& operator-=(long long i) {
        p -= i;
        return *this;
    }
    ptr& operator++() {
        ++p;
        return *this;
    }
    explicit operator bool() const { return p != nullptr; }
    bool operator==(const ptr& o) const { return p == o.p; }
    bool operator!=(const ptr& o) const { return p != o.p; }
    bool operator<(const ptr& o) const { return p < o.p; }

    // Checked whole-object access, for helpers that move raw bytes.
    T load() const {
        check_access(alloc, reinterpret_cast<const char*>(p), sizeof(T), alignof(T), false);
        return *p;
    }
    void store(const T& v) const {
        check_access(alloc, reinterpret_cast<const char*>(p), sizeof(T), alignof(T), true);
        *const_cast<std::remove_const_t<T>*>(p) = v;
    }
};

// A checked element reference: reads and writes are told apart so the shadow
// can see write-after-read races.
template <class T>
struct ref {
    const Alloc* alloc;
    T* p;
    ref(const Alloc* a, T* at) : alloc(a), p(at) {}
    using V = std::remove_const_t<T>;
    operator V() const { return ptr<T>(alloc, p).load(); }
    V get() const { return ptr<T>(alloc, p).load(); }
    const ref& operator=(const V& v) const {
        ptr<T>(alloc, p).store(v);
        return *this;
    }
    const ref& operator=(const ref& o) const { return *this = o.get(); }
    const ref& operator+=(const V& v) const { return *this = V(get() + v); }
    const ref& operator-=(const V& v) const { return *this = V(get() - v); }
    const ref& operator*=(const V& v) const { return *this = V(get() * v); }
    ptr<T> operator&() const { return ptr<T>(alloc, p); }
};

template <class U, class T>
ptr<U> ptr_cast(const ptr<T>& q) {
    return ptr<U>(q.alloc, reinterpret_cast<U*>(const_cast<std::remove_const_t<T>*>(q.p)));
}

// Shared arrays: the storage is a thread_local array (one per worker thread);
// this registers it for the running block and returns a checked pointer.
const Alloc* shared_alloc(void* base, size_t bytes, const char* name);
const Alloc* dynamic_shared_alloc(const char* name);

template <class T, size_t N>
ptr<T> shared_array(T (&storage)[N], const char* name) {
    return ptr<T>(shared_alloc(storage, sizeof(T) * N, name), storage);
}
template <class T>
ptr<T> dynamic_shared(const char* name) {
    const Alloc* a = dynamic_shared_alloc(name);
    return ptr<T>(a, reinterpret_cast<T*>(a->base));
}

// --- barriers and warp collectives ---------------------------------------------
void syncthreads();
void syncwarp();
unsigned lane_id();
unsigned warp_id();
unsigned warp_size_of_this_warp();

// Every lane of the warp contributes `size` bytes; once all have, `read` sees
// all contributions (lane-indexed, `stride` bytes apart).
void warp_exchange(const void* mine, size_t size, const std::function<void(const char* all, size_t stride)>& read);

template <class T>
T shfl_impl(T v, int src_of_lane_fn_kind, int arg, int width) {
    static_assert(std::is_trivially_copyable<T>::value, "shuffle needs a trivially copyable type");
    T out = v;
    unsigned lane = lane_id();
    unsigned n = warp_size_of_this_warp();
    warp_exchange(&v, sizeof(T), [&](const char* all, size_t stride) {
        int w = width;
        int base = int(lane) & ~(w - 1);
        int src = int(lane);
        switch (src_of_lane_fn_kind) {
            case 0: src = base + (arg & (w - 1)); break;         // idx
            case 1: src = int(lane) ^ arg; break;                // xor
            case 2: src = (int(lane) - base + arg < w) ? int(lane) + arg : int(lane); break;  // down
            case 3: src = (int(lane) - base - arg >= 0) ? int(lane) - arg : int(lane); break; // up
        }
        if (src < 0 || unsigned(src) >= n) src = int(lane);
        std::memcpy(&out, all + size_t(src) * stride, sizeof(T));
    });
    return out;
}

void check_full_mask(unsigned mask, const char* op);

// --- cp.async queue (per thread) ------------------------------------------------
void async_copy_push(const Alloc* dst_alloc, char* dst, const void* data, size_t n);
void async_copy_commit();
void async_copy_wait(int keep_pending);

// --- launching ------------------------------------------------------------------
struct LaunchResult {
    bool ok = true;
    bool bad_arguments = false;  // the launch was refused before running
    std::string error;
};

// Refuses a grid, block or dynamic shared memory no GPU can launch.
LaunchResult check_launch_shape(const char* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes);

// Runs `body` once per CUDA thread of every block. Faults end the launch and
// come back in the result; so does a barrier that cannot complete.
LaunchResult launch(const char* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes,
                    const std::function<void()>& body);

}  // namespace simt

// --- CUDA spellings ----------------------------------------------------------------
using simt::dim3;
using simt::uint3;
#define threadIdx (::simt::thread_idx())
#define blockIdx (::simt::block_idx())
#define blockDim (::simt::block_dim())
#define gridDim (::simt::grid_dim())
#define warpSize 32

inline void __syncthreads() { simt::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    simt::check_full_mask(mask, "__syncwarp");
    simt::syncwarp();
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    simt::check_full_mask(mask, "__shfl_sync");
    return simt::shfl_impl(v, 0, src, width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    simt::check_full_mask(mask, "__shfl_xor_sync");
    return simt::shfl_impl(v, 1, lane_mask, width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    simt::check_full_mask(mask, "__shfl_down_sync");
    return simt::shfl_impl(v, 2, int(delta), width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    simt::check_full_mask(mask, "__shfl_up_sync");
    return simt::shfl_impl(v, 3, int(delta), width);
}
unsigned __ballot_sync(unsigned mask, int predicate);
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
    unsigned n = simt::warp_size_of_this_warp();
    unsigned full = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
    return __ballot_sync(mask, predicate) == full;
}

// Atomics: blocks run concurrently on worker threads, so these are real
// atomics on the underlying memory (after the same checks as a plain access).
template <class T>
T simt_atomic_rmw(simt::ptr<T> p, const std::function<T(T)>& f) {
    simt::check_access(p.alloc, reinterpret_cast<const char*>(p.p), sizeof(T), alignof(T), true);
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- or 8-byte values");
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits* addr = reinterpret_cast<Bits*>(p.p);
    Bits old_bits = __atomic_load_n(addr, __ATOMIC_RELAXED);
    for (;;) {
        T old_value;
        std::memcpy(&old_value, &old_bits, sizeof(T));
        T new_value = f(old_value);
        Bits new_bits;
        std::memcpy(&new_bits, &new_value, sizeof(T));
        if (__atomic_compare_exchange_n(addr, &old_bits, new_bits, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            return old_value;
        }
    }
}
template <class T>
T atomicAdd(simt::ptr<T> p, T v) {
    return simt_atomic_rmw<T>(p, [v](T o) { return T(o + v); });
}
template <class T>
T atomicMax(simt::ptr<T> p, T v) {
    return simt_atomic_rmw<T>(p, [v](T o) { return o < v ? v : o; });
}
template <class T>
T atomicMin(simt::ptr<T> p, T v) {
    return simt_atomic_rmw<T>(p, [v](T o) { return v < o ? v : o; });
}
template <class T>
T atomicExch(simt::ptr<T> p, T v) {
    return simt_atomic_rmw<T>(p, [v](T) { return v; });
}
template <class T>
T atomicCAS(simt::ptr<T> p, T compare, T v) {
    return simt_atomic_rmw<T>(p, [compare, v](T o) { return o == compare ? v : o; });
}

// --- CUDA vector types and math spellings --------------------------------------------
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __int_as_float(int x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
inline float __uint_as_float(unsigned x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned x;
    std::memcpy(&x, &f, 4);
    return x;
}
inline int __float_as_int(float f) {
    int x;
    std::memcpy(&x, &f, 4);
    return x;
}
using std::max;
using std::min;
