/* Conv / depthwise conv, channels-last (row: CONV_ROW of ops/conv.py, whose fields edgenn_registry.h
 * names). Modes: GATHER (0): weights [O][KH][KW][C], rows zero-padded to a stride of the stride
 * field, with -zp_in * sum(w) folded into the bias, so taps multiply raw int8 values and padding taps
 * read zp_in; OUTER (-1): weights [KH][KW][C][O] (few input channels); M > 0: depthwise with multiplier
 * M, weights [KH*KW][O]. */
#include "edgenn_kernels.h"
#include "edgenn_dot.h"

enum { GATHER = 0, OUTER = -1 };

/* GATHER: the window [KH][KW][C] of output pixel `pixel` copied into `dst`, tap by tap; taps in the
 * padding read the input zero point, which the bias has folded away */
static void gather_window(const edgenn_layer *l, const int32_t *p, int32_t pixel, int8_t *dst) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t kh = p[EDGENN_CONV_KH], kw = p[EDGENN_CONV_KW], ow = p[EDGENN_CONV_OW];
    const int32_t dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW];
    const int8_t zp_in = (int8_t)p[EDGENN_CONV_ZP_IN];
    const int32_t iy0 = pixel / ow * p[EDGENN_CONV_SH] - p[EDGENN_CONV_PAD_TOP];
    const int32_t ix0 = pixel % ow * p[EDGENN_CONV_SW] - p[EDGENN_CONV_PAD_LEFT];
    int32_t ky, kx, i;
    for (ky = 0; ky < kh; ky++) {
        const int32_t iy = iy0 + ky * dh;
        for (kx = 0; kx < kw; kx++) {
            const int32_t ix = ix0 + kx * dw;
            const int8_t *src = l->input + (iy * width + ix) * c;
            if (iy < 0 || iy >= h || ix < 0 || ix >= width) {
                for (i = 0; i < c; i++) {
                    dst[i] = zp_in;
                }
            } else {
                for (i = 0; i < c; i++) {
                    dst[i] = src[i];
                }
            }
            dst += c;
        }
    }
}

EDGENN_INLINE edgenn_channel channel(const edgenn_layer *l, const int32_t *p, int32_t o) {
    return edgenn_channel_of(l->bias[o], l->multiplier[o], l->shift[o], p[EDGENN_CONV_ZP_OUT],
                             p[EDGENN_CONV_LO], p[EDGENN_CONV_HI]);
}

/* The sums of `shared` with `a` and with `b` (n bytes each), requantized by ch_a / ch_b: one
 * weight row against two windows, or one window against two weight rows */
EDGENN_INLINE void gather_two(const int8_t *shared, const int8_t *a, const int8_t *b, int32_t n,
                              const edgenn_channel *ch_a, const edgenn_channel *ch_b,
                              int8_t *out_a, int8_t *out_b) {
    int32_t sum_a = 0, sum_b = 0;
    edgenn_dot2(shared, a, b, n, &sum_a, &sum_b);
    *out_a = edgenn_channel_output(ch_a, sum_a);
    *out_b = edgenn_channel_output(ch_b, sum_b);
}

/* The four sums of output channels o, o + 1 at two output pixels (windows `stride` bytes apart at
 * `x`, as the weight rows are), requantized */
EDGENN_INLINE void gather_block(const edgenn_layer *l, const edgenn_channel *ch0,
                                const edgenn_channel *ch1, const int8_t *x, int32_t o, int32_t n,
                                int32_t stride, int8_t *out0, int8_t *out1) {
    int32_t sums[4];
    edgenn_dot2x2(x, l->weights + o * stride, stride, n, sums);
    out0[o] = edgenn_channel_output(ch0, sums[0]);
    out0[o + 1] = edgenn_channel_output(ch1, sums[1]);
    out1[o] = edgenn_channel_output(ch0, sums[2]);
    out1[o + 1] = edgenn_channel_output(ch1, sums[3]);
}

/* GATHER over a pair of output pixels whose windows sit `stride` bytes apart at `x`: output
 * channels in pairs, four sums per pass over the window. An odd last channel goes alone. */
static void gather_pixel_pair(const edgenn_layer *l, const int32_t *p, const int8_t *x, int32_t n,
                              int8_t *out0, int8_t *out1) {
    const int32_t oc = p[EDGENN_CONV_OC], stride = p[EDGENN_CONV_STRIDE];
    int32_t o;
    for (o = 0; o + 2 <= oc; o += 2) {
        const edgenn_channel ch0 = channel(l, p, o), ch1 = channel(l, p, o + 1);
        gather_block(l, &ch0, &ch1, x, o, n, stride, out0, out1);
    }
    if (o < oc) {
        const edgenn_channel ch = channel(l, p, o);
        gather_two(l->weights + o * stride, x, x + stride, n, &ch, &ch, out0 + o, out1 + o);
    }
}

/* GATHER with windows in place (consecutive pixels `stride` bytes apart): output channels in pairs
 * outside, so each pair's requantization is set up once for every pixel */
static void gather_in_place(const edgenn_layer *l, const int32_t *p, int32_t pixels, int32_t n) {
    const int32_t oc = p[EDGENN_CONV_OC], stride = p[EDGENN_CONV_STRIDE];
    int32_t o, px;
    for (o = 0; o + 2 <= oc; o += 2) {
        const edgenn_channel ch0 = channel(l, p, o), ch1 = channel(l, p, o + 1);
        for (px = 0; px + 2 <= pixels; px += 2) {
            int8_t *out = l->output + px * oc;
            gather_block(l, &ch0, &ch1, l->input + px * stride, o, n, stride, out, out + oc);
        }
    }
    if (o < oc) { /* an odd last channel */
        const edgenn_channel ch = channel(l, p, o);
        for (px = 0; px + 2 <= pixels; px += 2) {
            const int8_t *x = l->input + px * stride;
            int8_t *out = l->output + px * oc + o;
            gather_two(l->weights + o * stride, x, x + stride, n, &ch, &ch, out, out + oc);
        }
    }
}

/* GATHER for one output pixel (an odd last one): output channels in pairs over its window */
static void gather_single(const edgenn_layer *l, const int32_t *p, const int8_t *x, int32_t n,
                          int8_t *out) {
    const int32_t oc = p[EDGENN_CONV_OC], stride = p[EDGENN_CONV_STRIDE];
    int32_t o;
    for (o = 0; o < oc; o += 2) {
        const int32_t next = o + 1 < oc ? o + 1 : o;
        const edgenn_channel ch0 = channel(l, p, o), ch1 = channel(l, p, next);
        gather_two(x, l->weights + o * stride, l->weights + next * stride, n, &ch0, &ch1, out + o,
                   out + next);
    }
}

/* GATHER: output pixels in pairs. A 1x1 convolution over every pixel whose channel count is the
 * weight rows' stride reads its windows in place; otherwise (row field `scratch`: an arena offset)
 * each pair's windows are copied there, `stride` bytes apart, zero past the window (as the weight
 * rows are). Every window length is rounded up to whole words: the weights there are zero. */
static void gather_conv(const edgenn_context *ctx, const edgenn_layer *l, const int32_t *p) {
    const int32_t oc = p[EDGENN_CONV_OC], stride = p[EDGENN_CONV_STRIDE];
    const int32_t pixels = p[EDGENN_CONV_OH] * p[EDGENN_CONV_OW];
    const int32_t k = p[EDGENN_CONV_KH] * p[EDGENN_CONV_KW] * p[EDGENN_CONV_C];
    const int32_t n = (k + 3) & ~3;
    int8_t *scratch = p[EDGENN_CONV_SCRATCH] >= 0 ? ctx->arena + p[EDGENN_CONV_SCRATCH] : 0;
    int32_t px, i;
    if (scratch) {
        for (i = k; i < n; i++) {
            scratch[i] = 0;
            scratch[stride + i] = 0;
        }
    }
    if (!scratch) {
        gather_in_place(l, p, pixels, n);
        px = pixels & ~1;
    } else {
        for (px = 0; px + 2 <= pixels; px += 2) {
            gather_window(l, p, px, scratch);
            gather_window(l, p, px + 1, scratch + stride);
            gather_pixel_pair(l, p, scratch, n, l->output + px * oc, l->output + (px + 1) * oc);
        }
    }
    if (px < pixels) { /* an odd last pixel */
        const int8_t *x = l->input + px * stride;
        if (scratch) {
            gather_window(l, p, px, scratch);
            x = scratch;
        }
        gather_single(l, p, x, n, l->output + px * oc);
    }
}

enum { CHUNK = 32 }; /* output channels whose sums live on the stack at a time */

/* the sums of output channels [first, first + n) at one pixel requantized into out[first...] */
EDGENN_HOT static void requantize_channels(const edgenn_layer *l, const int32_t *p,
                                                int32_t first, int32_t n, const int32_t *acc,
                                                int8_t *out) {
    const int32_t zp_out = p[EDGENN_CONV_ZP_OUT], lo = p[EDGENN_CONV_LO], hi = p[EDGENN_CONV_HI];
    /* local copies: an int8 store may alias the row, so gcc would reload them per output */
    const int32_t *bias = l->bias + first, *q = l->multiplier + first, *shift = l->shift + first;
    int8_t *y = out + first;
    int32_t o;
    for (o = 0; o < n; o++) {
        const edgenn_channel ch = edgenn_channel_of(bias[o], q[o], shift[o], zp_out, lo, hi);
        y[o] = edgenn_channel_output(&ch, acc[o]);
    }
}

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
        requantize_channels(l, p, first, n, acc, out);
    }
}

/* The taps [first, last) of one window axis that fall inside the input (0..size) */
static void taps_inside(int32_t start, int32_t taps, int32_t dilation, int32_t size, int32_t *first,
                        int32_t *last) {
    int32_t lo = 0, hi = taps;
    while (lo < taps && start + lo * dilation < 0) {
        lo++;
    }
    while (hi > lo && start + (hi - 1) * dilation >= size) {
        hi--;
    }
    *first = lo;
    *last = hi;
}

/* Depthwise (multiplier M) at one output pixel: the taps inside the input found once, then the
 * channels in chunks, so the inner loop is one multiply-accumulate per channel. */
static void depthwise_pixel(const edgenn_layer *l, const int32_t *p, int32_t iy0, int32_t ix0,
                            int8_t *out) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t oc = p[EDGENN_CONV_OC], kw = p[EDGENN_CONV_KW];
    const int32_t dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW], zp_in = p[EDGENN_CONV_ZP_IN];
    const int32_t mode = p[EDGENN_CONV_MODE];
    int32_t acc[CHUNK], first, ky0, ky1, kx0, kx1;
    taps_inside(iy0, p[EDGENN_CONV_KH], dh, h, &ky0, &ky1);
    taps_inside(ix0, kw, dw, width, &kx0, &kx1);
    for (first = 0; first < oc; first += CHUNK) {
        const int32_t n = oc - first < CHUNK ? oc - first : CHUNK;
        int32_t i, ky, kx;
        for (i = 0; i < n; i++) {
            acc[i] = 0;
        }
        for (ky = ky0; ky < ky1; ky++) {
            for (kx = kx0; kx < kx1; kx++) {
                const int8_t *src = l->input + ((iy0 + ky * dh) * width + ix0 + kx * dw) * c;
                const int8_t *w = l->weights + (ky * kw + kx) * oc + first;
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
        requantize_channels(l, p, first, n, acc, out);
    }
}

#ifdef EDGENN_ARM_DSP
/* Depthwise with multiplier 1 on the DSP path: the sums of four channels at `x` / `w` over the
 * taps [ky0, ky1) x [kx0, kx1), kept in registers. A word of four channels unpacks (SXTB16) into
 * channels 0, 2 and 1, 3 as 16-bit halves with the input zero point taken off (SXTAB16 adds
 * -zp to both halves), and SMLABB / SMLATT add each half's product to its channel. */
EDGENN_HOT static void depthwise_sums4(const int8_t *x, const int8_t *w, const int32_t *taps,
                                            uint32_t minus_zp, int32_t sums[4]) {
    const int32_t rows = taps[0], cols = taps[1], x_row = taps[2], x_col = taps[3];
    const int32_t w_row = taps[4], w_col = taps[5];
    int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0, ky, kx;
    for (ky = 0; ky < rows; ky++) {
        const int8_t *xs = x + ky * x_row, *ws = w + ky * w_row;
        for (kx = 0; kx < cols; kx++) {
            const uint32_t xv = edgenn_load4(xs), wv = edgenn_load4(ws);
            const uint32_t x02 = edgenn_sxtab16(minus_zp, xv);
            const uint32_t x13 = edgenn_sxtab16_ror8(minus_zp, xv);
            const uint32_t w02 = edgenn_sxtb16(wv), w13 = edgenn_sxtb16_ror8(wv);
            acc0 = edgenn_smlabb(x02, w02, acc0);
            acc2 = edgenn_smlatt(x02, w02, acc2);
            acc1 = edgenn_smlabb(x13, w13, acc1);
            acc3 = edgenn_smlatt(x13, w13, acc3);
            xs += x_col;
            ws += w_col;
        }
    }
    sums[0] = acc0;
    sums[1] = acc1;
    sums[2] = acc2;
    sums[3] = acc3;
}

/* Depthwise with multiplier 1 over a multiple of 4 channels, on the DSP path, at one output pixel:
 * the taps inside the input found once, then four channels at a time */
static void depthwise_pixel_dsp(const edgenn_layer *l, const int32_t *p, int32_t iy0, int32_t ix0,
                                int8_t *out) {
    const int32_t h = p[EDGENN_CONV_H], width = p[EDGENN_CONV_WIDTH], c = p[EDGENN_CONV_C];
    const int32_t kw = p[EDGENN_CONV_KW], dh = p[EDGENN_CONV_DH], dw = p[EDGENN_CONV_DW];
    const uint32_t minus_zp = (uint32_t)(uint16_t)-p[EDGENN_CONV_ZP_IN] * 0x10001u;
    int32_t ky0, ky1, kx0, kx1, ch, taps[6];
    taps_inside(iy0, p[EDGENN_CONV_KH], dh, h, &ky0, &ky1);
    taps_inside(ix0, kw, dw, width, &kx0, &kx1);
    taps[0] = ky1 - ky0;
    taps[1] = kx1 - kx0;
    taps[2] = dh * width * c; /* input bytes from one tap row to the next */
    taps[3] = dw * c;
    taps[4] = kw * c; /* weight bytes likewise */
    taps[5] = c;
    {
        const int8_t *x = l->input + ((iy0 + ky0 * dh) * width + ix0 + kx0 * dw) * c;
        const int8_t *w = l->weights + (ky0 * kw + kx0) * c;
        int32_t acc[CHUNK], first;
        for (first = 0; first < c; first += CHUNK) {
            const int32_t n = c - first < CHUNK ? c - first : CHUNK;
            for (ch = 0; ch < n; ch += 4) {
                depthwise_sums4(x + first + ch, w + first + ch, taps, minus_zp, acc + ch);
            }
            requantize_channels(l, p, first, n, acc, out);
        }
    }
}
#endif

EDGENN_SHARED void edgenn_conv(const edgenn_context *ctx, const int32_t *p) {
    const edgenn_layer l = edgenn_layer_of(ctx, p);
    const int32_t oh = p[EDGENN_CONV_OH], ow = p[EDGENN_CONV_OW], oc = p[EDGENN_CONV_OC];
    const int32_t sh = p[EDGENN_CONV_SH], sw = p[EDGENN_CONV_SW], pt = p[EDGENN_CONV_PAD_TOP];
    const int32_t pl = p[EDGENN_CONV_PAD_LEFT], mode = p[EDGENN_CONV_MODE];
    int32_t oy, ox;
    if (mode == GATHER) {
        gather_conv(ctx, &l, p);
        return;
    }
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            const int32_t iy0 = oy * sh - pt, ix0 = ox * sw - pl;
            int8_t *out = l.output + (oy * ow + ox) * oc;
            if (mode == OUTER) {
                outer_pixel(&l, p, iy0, ix0, out);
                continue;
            }
#ifdef EDGENN_ARM_DSP
            if (mode == 1 && p[EDGENN_CONV_C] % 4 == 0) {
                depthwise_pixel_dsp(&l, p, iy0, ix0, out);
                continue;
            }
#endif
            depthwise_pixel(&l, p, iy0, ix0, out);
        }
    }
}
