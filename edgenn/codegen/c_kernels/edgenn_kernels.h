/* edgenn int8 kernels: TFLite / TFLM integer arithmetic, bit for bit.
 *
 * Each kernel takes the arena, the model's constant blobs and one program row: the same row of integer
 * fields the Python runtime's Numba kernel reads (computed once by the compiler, as TFLM's Prepare). The
 * integer path has no float, no malloc, no recursion and no state outside the arena and the model's
 * persistent state region.
 *
 * Assumes arithmetic right shift of negative signed integers (implementation-defined in C99; gcc and
 * clang shift arithmetically on every supported target) and two's-complement int32 wrap-around is never
 * relied on except through explicit uint32 casts.
 */
#ifndef EDGENN_KERNELS_H
#define EDGENN_KERNELS_H

#include <stdint.h>

#include "edgenn_config.h"
#include "edgenn_registry.h" /* generated: row fields, the context, the kernels */

#if ((-1) >> 1) != -1
#error "edgenn kernels need arithmetic right shifts of negative integers"
#endif

typedef void (*edgenn_kernel)(const edgenn_context *ctx, const int32_t *row);

/* The kernel library is shared by every model in an image: each model folder carries a copy, and
 * its definitions are weak, so the linker keeps one of the identical copies. Models built with
 * other arithmetic (single rounding) get other names (edgenn_config.h), so copies that differ are
 * never merged. A compiler without weak symbols: compile one folder's kernel files only. */
#if defined(__GNUC__) || defined(__clang__)
#define EDGENN_SHARED __attribute__((weak))
#else
#define EDGENN_SHARED
#endif

/* EDGENN_INLINE: helpers of inner loops that gcc -Os would otherwise call rather than inline;
 * EDGENN_HOT: an inner loop kept out of its caller, so its sums stay in registers */
#if defined(__GNUC__) || defined(__clang__)
#define EDGENN_INLINE static inline __attribute__((always_inline))
#else
#define EDGENN_INLINE static inline
#endif
#if defined(__GNUC__) || defined(__clang__)
#define EDGENN_HOT __attribute__((noinline))
#else
#define EDGENN_HOT
#endif

/* ---- fixed-point helpers (TFLite / gemmlowp) ---- */

static inline int32_t edgenn_clamp(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties away from zero. The nudged
 * product truncated toward zero equals floor((a * b + 2^30) / 2^31) for every product, so one 64-bit
 * add and an arithmetic shift do (no 64-bit division: a few instructions on a 32-bit core). */
static inline int32_t edgenn_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent to nearest, ties away from zero (0 <= exponent <= 31;
 * 32-bit arithmetic only) */
static inline int32_t edgenn_rdbypot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier: x * q * 2^(shift - 31), rounded (EDGENN_SINGLE_ROUNDING: one
 * rounding of the 64-bit product, else TFLM's double rounding) */
static inline int32_t edgenn_mbqm(int32_t x, int32_t q, int32_t shift) {
#ifdef EDGENN_SINGLE_ROUNDING
    const int32_t total = 31 - shift;
    return (int32_t)(((int64_t)x * q + ((int64_t)1 << (total - 1))) >> total);
#else
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift < 0 ? -shift : 0;
    return edgenn_rdbypot(edgenn_srdhm((int32_t)((uint32_t)x << left), q), right);
#endif
}

/* One output of a weighted layer: its int32 sum (bias included) requantized, shifted and clamped */
static inline int8_t edgenn_output(int32_t acc, int32_t q, int32_t shift, int32_t zp_out, int32_t lo,
                                   int32_t hi) {
    return (int8_t)edgenn_clamp(edgenn_mbqm(acc, q, shift) + zp_out, lo, hi);
}

/* One output channel's requantization with what depends on the channel alone worked out once, for
 * kernels that requantize several sums of a channel (pixels of a block): the same integers as
 * edgenn_output. The program's multipliers are never negative (the compiler refuses others), so
 * SaturatingRoundingDoublingHighMul's one saturating case (both operands INT32_MIN) cannot occur. */
typedef struct {
    int32_t bias, q, shift, left, right, mask, zp_out, lo, hi;
} edgenn_channel;

static inline edgenn_channel edgenn_channel_of(int32_t bias, int32_t q, int32_t shift,
                                               int32_t zp_out, int32_t lo, int32_t hi) {
    edgenn_channel ch;
    ch.bias = bias;
    ch.q = q;
    ch.shift = shift;
    ch.left = shift > 0 ? shift : 0;
    ch.right = shift < 0 ? -shift : 0;
    ch.mask = (int32_t)((1u << ch.right) - 1u);
    ch.zp_out = zp_out;
    ch.lo = lo;
    ch.hi = hi;
    return ch;
}

EDGENN_INLINE int8_t edgenn_channel_output(const edgenn_channel *ch, int32_t acc) {
#ifdef EDGENN_SINGLE_ROUNDING
    return edgenn_output(acc + ch->bias, ch->q, ch->shift, ch->zp_out, ch->lo, ch->hi);
#else
    const int32_t x = (int32_t)((uint32_t)(acc + ch->bias) << ch->left);
    const int32_t high = (int32_t)(((int64_t)x * ch->q + ((int64_t)1 << 30)) >> 31);
    const int32_t threshold = (ch->mask >> 1) + (high < 0 ? 1 : 0);
    const int32_t scaled = (high >> ch->right) + ((high & ch->mask) > threshold ? 1 : 0);
    return (int8_t)edgenn_clamp(scaled + ch->zp_out, ch->lo, ch->hi);
#endif
}

/* Conv and FullyConnected rows start alike: opcode, input and output arena offsets, then the weights,
 * biases and multipliers (with their shifts) as blob offsets. */
typedef struct {
    const int8_t *input;
    int8_t *output;
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} edgenn_layer;

/* conv and fully-connected rows start alike (x y w b m), so one reader serves both */
#if EDGENN_CONV_X != EDGENN_FULLY_CONNECTED_X || EDGENN_CONV_Y != EDGENN_FULLY_CONNECTED_Y
#error "conv and fully-connected rows must start with the same fields"
#endif
#if EDGENN_CONV_W != EDGENN_FULLY_CONNECTED_W || EDGENN_CONV_B != EDGENN_FULLY_CONNECTED_B
#error "conv and fully-connected rows must start with the same fields"
#endif
#if EDGENN_CONV_M != EDGENN_FULLY_CONNECTED_M
#error "conv and fully-connected rows must start with the same fields"
#endif
static inline edgenn_layer edgenn_layer_of(const edgenn_context *ctx, const int32_t *row) {
    edgenn_layer layer;
    layer.input = ctx->arena + row[EDGENN_CONV_X];
    layer.output = ctx->arena + row[EDGENN_CONV_Y];
    layer.weights = ctx->weights + row[EDGENN_CONV_W];
    layer.bias = ctx->biases + row[EDGENN_CONV_B];
    layer.multiplier = ctx->multipliers + row[EDGENN_CONV_M];
    layer.shift = ctx->shifts + row[EDGENN_CONV_M];
    return layer;
}

/* gemmlowp fixed-point functions (edgenn_fixed_point.c): Softmax, Logistic, Tanh */
int32_t edgenn_exp_on_negative_values(int32_t a, int integer_bits);
int32_t edgenn_one_over_one_plus_x(int32_t a);
int32_t edgenn_logistic_q31(int32_t a, int integer_bits);
int32_t edgenn_tanh_q31(int32_t a, int integer_bits);

#endif
