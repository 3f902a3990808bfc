/* FullyConnected (row of ops/linear.py: prepare_fc_int8): weights [O][K], -zp_in * sum(w) folded
 * into the bias, so the inner loop multiplies raw int8 values. */
#include "edgenn_kernels.h"
#include "edgenn_dot.h"

void edgenn_fully_connected(const edgenn_context *ctx, const int32_t *p) {
    const edgenn_layer l = edgenn_layer_of(ctx, p);
    const int32_t n = p[6], k = p[7], outs = p[8], zp_out = p[9], lo = p[10], hi = p[11];
    int32_t s, o;
    for (s = 0; s < n; s++) {
        for (o = 0; o < outs; o++) {
            const int32_t acc = edgenn_dot(l.input + s * k, l.weights + o * k, k) + l.bias[o];
            const int32_t v = edgenn_mbqm(acc, l.multiplier[o], l.shift[o]) + zp_out;
            l.output[s * outs + o] = (int8_t)edgenn_clamp(v, lo, hi);
        }
    }
}
