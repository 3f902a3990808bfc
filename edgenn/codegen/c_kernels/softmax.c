/* Softmax over the last axis: TFLM's int8 algorithm (row of ops/softmax.py). Output scale 1/256,
 * zero point -128. */
#include "edgenn_kernels.h"

enum { SCALED_DIFF_INTEGER_BITS = 5, ACCUMULATION_INTEGER_BITS = 12 };

static int leading_zeros(uint32_t v) {
    int n = 0;
    if (v == 0) {
        return 32;
    }
    while (!(v & 0x80000000u)) {
        v <<= 1;
        n++;
    }
    return n;
}

EDGENN_SHARED void edgenn_softmax(const edgenn_context *ctx, const int32_t *p) {
    const int32_t outer = p[EDGENN_SOFTMAX_OUTER], depth = p[EDGENN_SOFTMAX_DEPTH];
    const int32_t diff_min = p[EDGENN_SOFTMAX_DIFF_MIN];
    const int32_t q = ctx->multipliers[p[EDGENN_SOFTMAX_M]];
    const int32_t shift = ctx->shifts[p[EDGENN_SOFTMAX_M]];
    int32_t r, c;
    for (r = 0; r < outer; r++) {
        const int8_t *x = ctx->arena + p[EDGENN_SOFTMAX_X] + r * depth;
        int8_t *y = ctx->arena + p[EDGENN_SOFTMAX_Y] + r * depth;
        int32_t peak = -128, total = 0, reciprocal, exponent;
        int headroom;
        for (c = 0; c < depth; c++) {
            peak = x[c] > peak ? x[c] : peak;
        }
        for (c = 0; c < depth; c++) {
            const int32_t diff = x[c] - peak;
            if (diff >= diff_min) {
                const int32_t e = edgenn_exp_on_negative_values(edgenn_mbqm(diff, q, shift),
                                                                SCALED_DIFF_INTEGER_BITS);
                total += edgenn_rdbypot(e, ACCUMULATION_INTEGER_BITS); /* Q12.19 */
            }
        }
        headroom = leading_zeros((uint32_t)total);
        reciprocal = edgenn_one_over_one_plus_x(
            (int32_t)(((uint32_t)total << headroom) - 0x80000000u));
        exponent = ACCUMULATION_INTEGER_BITS - headroom + 31 - 8;
        for (c = 0; c < depth; c++) {
            const int32_t diff = x[c] - peak;
            int32_t out = -128;
            if (diff >= diff_min) {
                const int32_t e = edgenn_exp_on_negative_values(edgenn_mbqm(diff, q, shift),
                                                                SCALED_DIFF_INTEGER_BITS);
                out = edgenn_clamp(edgenn_rdbypot(edgenn_srdhm(reciprocal, e), exponent) - 128, -128, 127);
            }
            y[c] = (int8_t)out;
        }
    }
}
