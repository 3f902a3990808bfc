/* FullyConnected (row of ops/linear.py: prepare_fc_int8): weights [O][K], -zp_in * sum(w) folded
 * into the bias, so the inner loop multiplies raw int8 values. */
#include "edgenn_kernels.h"
#include "edgenn_dot.h"

static int8_t requantized(const edgenn_layer *l, const int32_t *p, int32_t o, int32_t acc) {
    return edgenn_output(acc + l->bias[o], l->multiplier[o], l->shift[o],
                         p[EDGENN_FULLY_CONNECTED_ZP_OUT], p[EDGENN_FULLY_CONNECTED_LO],
                         p[EDGENN_FULLY_CONNECTED_HI]);
}

EDGENN_SHARED void edgenn_fully_connected(const edgenn_context *ctx, const int32_t *p) {
    const edgenn_layer l = edgenn_layer_of(ctx, p);
    const int32_t n = p[EDGENN_FULLY_CONNECTED_N], k = p[EDGENN_FULLY_CONNECTED_K];
    const int32_t outs = p[EDGENN_FULLY_CONNECTED_OUTS];
    int32_t s, o;
    for (s = 0; s < n; s++) {
        const int8_t *x = l.input + s * k;
        int8_t *y = l.output + s * outs;
        for (o = 0; o + 2 <= outs; o += 2) { /* output rows in pairs: one pass over x for both */
            int32_t acc0 = 0, acc1 = 0;
            edgenn_dot2(x, l.weights + o * k, l.weights + (o + 1) * k, k, &acc0, &acc1);
            y[o] = requantized(&l, p, o, acc0);
            y[o + 1] = requantized(&l, p, o + 1, acc1);
        }
        if (o < outs) {
            y[o] = requantized(&l, p, o, edgenn_dot(x, l.weights + o * k, k));
        }
    }
}
