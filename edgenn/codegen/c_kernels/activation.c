/* Elementwise activations with their own integer algorithms (rows of ops/activation.py): LeakyRelu,
 * PRelu, Logistic / Tanh (gemmlowp on Q4.27 inputs, as TFLM) and HardSwish (TFLM's 16-bit path). */
#include "edgenn_kernels.h"

enum { INPUT_INTEGER_BITS = 4 };

void edgenn_leaky_relu(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t n = p[3], zp_in = p[4], zp_out = p[5], m = p[6];
    int32_t i;
    for (i = 0; i < n; i++) {
        const int32_t v = x[i] - zp_in;
        const int32_t k = v >= 0 ? m : m + 1;
        const int32_t out = edgenn_mbqm(v, ctx->multipliers[k], ctx->shifts[k]) + zp_out;
        y[i] = (int8_t)edgenn_clamp(out, -128, 127);
    }
}

void edgenn_prelu(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    const int8_t *alpha = ctx->weights + p[2];
    int8_t *y = ctx->arena + p[3];
    const int32_t *sx = p + 8, *sa = p + 12;
    const int32_t zp_in = p[16], zp_a = p[17], zp_out = p[18], m = p[19];
    int32_t i0, i1, i2, i3, index = 0;
    for (i0 = 0; i0 < p[4]; i0++) {
        for (i1 = 0; i1 < p[5]; i1++) {
            for (i2 = 0; i2 < p[6]; i2++) {
                for (i3 = 0; i3 < p[7]; i3++) {
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

void edgenn_logistic_tanh(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t n = p[3], zp_in = p[4], radius = p[5];
    const int32_t q = ctx->multipliers[p[6]], shift = ctx->shifts[p[6]];
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

void edgenn_hard_swish(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t n = p[3], zp_in = p[4], zp_out = p[5];
    const int32_t out_mult = p[6], out_exp = p[7], relu_mult = p[8], relu_exp = p[9];
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
