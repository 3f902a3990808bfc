/* Elementwise activations with their own integer algorithms (rows of ops/activation.py): LeakyRelu,
 * PRelu, Logistic / Tanh (gemmlowp on Q4.27 inputs, as TFLM) and HardSwish (TFLM's 16-bit path). */
#include "edgenn_kernels.h"

enum { INPUT_INTEGER_BITS = 4 };

/* LeakyRelu of one value: s_in/s_out at and above the zero point, alpha * s_in/s_out below */
static int32_t leaky(const edgenn_context *ctx, int32_t x, int32_t zp_in, int32_t zp_out, int32_t m) {
    const int32_t v = x - zp_in, k = v >= 0 ? m : m + 1;
    return edgenn_mbqm(v, ctx->multipliers[k], ctx->shifts[k]) + zp_out;
}

EDGENN_SHARED void edgenn_leaky_relu(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_LEAKY_RELU_X];
    int8_t *y = ctx->arena + p[EDGENN_LEAKY_RELU_Y];
    const int32_t n = p[EDGENN_LEAKY_RELU_N], zp_in = p[EDGENN_LEAKY_RELU_ZP_IN];
    const int32_t zp_out = p[EDGENN_LEAKY_RELU_ZP_OUT], m = p[EDGENN_LEAKY_RELU_M];
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = (int8_t)edgenn_clamp(leaky(ctx, x[i], zp_in, zp_out, m), -128, 127);
    }
}

#ifdef EDGENN_WIDE /* 16x8 models only: no flash for int8 ones */
EDGENN_SHARED void edgenn_leaky_relu16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *x = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_LEAKY_RELU_X]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_LEAKY_RELU_Y]);
    const int32_t n = p[EDGENN_LEAKY_RELU_N], zp_in = p[EDGENN_LEAKY_RELU_ZP_IN];
    const int32_t zp_out = p[EDGENN_LEAKY_RELU_ZP_OUT], m = p[EDGENN_LEAKY_RELU_M];
    int32_t i;
    for (i = 0; i < n; i++) {
        y[i] = (int16_t)edgenn_clamp(leaky(ctx, x[i], zp_in, zp_out, m), -32768, 32767);
    }
}
#endif

EDGENN_SHARED void edgenn_prelu(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_PRELU_X];
    const int8_t *alpha = ctx->weights + p[EDGENN_PRELU_ALPHA];
    int8_t *y = ctx->arena + p[EDGENN_PRELU_Y];
    const int32_t *sx = p + EDGENN_PRELU_X_S0, *sa = p + EDGENN_PRELU_A_S0;
    const int32_t zp_in = p[EDGENN_PRELU_ZP_IN], zp_a = p[EDGENN_PRELU_ZP_ALPHA];
    const int32_t zp_out = p[EDGENN_PRELU_ZP_OUT], m = p[EDGENN_PRELU_M];
    int32_t i0, i1, i2, i3, index = 0;
    for (i0 = 0; i0 < p[EDGENN_PRELU_D0]; i0++) {
        for (i1 = 0; i1 < p[EDGENN_PRELU_D1]; i1++) {
            for (i2 = 0; i2 < p[EDGENN_PRELU_D2]; i2++) {
                for (i3 = 0; i3 < p[EDGENN_PRELU_D3]; i3++) {
                    const int32_t v = x[i0 * sx[0] + i1 * sx[1] + i2 * sx[2] + i3 * sx[3]] - zp_in;
                    int32_t out;
                    if (v >= 0) {
                        out = edgenn_mbqm(v, ctx->multipliers[m], ctx->shifts[m]);
                    } else {
                        const int32_t slope =
                            alpha[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3]] - zp_a;
                        out = edgenn_mbqm(v * slope, ctx->multipliers[m + 1], ctx->shifts[m + 1]);
                    }
                    y[index++] = (int8_t)edgenn_clamp(out + zp_out, -128, 127);
                }
            }
        }
    }
}

EDGENN_SHARED void edgenn_logistic_tanh(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_LOGISTIC_TANH_X];
    int8_t *y = ctx->arena + p[EDGENN_LOGISTIC_TANH_Y];
    const int32_t n = p[EDGENN_LOGISTIC_TANH_N], zp_in = p[EDGENN_LOGISTIC_TANH_ZP_IN];
    const int32_t radius = p[EDGENN_LOGISTIC_TANH_RADIUS];
    const int32_t q = ctx->multipliers[p[EDGENN_LOGISTIC_TANH_M]];
    const int32_t shift = ctx->shifts[p[EDGENN_LOGISTIC_TANH_M]];
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t v = x[i] - zp_in;
        int32_t out;
        if (v <= -radius) {
            out = -128;
        } else if (v >= radius) {
            out = 127;
        } else if (!p[EDGENN_LOGISTIC_TANH_TANH]) { /* logistic: output 1/256, zero point -128 */
            const int32_t q4 = edgenn_mbqm(v, q, shift);
            out = edgenn_rdbypot(edgenn_logistic_q31(q4, INPUT_INTEGER_BITS), 23) - 128;
        } else { /* output 1/128, zero point 0 */
            const int32_t q4 = edgenn_mbqm(v, q, shift);
            out = edgenn_rdbypot(edgenn_tanh_q31(q4, INPUT_INTEGER_BITS), 24);
        }
        y[i] = (int8_t)edgenn_clamp(out, -128, 127);
    }
}

static int32_t srdhm16(int32_t a, int32_t b) {
    int32_t ab, total;
    if (a == -32768 && b == -32768) {
        return 32767;
    }
    ab = a * b;
    total = ab + (ab >= 0 ? (1 << 14) : 1 - (1 << 14));
    return total / (1 << 15);
}

static int32_t sdhm16(int32_t a, int32_t b) { /* SQDMULH: truncating, no rounding nudge */
    if (a == -32768 && b == -32768) {
        return 32767;
    }
    return (a * b) / (1 << 15);
}

static int32_t saturating_left_shift16(int32_t v, int32_t amount) {
    return edgenn_clamp(v * (1 << amount), -32768, 32767);
}

EDGENN_SHARED void edgenn_hard_swish(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_HARD_SWISH_X];
    int8_t *y = ctx->arena + p[EDGENN_HARD_SWISH_Y];
    const int32_t n = p[EDGENN_HARD_SWISH_N], zp_in = p[EDGENN_HARD_SWISH_ZP_IN];
    const int32_t zp_out = p[EDGENN_HARD_SWISH_ZP_OUT];
    const int32_t out_mult = p[EDGENN_HARD_SWISH_OUT_MULT], out_exp = p[EDGENN_HARD_SWISH_OUT_EXP];
    const int32_t relu_mult = p[EDGENN_HARD_SWISH_RELU_MULT];
    const int32_t relu_exp = p[EDGENN_HARD_SWISH_RELU_EXP];
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t hires = (x[i] - zp_in) * 128;
        const int32_t preshift_out = srdhm16(hires, out_mult);
        int32_t reluish = hires;
        if (relu_exp > 0) {
            reluish = saturating_left_shift16(reluish, relu_exp - 1);
        }
        reluish = srdhm16(reluish, relu_mult);
        if (relu_exp > 0) {
            reluish = saturating_left_shift16(reluish, 1);
        }
        if (relu_exp < 0) {
            reluish = edgenn_rdbypot(reluish, -relu_exp);
        }
        reluish = (reluish + (1 << 15)) >> 1;
        y[i] = (int8_t)edgenn_clamp(edgenn_rdbypot(sdhm16(reluish, preshift_out), -out_exp) + zp_out,
                                    -128, 127);
    }
}
