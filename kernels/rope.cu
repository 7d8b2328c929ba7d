// 3-D rotary position embedding, LTX style: interleaved pairs (x0, x1) of the
// whole inner dimension rotate by per-element cos/sin tables. The tables come
// from the host, computed in f64 and rounded once (LTX's angles reach ~4.6e5
// rad, where f32 angle arithmetic is off by up to 0.08).
#include "elementwise.cuh"

// y[r, 2j..2j+1] = rotate(x[r, 2j..2j+1]) with cos/sin row r % table_rows of
// [table_rows, cols] f32 tables; x and y may alias.
template <class T>
__device__ void rope_kernel(dptr<const T> x, dptr<T> y, dptr<const float> cos_t, dptr<const float> sin_t, int rows,
                            int cols, i64 x_ld, i64 y_ld, int table_rows) {
    const int half = cols / 2;
    const i64 n = i64(rows) * half;
    for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x) {
        const i64 r = i / half;
        const int c = int(i % half) * 2;
        const i64 t = (r % table_rows) * cols + c;
        float y0, y1;
        rope_pair(to_f32(T(x[r * x_ld + c])), to_f32(T(x[r * x_ld + c + 1])), float(cos_t[t]), float(sin_t[t]),
                  float(cos_t[t + 1]), float(sin_t[t + 1]), y0, y1);
        y[r * y_ld + c] = from_f32<T>(y0);
        y[r * y_ld + c + 1] = from_f32<T>(y1);
    }
}

#define GENFX_ROPE(T)                                                                                          \
    extern "C" __global__ void rope_interleaved_##T(dptr<const T> x, dptr<T> y, dptr<const float> cos_t,        \
                                                    dptr<const float> sin_t, int rows, int cols, i64 x_ld,        \
                                                    i64 y_ld, int table_rows) {                                 \
        rope_kernel<T>(x, y, cos_t, sin_t, rows, cols, x_ld, y_ld, table_rows);                                 \
    }
GENFX_ROPE(bf16)
GENFX_ROPE(f16)

#ifdef GENFX_SIMT
GENFX_SIMT_EXPORTS(rope) {
    GENFX_SIMT_KERNEL(rope_interleaved_bf16);
    GENFX_SIMT_KERNEL(rope_interleaved_f16);
}
#endif
