/* Mean over the spatial axes, channels-last: TFLM's integer mean (row of ops/reduce.py), whose
 * multiplier already carries the division by the pixel count. */
#include "edgenn_kernels.h"

void edgenn_mean(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t n = p[3], c = p[4], zp_in = p[5], zp_out = p[6];
    const int32_t q = ctx->multipliers[p[7]], shift = ctx->shifts[p[7]];
    int32_t ch, i;
    for (ch = 0; ch < c; ch++) {
        int32_t total = 0;
        for (i = 0; i < n; i++) {
            total += x[i * c + ch];
        }
        y[ch] = (int8_t)edgenn_clamp(edgenn_mbqm(total - zp_in * n, q, shift) + zp_out, -128, 127);
    }
}
