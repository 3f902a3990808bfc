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

#endif
