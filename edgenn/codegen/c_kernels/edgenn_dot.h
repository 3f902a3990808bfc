/* The int8 dot product every matrix kernel runs: sum a[i] * b[i] in int32.
 *
 * With EDGENN_ARM_DSP (Cortex-M4/M7/M33/M55 with the DSP extension) four int8 pairs go through two
 * SXTB16 unpacks and two SMLAD dual 16-bit multiply-accumulates; the sum is the same integer either way
 * (no intermediate rounding or saturation: SMLAD only sets the Q flag on overflow, which the compiler's
 * accumulator check rules out). */
#ifndef EDGENN_DOT_H
#define EDGENN_DOT_H

#include <stdint.h>
#include <string.h>

#include "edgenn_config.h"

#ifdef EDGENN_ARM_DSP
static inline uint32_t edgenn_load4(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4); /* one unaligned LDR on Cortex-M4 */
    return v;
}

static inline uint32_t edgenn_sxtb16(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}

static inline uint32_t edgenn_sxtb16_ror8(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

static inline int32_t edgenn_smlad(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

/* acc + bottom halves' product (SMLABB), acc + top halves' product (SMLATT) */
static inline int32_t edgenn_smlabb(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

static inline int32_t edgenn_smlatt(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

/* bytes 0, 2 (and with ror8: 1, 3) of v sign-extended and added to the 16-bit halves of a (SXTAB16;
 * an int8 value plus an int8 zero point's negation never wraps int16) */
static inline uint32_t edgenn_sxtab16(uint32_t a, uint32_t v) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

static inline uint32_t edgenn_sxtab16_ror8(uint32_t a, uint32_t v) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
#endif

static inline int32_t edgenn_dot(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0;
    int32_t i = 0;
#ifdef EDGENN_ARM_DSP
    for (; i + 4 <= n; i += 4) {
        const uint32_t va = edgenn_load4(a + i);
        const uint32_t vb = edgenn_load4(b + i);
        acc = edgenn_smlad(edgenn_sxtb16(va), edgenn_sxtb16(vb), acc);           /* bytes 0, 2 */
        acc = edgenn_smlad(edgenn_sxtb16_ror8(va), edgenn_sxtb16_ror8(vb), acc); /* bytes 1, 3 */
    }
#endif
    for (; i < n; i++) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* two dot products sharing one vector: each load and unpack of `a` feeds both weight rows. Kept out of
 * line on GCC: inlined into the kernels' loops, its eleven live values spill to the stack at -Os. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void edgenn_dot2(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n,
                               int32_t *sum0, int32_t *sum1) {
    int32_t acc0 = 0, acc1 = 0;
    int32_t i = 0;
#ifdef EDGENN_ARM_DSP
    for (; i + 4 <= n; i += 4) {
        const uint32_t va = edgenn_load4(a + i);
        const uint32_t even = edgenn_sxtb16(va), odd = edgenn_sxtb16_ror8(va);
        const uint32_t w0 = edgenn_load4(b0 + i), w1 = edgenn_load4(b1 + i);
        acc0 = edgenn_smlad(even, edgenn_sxtb16(w0), acc0);
        acc0 = edgenn_smlad(odd, edgenn_sxtb16_ror8(w0), acc0);
        acc1 = edgenn_smlad(even, edgenn_sxtb16(w1), acc1);
        acc1 = edgenn_smlad(odd, edgenn_sxtb16_ror8(w1), acc1);
    }
#endif
    for (; i < n; i++) {
        acc0 += (int32_t)a[i] * (int32_t)b0[i];
        acc1 += (int32_t)a[i] * (int32_t)b1[i];
    }
    *sum0 += acc0;
    *sum1 += acc1;
}

/* four dot products of length n (a multiple of 4): rows a and a + apart times rows b and b + apart
 * (two pixels' windows by two output channels' weights, each `apart` bytes apart), so each load and
 * unpack feeds two sums. sums: a.b, a.(b + apart), (a + apart).b, (a + apart).(b + apart). One
 * distance for both pairs keeps the loop's live values within the Cortex-M4's registers. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
static void edgenn_dot2x2(const int8_t *a, const int8_t *b, int32_t apart, int32_t n,
                          int32_t sums[4]) {
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
#ifdef EDGENN_ARM_DSP
    int32_t steps = n >> 2;
    if (steps > 0) do { /* tested at the bottom: gcc -Os keeps a top-tested loop unrotated */
        const uint32_t w0 = edgenn_load4(b), w1 = edgenn_load4(b + apart);
        const uint32_t w0_even = edgenn_sxtb16(w0), w0_odd = edgenn_sxtb16_ror8(w0);
        const uint32_t w1_even = edgenn_sxtb16(w1), w1_odd = edgenn_sxtb16_ror8(w1);
        uint32_t x = edgenn_load4(a), even = edgenn_sxtb16(x), odd = edgenn_sxtb16_ror8(x);
        s00 = edgenn_smlad(even, w0_even, s00);
        s00 = edgenn_smlad(odd, w0_odd, s00);
        s01 = edgenn_smlad(even, w1_even, s01);
        s01 = edgenn_smlad(odd, w1_odd, s01);
        x = edgenn_load4(a + apart);
        even = edgenn_sxtb16(x);
        odd = edgenn_sxtb16_ror8(x);
        s10 = edgenn_smlad(even, w0_even, s10);
        s10 = edgenn_smlad(odd, w0_odd, s10);
        s11 = edgenn_smlad(even, w1_even, s11);
        s11 = edgenn_smlad(odd, w1_odd, s11);
        a += 4;
        b += 4;
    } while (--steps);
#else
    const int8_t *end = a + n;
    for (; a < end; a++, b++) {
        const int32_t x0 = a[0], x1 = a[apart], w0 = b[0], w1 = b[apart];
        s00 += x0 * w0;
        s01 += x0 * w1;
        s10 += x1 * w0;
        s11 += x1 * w1;
    }
#endif
    sums[0] = s00;
    sums[1] = s01;
    sums[2] = s10;
    sums[3] = s11;
}

#endif
