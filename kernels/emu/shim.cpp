// C entry points of the emulated kernels, for the Rust tests
// (kernels/src/lib.rs).
#include <cstdio>

#include "../common.cuh"

#define GENFX_FILES(X) \
    X(selftest)           \
    X(activation)         \
    X(attention)          \
    X(conv3d)             \
    X(frame)              \
    X(norm)               \
    X(pixel_shuffle)      \
    X(rope)               \
    X(sampler)

#define GENFX_DECLARE(file) GENFX_SIMT_EXPORTS(file);
GENFX_FILES(GENFX_DECLARE)

namespace {
const simt::Registry& registry_instance() {
    static const simt::Registry registry = [] {
        simt::Registry registry;
#define GENFX_CALL(file) genfx_simt_register_##file(registry);
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

// 0: ran; 1: the kernel faulted (message in `error`); 2: unknown kernel or
// arguments that do not match its parameters.
extern "C" int genfx_simt_launch(const char* kernel, const uint32_t* grid, const uint32_t* block,
                                 uint64_t dynamic_smem, const simt::Arg* args, uint64_t nargs, char* error,
                                 uint64_t error_capacity) {
    const simt::Registry& r = registry_instance();
    auto it = r.kernels.find(kernel);
    if (it == r.kernels.end()) {
        copy_message(std::string("no emulated kernel named '") + kernel + "'", error, error_capacity);
        return 2;
    }
    try {
        simt::LaunchResult res = it->second(args, size_t(nargs), simt::dim3(grid[0], grid[1], grid[2]),
                                            simt::dim3(block[0], block[1], block[2]), size_t(dynamic_smem));
        if (!res.ok) {
            copy_message(res.error, error, error_capacity);
            return res.bad_arguments ? 2 : 1;
        }
        return 0;
    } catch (const std::exception& e) {
        copy_message(std::string("emulator error: ") + e.what(), error, error_capacity);
        return 1;
    }
}

// Writes the registered kernel names, one per line; returns the length needed.
extern "C" uint64_t genfx_simt_kernel_names(char* out, uint64_t capacity) {
    std::string all;
    for (const auto& kv : registry_instance().kernels) {
        all += kv.first;
        all += '\n';
    }
    copy_message(all, out, capacity);
    return all.size() + 1;
}
