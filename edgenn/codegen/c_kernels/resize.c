/* Resize, nearest neighbour (row: RESIZE_ROW of ops/resize.py, whose fields edgenn_registry.h
 * names): each output element copies the input element its per-axis source indices name. The
 * indices (one table per axis, in ctx->resize_index) were computed by the compiler with the float
 * rule of the model's framework, so no float arithmetic runs here. int16 tensors come as bytes: the
 * innermost table names both bytes of every element. */
#include "edgenn_kernels.h"

EDGENN_SHARED void edgenn_resize_nearest(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_RESIZE_X];
    int8_t *y = ctx->arena + p[EDGENN_RESIZE_Y];
    const int32_t d1 = p[EDGENN_RESIZE_D1], d2 = p[EDGENN_RESIZE_D2], d3 = p[EDGENN_RESIZE_D3];
    const int32_t *t0 = ctx->resize_index + p[EDGENN_RESIZE_T0];
    const int32_t *t1 = ctx->resize_index + p[EDGENN_RESIZE_T1];
    const int32_t *t2 = ctx->resize_index + p[EDGENN_RESIZE_T2];
    const int32_t *t3 = ctx->resize_index + p[EDGENN_RESIZE_T3];
    const int32_t o3 = p[EDGENN_RESIZE_O3];
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p[EDGENN_RESIZE_O0]; i0++) {
        for (i1 = 0; i1 < p[EDGENN_RESIZE_O1]; i1++) {
            const int32_t outer = t0[i0] * d1 + t1[i1];
            for (i2 = 0; i2 < p[EDGENN_RESIZE_O2]; i2++) {
                const int8_t *src = x + (outer * d2 + t2[i2]) * d3;
                for (i3 = 0; i3 < o3; i3++) {
                    y[i3] = src[t3[i3]];
                }
                y += o3;
            }
        }
    }
}
