// Frame conversion between the host's interleaved RGBA (any row stride, also
// negative for bottom-up images; u8, u16 or f32 samples) and the model's
// planar RGB in [-1, 1]. Block (32, 8), one thread per pixel.
#include "elementwise.cuh"

// Row y of the host image starts at base + origin + y * row_stride (bytes):
// pass origin = offset of the top row and a negative stride for bottom-up.
template <class S, class T>
__device__ void rgba_to_planar_kernel(dptr<const u8> base, i64 origin, i64 row_stride, int width, int height,
                                      dptr<T> out) {
    const int x = int(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = int(blockIdx.y * blockDim.y + threadIdx.y);
    if (x >= width || y >= height) return;
    dptr<const S> px = ptr_cast<const S>(base + origin + i64(y) * row_stride) + i64(x) * 4;
    const i64 plane = i64(width) * height, at = i64(y) * width + x;
    for (int c = 0; c < 3; c++) out[c * plane + at] = from_f32<T>(unit_to_model(sample_to_unit(S(px[c]))));
}

// Alpha is written opaque: generated pixels cover the frame.
template <class S, class T>
__device__ void planar_to_rgba_kernel(dptr<const T> in, dptr<u8> base, i64 origin, i64 row_stride, int width,
                                      int height) {
    const int x = int(blockIdx.x * blockDim.x + threadIdx.x);
    const int y = int(blockIdx.y * blockDim.y + threadIdx.y);
    if (x >= width || y >= height) return;
    dptr<S> px = ptr_cast<S>(base + origin + i64(y) * row_stride) + i64(x) * 4;
    const i64 plane = i64(width) * height, at = i64(y) * width + x;
    for (int c = 0; c < 3; c++) px[c] = unit_to_sample<S>(model_to_unit(to_f32(T(in[c * plane + at]))));
    px[3] = unit_to_sample<S>(1.0f);
}

typedef float f32;
#define GENFX_FRAME(S, T)                                                                                      \
    extern "C" __global__ void rgba_##S##_to_planar_##T(dptr<const u8> base, i64 origin, i64 row_stride,        \
                                                       int width, int height, dptr<T> out) {                    \
        rgba_to_planar_kernel<S, T>(base, origin, row_stride, width, height, out);                              \
    }                                                                                                           \
    extern "C" __global__ void planar_##T##_to_rgba_##S(dptr<const T> in, dptr<u8> base, i64 origin,            \
                                                       i64 row_stride, int width, int height) {                 \
        planar_to_rgba_kernel<S, T>(in, base, origin, row_stride, width, height);                               \
    }
GENFX_FRAME(u8, f32)
GENFX_FRAME(u16, f32)
GENFX_FRAME(f32, f32)
GENFX_FRAME(u8, bf16)
GENFX_FRAME(u16, bf16)
GENFX_FRAME(f32, bf16)
GENFX_FRAME(u8, f16)
GENFX_FRAME(u16, f16)
GENFX_FRAME(f32, f16)

#ifdef GENFX_SIMT
#define GENFX_FRAME_EXPORT(S, T)                       \
    GENFX_SIMT_KERNEL(rgba_##S##_to_planar_##T);       \
    GENFX_SIMT_KERNEL(planar_##T##_to_rgba_##S);
GENFX_SIMT_EXPORTS(frame) {
    GENFX_FRAME_EXPORT(u8, f32)
    GENFX_FRAME_EXPORT(u16, f32)
    GENFX_FRAME_EXPORT(f32, f32)
    GENFX_FRAME_EXPORT(u8, bf16)
    GENFX_FRAME_EXPORT(u16, bf16)
    GENFX_FRAME_EXPORT(f32, bf16)
    GENFX_FRAME_EXPORT(u8, f16)
    GENFX_FRAME_EXPORT(u16, f16)
    GENFX_FRAME_EXPORT(f32, f16)
}
#endif
