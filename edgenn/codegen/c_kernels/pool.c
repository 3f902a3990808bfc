/* Max / average pooling, channels-last (row of ops/pool.py: pool_row); the average divides rounding
 * half away from zero over the taps inside the input, as TFLite does. */
#include "edgenn_kernels.h"

static int32_t pool_channel(const int8_t *x, const int32_t *p, int32_t oy, int32_t ox, int32_t ch) {
    const int32_t h = p[3], w = p[4], c = p[5], kh = p[8], kw = p[9], sh = p[10], sw = p[11];
    const int32_t dh = p[12], dw = p[13], pt = p[14], pl = p[15], is_avg = p[18];
    int32_t total = is_avg ? 0 : -128, count = 0, ky, kx;
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
            v = x[(iy * w + ix) * c + ch];
            total = is_avg ? total + v : (v > total ? v : total);
            count++;
        }
    }
    if (is_avg && count > 0) {
        total = total > 0 ? (total + count / 2) / count : -((-total + count / 2) / count);
    }
    return total;
}

void edgenn_pool(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int32_t c = p[5], oh = p[6], ow = p[7], lo = p[16], hi = p[17];
    int32_t oy, ox, ch;
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (ch = 0; ch < c; ch++) {
                y[(oy * ow + ox) * c + ch] = (int8_t)edgenn_clamp(pool_channel(x, p, oy, ox, ch), lo, hi);
            }
        }
    }
}
