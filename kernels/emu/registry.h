// Launch-by-name for emulated kernels: the Rust tests describe arguments as a
// flat array of `Arg`; each registered kernel checks them against its C++
// parameter types (buffer element type, writability, scalar kinds) and runs.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <tuple>
#include <utility>

namespace simt {

// Mirrored by `#[repr(C)] struct Arg` in kernels/src/lib.rs.
enum ArgKind : int32_t { ARG_BUFFER = 0, ARG_I32 = 1, ARG_U32 = 2, ARG_I64 = 3, ARG_U64 = 4, ARG_F32 = 5, ARG_F64 = 6 };
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

template <class A>
struct convert_arg;

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

using Entry = std::function<LaunchResult(const Arg* args, size_t nargs, dim3 grid, dim3 block, size_t smem)>;

template <class... A, size_t... I>
std::tuple<A...> convert_all(const Arg* args, std::deque<Alloc>& allocs, std::index_sequence<I...>) {
    return std::tuple<A...>{convert_arg<A>::run(args[I], I, allocs)...};
}

struct Registry {
    std::map<std::string, Entry> kernels;

    template <class... A>
    void add(const char* name, void (*kernel)(A...)) {
        kernels[name] = [name, kernel](const Arg* args, size_t nargs, dim3 grid, dim3 block,
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
