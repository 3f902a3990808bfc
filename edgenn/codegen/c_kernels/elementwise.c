/* Add / Sub / Mul with broadcasting over up to 4 dimensions (row of ops/elementwise.py). Each operand
 * comes from the arena or, when constant, from the weights blob. Add/Sub follow TFLite: both inputs
 * shifted left by 20 bits and rescaled to twice the larger input scale, summed, then rescaled. */
#include "edgenn_kernels.h"

enum { ADD = 0, SUB = 1, MUL = 2, LEFT_SHIFT = 20 };

void edgenn_binary(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *first = (p[1] ? ctx->weights : ctx->arena) + p[2];
    const int8_t *second = (p[3] ? ctx->weights : ctx->arena) + p[4];
    int8_t *y = ctx->arena + p[5];
    const int32_t *sa = p + 10, *sb = p + 14;
    const int32_t kind = p[18], zp_a = p[19], zp_b = p[20], zp_out = p[21];
    const int32_t *mult = ctx->multipliers + p[22], *shift = ctx->shifts + p[22];
    const int32_t lo = p[23], hi = p[24];
    int32_t i0, i1, i2, i3, index = 0;
    for (i0 = 0; i0 < p[6]; i0++) {
        for (i1 = 0; i1 < p[7]; i1++) {
            for (i2 = 0; i2 < p[8]; i2++) {
                for (i3 = 0; i3 < p[9]; i3++) {
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
