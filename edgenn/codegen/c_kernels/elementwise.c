/* Add / Sub / Mul with broadcasting over up to 4 dimensions (row of ops/elementwise.py). Each operand
 * comes from the arena or, when constant, from the weights blob. Add/Sub follow TFLite: both inputs
 * shifted left by 20 bits and rescaled to twice the larger input scale, summed, then rescaled. */
#include "edgenn_kernels.h"

enum { ADD = 0, SUB = 1, MUL = 2, LEFT_SHIFT = 20 };

EDGENN_SHARED void edgenn_binary(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *first =
        (p[EDGENN_BINARY_A_CONST] ? ctx->weights : ctx->arena) + p[EDGENN_BINARY_A];
    const int8_t *second =
        (p[EDGENN_BINARY_B_CONST] ? ctx->weights : ctx->arena) + p[EDGENN_BINARY_B];
    int8_t *y = ctx->arena + p[EDGENN_BINARY_Y];
    const int32_t *sa = p + EDGENN_BINARY_A_S0, *sb = p + EDGENN_BINARY_B_S0;
    const int32_t kind = p[EDGENN_BINARY_KIND], zp_a = p[EDGENN_BINARY_ZP_A];
    const int32_t zp_b = p[EDGENN_BINARY_ZP_B], zp_out = p[EDGENN_BINARY_ZP_OUT];
    const int32_t *mult = ctx->multipliers + p[EDGENN_BINARY_M];
    const int32_t *shift = ctx->shifts + p[EDGENN_BINARY_M];
    const int32_t lo = p[EDGENN_BINARY_LO], hi = p[EDGENN_BINARY_HI];
    int32_t i0, i1, i2, i3, index = 0;
    for (i0 = 0; i0 < p[EDGENN_BINARY_D0]; i0++) {
        for (i1 = 0; i1 < p[EDGENN_BINARY_D1]; i1++) {
            for (i2 = 0; i2 < p[EDGENN_BINARY_D2]; i2++) {
                for (i3 = 0; i3 < p[EDGENN_BINARY_D3]; i3++) {
                    const int32_t va = first[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3]] - zp_a;
                    const int32_t vb = second[i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3]] - zp_b;
                    int32_t value;
                    if (kind == MUL) {
                        value = edgenn_mbqm(va * vb, mult[2], shift[2]);
                    } else {
                        const int32_t a = edgenn_mbqm(va * (1 << LEFT_SHIFT), mult[0], shift[0]);
                        const int32_t b = edgenn_mbqm(vb * (1 << LEFT_SHIFT), mult[1], shift[1]);
                        value = edgenn_mbqm(kind == ADD ? a + b : a - b, mult[2], shift[2]);
                    }
                    y[index++] = (int8_t)edgenn_clamp(value + zp_out, lo, hi);
                }
            }
        }
    }
}
