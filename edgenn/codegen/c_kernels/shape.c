/* Data movement (rows of ops/shape.py): Transpose and Pad over up to 4 dimensions, Concatenation as
 * blockwise copies (inputs already share the output's quantization parameters). */
#include "edgenn_kernels.h"

EDGENN_SHARED void edgenn_transpose(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_TRANSPOSE_X];
    int8_t *y = ctx->arena + p[EDGENN_TRANSPOSE_Y];
    const int32_t *dims = p + EDGENN_TRANSPOSE_D0, *perm = p + EDGENN_TRANSPOSE_P0;
    int32_t strides[4], out_dims[4], step[4], axis, i0, i1, i2, i3, index = 0;
    strides[3] = 1;
    for (axis = 2; axis >= 0; axis--) {
        strides[axis] = strides[axis + 1] * dims[axis + 1];
    }
    for (axis = 0; axis < 4; axis++) {
        out_dims[axis] = dims[perm[axis]];
        step[axis] = strides[perm[axis]];
    }
    for (i0 = 0; i0 < out_dims[0]; i0++) {
        for (i1 = 0; i1 < out_dims[1]; i1++) {
            for (i2 = 0; i2 < out_dims[2]; i2++) {
                for (i3 = 0; i3 < out_dims[3]; i3++) {
                    y[index++] = x[i0 * step[0] + i1 * step[1] + i2 * step[2] + i3 * step[3]];
                }
            }
        }
    }
}

EDGENN_SHARED void edgenn_pad(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_PAD_X];
    int8_t *y = ctx->arena + p[EDGENN_PAD_Y];
    const int32_t o1 = p[EDGENN_PAD_O1], o2 = p[EDGENN_PAD_O2], o3 = p[EDGENN_PAD_O3];
    const int32_t b0 = p[EDGENN_PAD_BEGIN0], b1 = p[EDGENN_PAD_BEGIN1];
    const int32_t b2 = p[EDGENN_PAD_BEGIN2], b3 = p[EDGENN_PAD_BEGIN3];
    const int32_t total = p[EDGENN_PAD_O0] * o1 * o2 * o3;
    int32_t i, i0, i1, i2, i3, index = 0;
    for (i = 0; i < total; i++) {
        y[i] = (int8_t)p[EDGENN_PAD_VALUE];
    }
    for (i0 = 0; i0 < p[EDGENN_PAD_D0]; i0++) {
        for (i1 = 0; i1 < p[EDGENN_PAD_D1]; i1++) {
            for (i2 = 0; i2 < p[EDGENN_PAD_D2]; i2++) {
                int8_t *dst = y + (((i0 + b0) * o1 + i1 + b1) * o2 + i2 + b2) * o3 + b3;
                for (i3 = 0; i3 < p[EDGENN_PAD_D3]; i3++) {
                    dst[i3] = x[index++];
                }
            }
        }
    }
}

EDGENN_SHARED void edgenn_concat(const edgenn_context *ctx, const int32_t *p) {
    const int32_t outer = p[EDGENN_CONCAT_OUTER], out_block = p[EDGENN_CONCAT_BLOCK];
    const int32_t count = p[EDGENN_CONCAT_COUNT];
    int32_t o, k, i;
    for (o = 0; o < outer; o++) {
        int8_t *dst = ctx->arena + p[EDGENN_CONCAT_Y] + o * out_block;
        for (k = 0; k < count; k++) {
            /* the row's tail: (from weights?, offset, block) per input */
            const int32_t *part = p + EDGENN_CONCAT_COUNT + 1 + 3 * k;
            const int8_t *src = (part[0] ? ctx->weights : ctx->arena) + part[1] + o * part[2];
            for (i = 0; i < part[2]; i++) {
                dst[i] = src[i];
            }
            dst += part[2];
        }
    }
}
