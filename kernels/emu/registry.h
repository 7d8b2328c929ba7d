// Launch-by-name for emulated kernels, two ways in:
// - the Rust tests describe arguments as a flat array of `Arg`; each
//   registered kernel checks them against its C++ parameter types (buffer
//   element type, writability, scalar kinds) and runs;
// - the emulated CUDA driver hands over `kernelParams` as cuLaunchKernel got
//   them (one pointer per parameter to its value) and a resolver that maps a
//   device address to the live allocation holding it; each parameter is
//   unpacked by its C++ type: pointers become checked pointers bounded by
//   their allocation, everything else is copied by value.
// Kernels are registered per source file (module), as the driver loads them.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>
#include <cstdio>

namespace simt {

// Mirrored by `#[repr(C)] struct Arg` in kernels/src/lib.rs.
enum ArgKind : int32_t {
    ARG_BUFFER = 0,
    ARG_I32 = 1,
    ARG_U32 = 2,
    ARG_I64 = 3,
    ARG_U64 = 4,
    ARG_F32 = 5,
    ARG_F64 = 6,
    ARG_BYTES = 7,  // a struct passed by value: `data` holds `bytes` bytes of it
};
enum ElemType : int32_t { E_F32 = 0, E_BF16 = 1, E_F16 = 2, E_U8 = 3, E_U16 = 4, E_I32 = 5, E_U32 = 6, E_F64 = 7 };

struct Arg {
    int32_t kind;
    int32_t elem;
    int32_t writable;
    int32_t reserved;
    void* data;
    uint64_t bytes;
    const char* name;
    int64_t i;
    uint64_t u;
    double f;
};

template <class T>
struct elem_of;
template <> struct elem_of<float> { static constexpr int32_t value = E_F32; };
template <> struct elem_of<bf16> { static constexpr int32_t value = E_BF16; };
template <> struct elem_of<f16> { static constexpr int32_t value = E_F16; };
template <> struct elem_of<u8> { static constexpr int32_t value = E_U8; };
template <> struct elem_of<u16> { static constexpr int32_t value = E_U16; };
template <> struct elem_of<int> { static constexpr int32_t value = E_I32; };
template <> struct elem_of<u32> { static constexpr int32_t value = E_U32; };
template <> struct elem_of<double> { static constexpr int32_t value = E_F64; };

struct ArgError {
    std::string message;
};

// A by-value struct parameter (e.g. a strided view) from its raw bytes.
template <class A>
struct convert_arg {
    static_assert(std::is_trivially_copyable<A>::value, "kernel parameters are trivially copyable");
    static A run(const Arg& a, size_t index, std::deque<Alloc>&) {
        if (a.kind != ARG_BYTES || a.bytes != sizeof(A) || !a.data) {
            throw ArgError{"argument " + std::to_string(index) + " must be a " + std::to_string(sizeof(A)) +
                           "-byte struct passed by value"};
        }
        A v;
        std::memcpy(&v, a.data, sizeof(A));
        return v;
    }
};

template <class T>
struct convert_arg<ptr<T>> {
    static ptr<T> run(const Arg& a, size_t index, std::deque<Alloc>& allocs) {
        using E = std::remove_const_t<T>;
        if (a.kind != ARG_BUFFER) throw ArgError{"argument " + std::to_string(index) + " must be a buffer"};
        if (!a.data) return ptr<T>();
        if (a.elem != elem_of<E>::value) {
            throw ArgError{"argument " + std::to_string(index) + " ('" + (a.name ? a.name : "?") +
                           "') has the wrong element type"};
        }
        if (!std::is_const<T>::value && !a.writable) {
            throw ArgError{"argument " + std::to_string(index) + " ('" + (a.name ? a.name : "?") +
                           "') is written by the kernel but was passed read-only"};
        }
        Alloc al;
        al.name = a.name ? a.name : "?";
        al.space = Space::Global;
        al.base = static_cast<char*>(a.data);
        al.bytes = a.bytes;
        al.writable = a.writable != 0;
        allocs.push_back(al);
        return ptr<T>(&allocs.back(), static_cast<T*>(a.data));
    }
};

#define GENFX_SIMT_SCALAR(type, kind_value, field)                                                         \
    template <>                                                                                            \
    struct convert_arg<type> {                                                                             \
        static type run(const Arg& a, size_t index, std::deque<Alloc>&) {                                  \
            if (a.kind != kind_value) {                                                                    \
                throw ArgError{"argument " + std::to_string(index) + " must be " #type};                   \
            }                                                                                              \
            return static_cast<type>(a.field);                                                             \
        }                                                                                                  \
    };
GENFX_SIMT_SCALAR(int, ARG_I32, i)
GENFX_SIMT_SCALAR(unsigned, ARG_U32, u)
GENFX_SIMT_SCALAR(long long, ARG_I64, i)
GENFX_SIMT_SCALAR(unsigned long long, ARG_U64, u)
GENFX_SIMT_SCALAR(float, ARG_F32, f)
GENFX_SIMT_SCALAR(double, ARG_F64, f)
#undef GENFX_SIMT_SCALAR

// --- the driver's way in: raw kernelParams -------------------------------------------

// Maps a device address to the allocation holding it; false when none does.
using Resolve = int (*)(void* ctx, uint64_t addr, uint64_t* base, uint64_t* bytes);

// Mirrored by `#[repr(C)] struct ParamInfo` in kernels/src/lib.rs.
struct ParamInfo {
    uint32_t size;     // bytes cuLaunchKernel reads through the parameter's pointer
    uint32_t pointer;  // 1 for a device pointer
};

struct RawContext {
    Resolve resolve;
    void* ctx;
    std::deque<std::string> names;  // allocation names, alive for the launch
};

template <class A>
struct raw_arg {
    static_assert(std::is_trivially_copyable<A>::value, "kernel parameters are trivially copyable");
    static constexpr uint32_t pointer = 0;
    static A run(const void* value, size_t, std::deque<Alloc>&, RawContext&) {
        A v;
        std::memcpy(&v, value, sizeof(A));
        return v;
    }
};

template <class T>
struct raw_arg<ptr<T>> {
    static constexpr uint32_t pointer = 1;
    static ptr<T> run(const void* value, size_t index, std::deque<Alloc>& allocs, RawContext& rc) {
        uint64_t addr = 0;
        std::memcpy(&addr, value, sizeof(addr));
        if (addr == 0) return ptr<T>();
        uint64_t base = 0, bytes = 0;
        if (!rc.resolve(rc.ctx, addr, &base, &bytes)) {
            char hex[32];
            std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(addr));
            throw ArgError{"argument " + std::to_string(index) + " (device address " + hex +
                           ") is not inside any live allocation"};
        }
        char label[96];
        std::snprintf(label, sizeof label, "argument %zu (allocation of %llu bytes at 0x%llx)", index,
                      static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(base));
        rc.names.emplace_back(label);
        Alloc al;
        al.name = rc.names.back().c_str();
        al.space = Space::Global;
        al.base = reinterpret_cast<char*>(static_cast<uintptr_t>(base));
        al.bytes = bytes;
        al.writable = true;
        allocs.push_back(al);
        return ptr<T>(&allocs.back(), reinterpret_cast<T*>(static_cast<uintptr_t>(addr)));
    }
};

template <class A>
constexpr uint32_t raw_size() {
    return raw_arg<A>::pointer ? 8u : uint32_t(sizeof(A));
}

template <class... A, size_t... I>
std::tuple<A...> raw_all(void* const* params, std::deque<Alloc>& allocs, RawContext& rc, std::index_sequence<I...>) {
    return std::tuple<A...>{raw_arg<A>::run(params[I], I, allocs, rc)...};
}

using Entry = std::function<LaunchResult(const Arg* args, size_t nargs, dim3 grid, dim3 block, size_t smem)>;
// `execute` false: unpack and check every argument, run nothing (the
// driver's dry run).
using RawEntry = std::function<LaunchResult(void* const* params, RawContext& rc, dim3 grid, dim3 block, size_t smem,
                                            bool execute)>;

struct Kernel {
    Entry run;
    RawEntry raw;
    std::vector<ParamInfo> params;
};

template <class... A, size_t... I>
std::tuple<A...> convert_all(const Arg* args, std::deque<Alloc>& allocs, std::index_sequence<I...>) {
    return std::tuple<A...>{convert_arg<A>::run(args[I], I, allocs)...};
}

struct Registry {
    // module (source file stem) -> kernel name -> kernel
    std::map<std::string, std::map<std::string, Kernel>> modules;
    // the module whose kernels are being registered
    std::string module;

    // The kernel `name` of any module, when exactly one module has it.
    const Kernel* find_unique(const std::string& name, std::string* error) const {
        const Kernel* found = nullptr;
        std::string where;
        for (const auto& m : modules) {
            auto it = m.second.find(name);
            if (it == m.second.end()) continue;
            if (found) {
                *error = "kernel name '" + name + "' is in modules '" + where + "' and '" + m.first +
                         "'; name the module";
                return nullptr;
            }
            found = &it->second;
            where = m.first;
        }
        if (!found) *error = "no emulated kernel named '" + name + "'";
        return found;
    }

    const Kernel* find(const std::string& module_name, const std::string& name) const {
        auto m = modules.find(module_name);
        if (m == modules.end()) return nullptr;
        auto it = m->second.find(name);
        return it == m->second.end() ? nullptr : &it->second;
    }

    template <class... A>
    void add(const char* name, void (*kernel)(A...)) {
        Kernel& k = modules[module][name];
        k.params = {ParamInfo{raw_size<A>(), raw_arg<A>::pointer}...};
        k.raw = [name, kernel](void* const* params, RawContext& rc, dim3 grid, dim3 block, size_t smem,
                               bool execute) -> LaunchResult {
            LaunchResult r;
            std::deque<Alloc> allocs;
            try {
                auto values = raw_all<A...>(params, allocs, rc, std::index_sequence_for<A...>{});
                if (!execute) return check_launch_shape(name, grid, block, smem);
                return launch(name, grid, block, smem, [&values, kernel] { std::apply(kernel, values); });
            } catch (const ArgError& e) {
                r.ok = false;
                r.bad_arguments = true;
                r.error = std::string("kernel '") + name + "': " + e.message;
                return r;
            }
        };
        k.run = [name, kernel](const Arg* args, size_t nargs, dim3 grid, dim3 block,
                               size_t smem) -> LaunchResult {
            LaunchResult r;
            if (nargs != sizeof...(A)) {
                r.ok = false;
                r.bad_arguments = true;
                r.error = std::string("kernel '") + name + "' takes " + std::to_string(sizeof...(A)) +
                          " arguments, got " + std::to_string(nargs);
                return r;
            }
            std::deque<Alloc> allocs;
            try {
                auto values = convert_all<A...>(args, allocs, std::index_sequence_for<A...>{});
                return launch(name, grid, block, smem, [&values, kernel] { std::apply(kernel, values); });
            } catch (const ArgError& e) {
                r.ok = false;
                r.bad_arguments = true;
                r.error = std::string("kernel '") + name + "': " + e.message;
                return r;
            }
        };
    }
};

}  // namespace simt

#define GENFX_SIMT_EXPORTS(file) void genfx_simt_register_##file(::simt::Registry& registry)
#define GENFX_SIMT_KERNEL(kernel) registry.add(#kernel, &kernel)
