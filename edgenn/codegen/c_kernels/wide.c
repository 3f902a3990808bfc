/* 16x8 layers (rows of ops/wide.py): int16 activations with zero point 0, int8 weights. Conv
 * (and depthwise, depth_mult > 0) and FullyConnected accumulate in int64 with an int64 bias (in
 * ctx->wide) and requantize with TFLite's 64-bit MultiplyByQuantizedMultiplier; Add/Sub rescale both
 * sides with 15 bits of headroom; Mul rescales the int32 product once. */
#include "edgenn_kernels.h"

/* TFLite's MultiplyByQuantizedMultiplier for int64 accumulators: the Q31 multiplier rounded to Q15
 * (saturating at 0x7FFF), then one rounding shift; the same in both rounding modes */
static int32_t mbqm64(int64_t x, int32_t q, int32_t shift) {
    const int64_t reduced = q < 0x7FFF0000 ? ((int64_t)q + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total = 15 - shift;
    return (int32_t)((x * reduced + ((int64_t)1 << (total - 1))) >> total);
}

EDGENN_SHARED void edgenn_conv16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *x = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_CONV16_X]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_CONV16_Y]);
    const int8_t *w = ctx->weights + p[EDGENN_CONV16_W];
    const int64_t *bias = ctx->wide + p[EDGENN_CONV16_B];
    const int32_t m = p[EDGENN_CONV16_M];
    const int32_t h = p[EDGENN_CONV16_H], width = p[EDGENN_CONV16_WIDTH], c = p[EDGENN_CONV16_C];
    const int32_t oh = p[EDGENN_CONV16_OH], ow = p[EDGENN_CONV16_OW], oc = p[EDGENN_CONV16_OC];
    const int32_t kh = p[EDGENN_CONV16_KH], kw = p[EDGENN_CONV16_KW];
    const int32_t sh = p[EDGENN_CONV16_SH], sw = p[EDGENN_CONV16_SW];
    const int32_t dh = p[EDGENN_CONV16_DH], dw = p[EDGENN_CONV16_DW];
    const int32_t pt = p[EDGENN_CONV16_PAD_TOP], pl = p[EDGENN_CONV16_PAD_LEFT];
    const int32_t lo = p[EDGENN_CONV16_LO], hi = p[EDGENN_CONV16_HI];
    const int32_t mult = p[EDGENN_CONV16_DEPTH_MULT];
    int32_t oy, ox, o, ky, kx, i;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (o = 0; o < oc; o++) {
                int64_t total = 0;
                for (ky = 0; ky < kh; ky++) {
                    const int32_t iy = oy * sh - pt + ky * dh;
                    if (iy < 0 || iy >= h) {
                        continue;
                    }
                    for (kx = 0; kx < kw; kx++) {
                        const int32_t ix = ox * sw - pl + kx * dw;
                        const int16_t *pixel = x + (iy * width + ix) * c;
                        if (ix < 0 || ix >= width) {
                            continue;
                        }
                        if (mult > 0) { /* depthwise: output o reads input channel o / mult */
                            total += (int64_t)pixel[o / mult] * w[(o * kh + ky) * kw + kx];
                        } else {
                            const int8_t *tap = w + ((o * kh + ky) * kw + kx) * c;
                            for (i = 0; i < c; i++) {
                                total += (int64_t)pixel[i] * tap[i];
                            }
                        }
                    }
                }
                total += bias[o];
                y[(oy * ow + ox) * oc + o] = (int16_t)edgenn_clamp(
                    mbqm64(total, ctx->multipliers[m + o], ctx->shifts[m + o]), lo, hi);
            }
        }
    }
}

EDGENN_SHARED void edgenn_fc16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *x = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_FC16_X]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_FC16_Y]);
    const int8_t *w = ctx->weights + p[EDGENN_FC16_W];
    const int64_t *bias = ctx->wide + p[EDGENN_FC16_B];
    const int32_t m = p[EDGENN_FC16_M], n = p[EDGENN_FC16_N], k = p[EDGENN_FC16_K];
    const int32_t outs = p[EDGENN_FC16_OUTS], lo = p[EDGENN_FC16_LO], hi = p[EDGENN_FC16_HI];
    int32_t s, o, i;
    for (s = 0; s < n; s++) {
        for (o = 0; o < outs; o++) {
            int64_t total = bias[o];
            for (i = 0; i < k; i++) {
                total += (int64_t)x[s * k + i] * w[o * k + i];
            }
            y[s * outs + o] = (int16_t)edgenn_clamp(
                mbqm64(total, ctx->multipliers[m + o], ctx->shifts[m + o]), lo, hi);
        }
    }
}

EDGENN_SHARED void edgenn_binary16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *a = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_BINARY16_A]);
    const int16_t *b = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_BINARY16_B]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_BINARY16_Y]);
    const int32_t d0 = p[EDGENN_BINARY16_D0], d1 = p[EDGENN_BINARY16_D1];
    const int32_t d2 = p[EDGENN_BINARY16_D2], d3 = p[EDGENN_BINARY16_D3];
    const int32_t *as = p + EDGENN_BINARY16_A_S0, *bs = p + EDGENN_BINARY16_B_S0;
    const int32_t mode = p[EDGENN_BINARY16_MODE], m = p[EDGENN_BINARY16_M];
    const int32_t lo = p[EDGENN_BINARY16_LO], hi = p[EDGENN_BINARY16_HI];
    int32_t i0, i1, i2, i3, index = 0;
    for (i0 = 0; i0 < d0; i0++) {
        for (i1 = 0; i1 < d1; i1++) {
            for (i2 = 0; i2 < d2; i2++) {
                for (i3 = 0; i3 < d3; i3++) {
                    const int32_t va = a[i0 * as[0] + i1 * as[1] + i2 * as[2] + i3 * as[3]];
                    const int32_t vb = b[i0 * bs[0] + i1 * bs[1] + i2 * bs[2] + i3 * bs[3]];
                    int32_t total;
                    if (mode == 2) { /* Mul: |a b| <= 2^30 */
                        total = va * vb;
                    } else { /* Add / Sub: v << 15 as a product (no shift of a negative) */
                        const int32_t sa = edgenn_mbqm(va * (1 << 15), ctx->multipliers[m],
                                                       ctx->shifts[m]);
                        const int32_t sb = edgenn_mbqm(vb * (1 << 15), ctx->multipliers[m + 1],
                                                       ctx->shifts[m + 1]);
                        total = mode == 1 ? sa - sb : sa + sb;
                    }
                    y[index++] = (int16_t)edgenn_clamp(
                        edgenn_mbqm(total, ctx->multipliers[m + 2], ctx->shifts[m + 2]), lo, hi);
                }
            }
        }
    }
}
