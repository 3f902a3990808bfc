/* gemmlowp's fixed-point exp and reciprocal, as TFLM's Softmax / Logistic / Tanh use them. A raw int32
 * with `integer_bits` integer bits holds raw / 2^(31 - integer_bits). */
#include "edgenn_kernels.h"

static int32_t wrap32(int64_t x) {
    return (int32_t)(uint32_t)(uint64_t)x; /* two's-complement wrap, as gemmlowp's int32 adds */
}

static int32_t srmbypot(int32_t x, int exponent) {
    int32_t threshold;
    if (exponent == 0) {
        return x;
    }
    if (exponent < 0) {
        return edgenn_rdbypot(x, -exponent);
    }
    threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t total = (int64_t)a + b;
    return (int32_t)((total + (total >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31: Taylor expansion around -1/8 */
static int32_t exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = edgenn_srdhm(x, x);
    const int32_t x3 = edgenn_srdhm(x2, x);
    const int32_t x4 = edgenn_srdhm(x2, x2);
    const int32_t x4_over_4 = srmbypot(x4, -2);
    const int32_t poly = srmbypot(edgenn_srdhm(wrap32((int64_t)x4_over_4 + x3), one_third) + x2, -1);
    return wrap32((int64_t)constant_term + edgenn_srdhm(constant_term, wrap32((int64_t)x + poly)));
}

static const int32_t EXP_BARREL[7][2] = {
    {-2, 1672461947}, {-1, 1302514674}, {0, 790015084}, {1, 290630308},
    {2, 39332535},    {3, 720401},      {4, 242},
}; /* exp(-2^k) in Q0.31 */

EDGENN_SHARED int32_t edgenn_exp_on_negative_values(int32_t a, int integer_bits) {
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t mod_minus_quarter = (a & mask) - one_quarter;
    const int32_t remainder = wrap32((int64_t)mod_minus_quarter - a);
    int32_t result = exp_quarter(srmbypot(mod_minus_quarter, integer_bits));
    int k;
    for (k = 0; k < 7; k++) {
        const int exponent = EXP_BARREL[k][0];
        if (integer_bits > exponent && fractional_bits + exponent < 32 &&
            ((uint32_t)remainder & ((uint32_t)1 << (fractional_bits + exponent)))) {
            result = edgenn_srdhm(result, EXP_BARREL[k][1]);
        }
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0;
    }
    return a == 0 ? INT32_MAX : result;
}

/* 2 / (1 + a) in Q2.29 for a in [0, 1) in Q0.31: three Newton-Raphson steps */
static int32_t reciprocal_half_denominator(int32_t a) {
    const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
    int32_t x = 1515870810 + edgenn_srdhm(half_denominator, -1010580540);
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t product = edgenn_srdhm(half_denominator, x);
        const int32_t one_minus = (1 << 29) - product;
        x = x + srmbypot(edgenn_srdhm(x, one_minus), 2);
    }
    return x;
}

EDGENN_SHARED int32_t edgenn_one_over_one_plus_x(int32_t a) {
    return srmbypot(reciprocal_half_denominator(a), 1);
}

EDGENN_SHARED int32_t edgenn_logistic_q31(int32_t a, int integer_bits) {
    int32_t magnitude, positive;
    if (a == 0) {
        return 1 << 30;
    }
    magnitude = a > 0 ? a : wrap32(-(int64_t)a);
    positive = edgenn_one_over_one_plus_x(
        edgenn_exp_on_negative_values(wrap32(-(int64_t)magnitude), integer_bits));
    return a > 0 ? positive : INT32_MAX - positive;
}

EDGENN_SHARED int32_t edgenn_tanh_q31(int32_t a, int integer_bits) {
    int32_t negative, t;
    if (a == 0) {
        return 0;
    }
    negative = a < 0 ? a : wrap32(-(int64_t)a);
    t = srmbypot(reciprocal_half_denominator(edgenn_exp_on_negative_values(negative, integer_bits + 1)) -
                     (1 << 29),
                 2);
    return a < 0 ? wrap32(-(int64_t)t) : t;
}
