/* Max / average pooling, channels-last (row of ops/pool.py: pool_row); the average divides rounding
 * half away from zero over the taps inside the input, as TFLite does. int8, and int16 (16x8 models:
 * the same row over int16 data). */
#include "edgenn_kernels.h"

/* one output of channel ch; the input is x8 (int8) or, when x8 is null, x16 (int16) */
static int32_t pool_channel(const int8_t *x8, const int16_t *x16, const int32_t *p, int32_t oy,
                            int32_t ox, int32_t ch) {
    const int32_t h = p[EDGENN_POOL_H], w = p[EDGENN_POOL_W], c = p[EDGENN_POOL_C];
    const int32_t kh = p[EDGENN_POOL_KH], kw = p[EDGENN_POOL_KW], sh = p[EDGENN_POOL_SH];
    const int32_t sw = p[EDGENN_POOL_SW];
    const int32_t dh = p[EDGENN_POOL_DH], dw = p[EDGENN_POOL_DW], pt = p[EDGENN_POOL_PAD_TOP];
    const int32_t pl = p[EDGENN_POOL_PAD_LEFT], is_avg = p[EDGENN_POOL_AVERAGE];
    int32_t total = is_avg ? 0 : (x8 ? -128 : -32768), count = 0, ky, kx;
    for (ky = 0; ky < kh; ky++) {
        const int32_t iy = oy * sh - pt + ky * dh;
        if (iy < 0 || iy >= h) {
            continue;
        }
        for (kx = 0; kx < kw; kx++) {
            const int32_t ix = ox * sw - pl + kx * dw;
            int32_t v;
            if (ix < 0 || ix >= w) {
                continue;
            }
            v = x8 ? x8[(iy * w + ix) * c + ch] : x16[(iy * w + ix) * c + ch];
            total = is_avg ? total + v : (v > total ? v : total);
            count++;
        }
    }
    if (is_avg && count > 0) {
        total = total > 0 ? (total + count / 2) / count : -((-total + count / 2) / count);
    }
    return total;
}

EDGENN_SHARED void edgenn_pool(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[EDGENN_POOL_X];
    int8_t *y = ctx->arena + p[EDGENN_POOL_Y];
    const int32_t c = p[EDGENN_POOL_C], oh = p[EDGENN_POOL_OH], ow = p[EDGENN_POOL_OW];
    const int32_t lo = p[EDGENN_POOL_LO], hi = p[EDGENN_POOL_HI];
    int32_t oy, ox, ch;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (ch = 0; ch < c; ch++) {
                const int32_t v = pool_channel(x, 0, p, oy, ox, ch);
                y[(oy * ow + ox) * c + ch] = (int8_t)edgenn_clamp(v, lo, hi);
            }
        }
    }
}

#ifdef EDGENN_WIDE /* 16x8 models only: no flash for int8 ones */
/* the int16 pool shares the int8 row; like the Numba kernel it clamps to the int16 range */
EDGENN_SHARED void edgenn_pool16(const edgenn_context *ctx, const int32_t *p) {
    const int16_t *x = (const int16_t *)(const void *)(ctx->arena + p[EDGENN_POOL_X]);
    int16_t *y = (int16_t *)(void *)(ctx->arena + p[EDGENN_POOL_Y]);
    const int32_t c = p[EDGENN_POOL_C], oh = p[EDGENN_POOL_OH], ow = p[EDGENN_POOL_OW];
    const int32_t lo = -32768, hi = 32767;
    int32_t oy, ox, ch;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (ch = 0; ch < c; ch++) {
                const int32_t v = pool_channel(0, x, p, oy, ox, ch);
                y[(oy * ow + ox) * c + ch] = (int16_t)edgenn_clamp(v, lo, hi);
            }
        }
    }
}
#endif
