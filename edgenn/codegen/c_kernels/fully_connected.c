/* FullyConnected (row of ops/linear.py: prepare_fc_int8): weights [O][K], -zp_in * sum(w) folded
 * into the bias, so the inner loop multiplies raw int8 values. */
#include "edgenn_kernels.h"
#include "edgenn_dot.h"

void edgenn_fully_connected(const edgenn_context *ctx, const int32_t *p) {
    const int8_t *x = ctx->arena + p[1];
    int8_t *y = ctx->arena + p[2];
    const int8_t *w = ctx->weights + p[3];
    const int32_t *bias = ctx->biases + p[4];
    const int32_t *mult = ctx->multipliers + p[5], *shift = ctx->shifts + p[5];
    const int32_t n = p[6], k = p[7], outs = p[8], zp_out = p[9], lo = p[10], hi = p[11];
    int32_t s, o;
    for (s = 0; s < n; s++) {
        for (o = 0; o < outs; o++) {
            const int32_t acc = edgenn_dot(x + s * k, w + o * k, k) + bias[o];
            const int32_t v = edgenn_mbqm(acc, mult[o], shift[o]) + zp_out;
            y[s * outs + o] = (int8_t)edgenn_clamp(v, lo, hi);
        }
    }
}
