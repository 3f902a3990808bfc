/* Requantize with a clamp: TFLite QUANTIZE between int8 tensors, and RELU / RELU6 / RELU_N1_TO_1
 * (row of ops/quantization.py: requantize_row). */
#include "edgenn_kernels.h"

void edgenn_requantize(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t n = p[3], zp_in = p[4], zp_out = p[5], lo = p[7], hi = p[8];
    const int32_t q = ctx->multipliers[p[6]], shift = ctx->shifts[p[6]];
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = (int8_t)edgenn_clamp(edgenn_mbqm(x[i] - zp_in, q, shift) + zp_out, lo, hi);
    }
}
