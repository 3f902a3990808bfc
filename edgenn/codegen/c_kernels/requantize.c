/* Requantize with a clamp: TFLite QUANTIZE between int8 tensors, and RELU / RELU6 / RELU_N1_TO_1
 * (row of ops/quantization.py: requantize_row). */
#include "edgenn_kernels.h"

EDGENN_SHARED void edgenn_requantize(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_REQUANTIZE_X];
    int8_t *y = ctx->arena + p[EDGENN_REQUANTIZE_Y];
    const int32_t n = p[EDGENN_REQUANTIZE_N], zp_in = p[EDGENN_REQUANTIZE_ZP_IN];
    const int32_t zp_out = p[EDGENN_REQUANTIZE_ZP_OUT], lo = p[EDGENN_REQUANTIZE_LO];
    const int32_t hi = p[EDGENN_REQUANTIZE_HI];
    const int32_t q = ctx->multipliers[p[EDGENN_REQUANTIZE_M]];
    const int32_t shift = ctx->shifts[p[EDGENN_REQUANTIZE_M]];
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = (int8_t)edgenn_clamp(edgenn_mbqm(x[i] - zp_in, q, shift) + zp_out, lo, hi);
    }
}

#ifdef EDGENN_WIDE /* 16x8 models only: no flash for int8 ones */
/* Requantize where either side is int16 (the boundaries of 16x8 layers); same arithmetic. */
EDGENN_SHARED void edgenn_requantize_wide(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_REQUANTIZE_X];
    int8_t *y = ctx->arena + p[EDGENN_REQUANTIZE_Y];
    const int16_t *x16 = (const int16_t *)(const void *)x;
    int16_t *y16 = (int16_t *)(void *)y;
    const int32_t n = p[EDGENN_REQUANTIZE_N], zp_in = p[EDGENN_REQUANTIZE_ZP_IN];
    const int32_t zp_out = p[EDGENN_REQUANTIZE_ZP_OUT], lo = p[EDGENN_REQUANTIZE_LO];
    const int32_t hi = p[EDGENN_REQUANTIZE_HI];
    const int32_t wide_in = p[EDGENN_REQUANTIZE_WIDE_IN], wide_out = p[EDGENN_REQUANTIZE_WIDE_OUT];
    const int32_t q = ctx->multipliers[p[EDGENN_REQUANTIZE_M]];
    const int32_t shift = ctx->shifts[p[EDGENN_REQUANTIZE_M]];
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t v = wide_in ? x16[i] : x[i];
        const int32_t out = edgenn_clamp(edgenn_mbqm(v - zp_in, q, shift) + zp_out, lo, hi);
        if (wide_out) {
            y16[i] = (int16_t)out;
        } else {
            y[i] = (int8_t)out;
        }
    }
}
#endif
