/* Conv / depthwise conv, channels-last, im2col-free (row: CONV_ROW of ops/conv.py, whose fields
 * edgenn_registry.h names). Modes: GATHER (0): weights [O][KH][KW][C], rows zero-padded to a stride
 * of the stride field, with
 * -zp_in * sum(w) folded into the bias, so inside taps multiply raw int8 values and padding taps add
 * zp_in * w; OUTER (-1): weights [KH][KW][C][O] (few input channels); M > 0: depthwise with multiplier
 * M, weights [KH*KW][O]. */
#include "edgenn_kernels.h"
#include "edgenn_dot.h"

enum { GATHER = 0, OUTER = -1 };

/* GATHER: the sums of two output channels (weights w0, w1; per-tap weight sums s0, s1) at one output
 * pixel, sharing input reads. A tap in the padding reads zp_in, so it adds zp_in * sum(w over c). */
static void gather_pair(const int8_t *x, const int8_t *w0, const int8_t *w1, const int32_t *s0,
                        const int32_t *s1, const int32_t *p, int32_t iy0, int32_t ix0, int32_t *acc0,
                        int32_t *acc1) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t kh = p[EDGENN_CONV_KH], kw = p[EDGENN_CONV_KW];
    const int32_t dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW], zp_in = p[EDGENN_CONV_ZP_IN];
    int32_t ky, kx;
    *acc0 = 0;
    *acc1 = 0;
    for (ky = 0; ky < kh; ky++) {
        const int32_t iy = iy0 + ky * dh, row = ky * kw * c;
        if (dw == 1 && iy >= 0 && iy < h && ix0 >= 0 && ix0 + kw <= width) { /* one contiguous run */
            edgenn_dot2(x + (iy * width + ix0) * c, w0 + row, w1 + row, kw * c, acc0, acc1);
            continue;
        }
        for (kx = 0; kx < kw; kx++) {
            const int32_t ix = ix0 + kx * dw, tap = ky * kw + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= width) {
                *acc0 += zp_in * s0[tap];
                *acc1 += zp_in * s1[tap];
            } else {
                edgenn_dot2(x + (iy * width + ix) * c, w0 + tap * c, w1 + tap * c, c, acc0, acc1);
            }
        }
    }
}

enum { CHUNK = 32 }; /* output channels whose sums live on the stack at a time */

/* OUTER (few input channels) at one output pixel: the output channels in chunks, each tap's bounds
 * checked once per chunk; a tap's input value times a contiguous run of its output weights. */
static void outer_pixel(const edgenn_layer *l, const int32_t *p, int32_t iy0, int32_t ix0,
                        int8_t *out) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t oc = p[EDGENN_CONV_OC], kh = p[EDGENN_CONV_KH], kw = p[EDGENN_CONV_KW];
    const int32_t dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW], zp_in = p[EDGENN_CONV_ZP_IN];
    int32_t acc[CHUNK], first;
    for (first = 0; first < oc; first += CHUNK) {
        const int32_t n = oc - first < CHUNK ? oc - first : CHUNK;
        int32_t o, ky, kx, i;
        for (o = 0; o < n; o++) {
            acc[o] = 0;
        }
        for (ky = 0; ky < kh; ky++) {
            const int32_t iy = iy0 + ky * dh;
            if (iy < 0 || iy >= h) {
                continue;
            }
            for (kx = 0; kx < kw; kx++) {
                const int32_t ix = ix0 + kx * dw;
                const int8_t *src, *taps;
                if (ix < 0 || ix >= width) {
                    continue;
                }
                src = l->input + (iy * width + ix) * c;
                taps = l->weights + (ky * kw + kx) * c * oc + first;
                for (i = 0; i < c; i++) {
                    const int32_t v = src[i] - zp_in;
                    const int8_t *w = taps + i * oc;
                    for (o = 0; o < n; o++) {
                        acc[o] += v * w[o];
                    }
                }
            }
        }
        for (o = 0; o < n; o++) {
            out[first + o] = edgenn_output(acc[o] + l->bias[first + o], l->multiplier[first + o],
                                           l->shift[first + o], p[EDGENN_CONV_ZP_OUT],
                                           p[EDGENN_CONV_LO], p[EDGENN_CONV_HI]);
        }
    }
}

/* Depthwise (multiplier M) at one output pixel: the channels in chunks, each tap's bounds checked
 * once per chunk, so the inner loop is one multiply-accumulate per channel. */
static void depthwise_pixel(const edgenn_layer *l, const int32_t *p, int32_t iy0, int32_t ix0,
                            int8_t *out) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t oc = p[EDGENN_CONV_OC], kh = p[EDGENN_CONV_KH], kw = p[EDGENN_CONV_KW];
    const int32_t dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW], zp_in = p[EDGENN_CONV_ZP_IN];
    const int32_t mode = p[EDGENN_CONV_MODE];
    int32_t acc[CHUNK], first;
    for (first = 0; first < oc; first += CHUNK) {
        const int32_t n = oc - first < CHUNK ? oc - first : CHUNK;
        int32_t i, ky, kx;
        for (i = 0; i < n; i++) {
            acc[i] = 0;
        }
        for (ky = 0; ky < kh; ky++) {
            const int32_t iy = iy0 + ky * dh;
            if (iy < 0 || iy >= h) {
                continue;
            }
            for (kx = 0; kx < kw; kx++) {
                const int32_t ix = ix0 + kx * dw;
                const int8_t *src, *w;
                if (ix < 0 || ix >= width) {
                    continue;
                }
                src = l->input + (iy * width + ix) * c;
                w = l->weights + (ky * kw + kx) * oc + first;
                if (mode == 1) {
                    const int8_t *s = src + first;
                    for (i = 0; i < n; i++) {
                        acc[i] += (s[i] - zp_in) * w[i];
                    }
                } else { /* output channel o reads input channel o / M */
                    for (i = 0; i < n; i++) {
                        acc[i] += (src[(first + i) / mode] - zp_in) * w[i];
                    }
                }
            }
        }
        for (i = 0; i < n; i++) {
            out[first + i] = edgenn_output(acc[i] + l->bias[first + i], l->multiplier[first + i],
                                           l->shift[first + i], p[EDGENN_CONV_ZP_OUT],
                                           p[EDGENN_CONV_LO], p[EDGENN_CONV_HI]);
        }
    }
}

static int8_t requantized(const edgenn_layer *l, const int32_t *p, int32_t o, int32_t acc) {
    return edgenn_output(acc + l->bias[o], l->multiplier[o], l->shift[o], p[EDGENN_CONV_ZP_OUT],
                         p[EDGENN_CONV_LO], p[EDGENN_CONV_HI]);
}

EDGENN_SHARED void edgenn_conv(const edgenn_context *ctx, const int32_t *p) {
    const edgenn_layer l = edgenn_layer_of(ctx, p);
    const int32_t oh = p[EDGENN_CONV_OH], ow = p[EDGENN_CONV_OW], oc = p[EDGENN_CONV_OC];
    const int32_t kh = p[EDGENN_CONV_KH], kw = p[EDGENN_CONV_KW];
    const int32_t sh = p[EDGENN_CONV_SH], sw = p[EDGENN_CONV_SW], pt = p[EDGENN_CONV_PAD_TOP];
    const int32_t pl = p[EDGENN_CONV_PAD_LEFT], mode = p[EDGENN_CONV_MODE];
    const int32_t k = p[EDGENN_CONV_STRIDE]; /* weight row stride: GATHER rows are whole vectors */
    /* GATHER rows only carry the tap-sum table's offset (-1: no table) */
    const int32_t table = mode == GATHER ? p[EDGENN_CONV_TAP_SUMS] : -1;
    const int32_t *sums = ctx->tap_sums + (table >= 0 ? table : 0);
    int32_t oy, ox, o;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            const int32_t iy0 = oy * sh - pt, ix0 = ox * sw - pl;
            int8_t *out = l.output + (oy * ow + ox) * oc;
            if (mode > 0) {
                depthwise_pixel(&l, p, iy0, ix0, out);
                continue;
            }
            if (mode == OUTER) {
                outer_pixel(&l, p, iy0, ix0, out);
                continue;
            }
            for (o = 0; o < oc; o += 2) { /* channels in pairs; an odd last one pairs with itself */
                const int32_t next = o + 1 < oc ? o + 1 : o;
                int32_t acc0, acc1;
                gather_pair(l.input, l.weights + o * k, l.weights + next * k, sums + o * kh * kw,
                            sums + next * kh * kw, p, iy0, ix0, &acc0, &acc1);
                out[o] = requantized(&l, p, o, acc0);
                out[next] = requantized(&l, p, next, acc1);
            }
        }
    }
}
