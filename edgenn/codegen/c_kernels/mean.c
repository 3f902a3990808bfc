/* Mean over the spatial axes, channels-last: TFLM's integer mean (row of ops/reduce.py), whose
 * multiplier already carries the division by the pixel count. */
#include "edgenn_kernels.h"

EDGENN_SHARED void edgenn_mean(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_MEAN_X];
    int8_t *y = ctx->arena + p[EDGENN_MEAN_Y];
    const int32_t n = p[EDGENN_MEAN_N], c = p[EDGENN_MEAN_C], zp_in = p[EDGENN_MEAN_ZP_IN];
    const int32_t zp_out = p[EDGENN_MEAN_ZP_OUT];
    const int32_t q = ctx->multipliers[p[EDGENN_MEAN_M]], shift = ctx->shifts[p[EDGENN_MEAN_M]];
    int32_t ch, i;
    for (ch = 0; ch < c; ch++) {
        int32_t total = 0;
        for (i = 0; i < n; i++) {
            total += x[i * c + ch];
        }
        y[ch] = (int8_t)edgenn_clamp(edgenn_mbqm(total - zp_in * n, q, shift) + zp_out, -128, 127);
    }
}

#ifdef EDGENN_WIDE /* 16x8 models only: no flash for int8 ones */
EDGENN_SHARED void edgenn_mean16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *x = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_MEAN_X]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_MEAN_Y]);
    const int32_t n = p[EDGENN_MEAN_N], c = p[EDGENN_MEAN_C], zp_in = p[EDGENN_MEAN_ZP_IN];
    const int32_t zp_out = p[EDGENN_MEAN_ZP_OUT];
    const int32_t q = ctx->multipliers[p[EDGENN_MEAN_M]], shift = ctx->shifts[p[EDGENN_MEAN_M]];
    int32_t ch, i;
    for (ch = 0; ch < c; ch++) {
        int32_t total = 0; /* the program checked n * 65535 fits int32 */
        for (i = 0; i < n; i++) {
            total += x[i * c + ch];
        }
        y[ch] = (int16_t)edgenn_clamp(edgenn_mbqm(total - zp_in * n, q, shift) + zp_out, -32768,
                                      32767);
    }
}
#endif
