// C entry points of the emulated kernels, for the Rust tests
// (kernels/src/lib.rs).
#include <cstdio>

#include "../common.cuh"

#define GENFX_FILES(X) \
    X(selftest)           \
    X(activation)         \
    X(attention)          \
    X(conv3d)             \
    X(conv3d_mma)         \
    X(frame)              \
    X(norm)               \
    X(pixel_shuffle)      \
    X(rope)               \
    X(sampler)            \
    X(tensor_ops)

#define GENFX_DECLARE(file) GENFX_SIMT_EXPORTS(file);
GENFX_FILES(GENFX_DECLARE)

namespace {
const simt::Registry& registry_instance() {
    static const simt::Registry registry = [] {
        simt::Registry registry;
#define GENFX_CALL(file)      \
    registry.module = #file; \
    genfx_simt_register_##file(registry);
        GENFX_FILES(GENFX_CALL)
        return registry;
    }();
    return registry;
}

void copy_message(const std::string& message, char* out, uint64_t capacity) {
    if (!out || capacity == 0) return;
    size_t n = message.size() < capacity - 1 ? message.size() : size_t(capacity - 1);
    std::memcpy(out, message.data(), n);
    out[n] = 0;
}
}  // namespace

namespace {
int report(const simt::LaunchResult& res, char* error, uint64_t error_capacity) {
    if (!res.ok) {
        copy_message(res.error, error, error_capacity);
        return res.bad_arguments ? 2 : 1;
    }
    return 0;
}
}  // namespace

// Runs `module`'s `kernel`; with `module` null, the kernel of that name in
// whichever module has it (refused when several do).
// 0: ran; 1: the kernel faulted (message in `error`); 2: unknown kernel, a
// name several modules define, or arguments that do not match its parameters.
extern "C" int genfx_simt_launch(const char* module, const char* kernel, const uint32_t* grid,
                                 const uint32_t* block, uint64_t dynamic_smem, const simt::Arg* args, uint64_t nargs,
                                 char* error, uint64_t error_capacity) {
    std::string why;
    const simt::Kernel* k = nullptr;
    if (module) {
        k = registry_instance().find(module, kernel);
        if (!k) why = std::string("no emulated kernel '") + kernel + "' in module '" + module + "'";
    } else {
        k = registry_instance().find_unique(kernel, &why);
    }
    if (!k) {
        copy_message(why, error, error_capacity);
        return 2;
    }
    try {
        return report(k->run(args, size_t(nargs), simt::dim3(grid[0], grid[1], grid[2]),
                             simt::dim3(block[0], block[1], block[2]), size_t(dynamic_smem)),
                      error, error_capacity);
    } catch (const std::exception& e) {
        copy_message(std::string("emulator error: ") + e.what(), error, error_capacity);
        return 1;
    }
}

// The driver's launch: `params` as cuLaunchKernel received them, pointers
// resolved through `resolve`. With `execute` 0 the arguments and the launch
// shape are checked and nothing runs. Same return codes as above.
extern "C" int genfx_simt_launch_raw(const char* module, const char* kernel, const uint32_t* grid,
                                     const uint32_t* block, uint64_t dynamic_smem, void* const* params,
                                     simt::Resolve resolve, void* resolve_ctx, int execute, char* error,
                                     uint64_t error_capacity) {
    const simt::Kernel* k = registry_instance().find(module, kernel);
    if (!k) {
        copy_message(std::string("no emulated kernel '") + kernel + "' in module '" + module + "'", error,
                     error_capacity);
        return 2;
    }
    try {
        simt::RawContext rc{resolve, resolve_ctx, {}};
        return report(k->raw(params, rc, simt::dim3(grid[0], grid[1], grid[2]), simt::dim3(block[0], block[1], block[2]),
                             size_t(dynamic_smem), execute != 0),
                      error, error_capacity);
    } catch (const std::exception& e) {
        copy_message(std::string("emulator error: ") + e.what(), error, error_capacity);
        return 1;
    }
}

// The parameter list of `module`'s `kernel`: writes up to `capacity` entries
// and returns the count, or -1 when there is no such kernel.
extern "C" int64_t genfx_simt_kernel_params(const char* module, const char* kernel, simt::ParamInfo* out,
                                           uint64_t capacity) {
    const simt::Kernel* k = registry_instance().find(module, kernel);
    if (!k) return -1;
    for (size_t i = 0; i < k->params.size() && i < capacity; i++) out[i] = k->params[i];
    return int64_t(k->params.size());
}

// Writes the registered kernel names, one per line; returns the length needed.
extern "C" uint64_t genfx_simt_kernel_names(char* out, uint64_t capacity) {
    std::string all;
    for (const auto& m : registry_instance().modules) {
        for (const auto& kv : m.second) {
            all += kv.first;
            all += '\n';
        }
    }
    copy_message(all, out, capacity);
    return all.size() + 1;
}

// Writes "module kernel" lines for every registered kernel; returns the
// length needed.
extern "C" uint64_t genfx_simt_module_kernels(char* out, uint64_t capacity) {
    std::string all;
    for (const auto& m : registry_instance().modules) {
        for (const auto& kv : m.second) {
            all += m.first;
            all += ' ';
            all += kv.first;
            all += '\n';
        }
    }
    copy_message(all, out, capacity);
    return all.size() + 1;
}
