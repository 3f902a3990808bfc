/* edgenn test harness: runs the generated model on the inputs compiled into harness_data.h and prints
 * each output as one line of hex bytes ("out 0a f3 ..."). With HARNESS_MEASURE_STACK it paints the stack
 * below main's frame before the first inference and reports the deepest byte touched ("stack N").
 * Used by the tests on the host, under QEMU (Cortex-M semihosting, aarch64 user mode) and on boards. */
#include <stdint.h>
#include <stdio.h>

#include "harness_data.h"

#ifdef HARNESS_MEASURE_STACK
#define PAINT_BYTES 16384
#define PAINT 0xA5
/* reading stack bytes another frame wrote is the point here, not a mistake */
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/* Both frames start at the same stack pointer (called from main at the same depth), so `region` covers
 * the stack the model's calls use next. */
static void __attribute__((noinline)) paint_stack(void) {
    volatile uint8_t region[PAINT_BYTES];
    int i;
    for (i = 0; i < PAINT_BYTES; i++) {
        region[i] = PAINT;
    }
}

static int __attribute__((noinline)) stack_used(void) {
    volatile uint8_t region[PAINT_BYTES];
    int i = 0;
    while (i < PAINT_BYTES && region[i] == PAINT) {
        i++;
    }
    return PAINT_BYTES - i;
}
#endif

int main(void) {
    static int8_t output[HARNESS_OUTPUT_SIZE];
    int s, i, status = 0;
#ifdef HARNESS_MEASURE_STACK
    int deepest;
    paint_stack();
    status |= HARNESS_INVOKE(harness_inputs[0], output);
    deepest = stack_used();
#endif
    for (s = 0; s < HARNESS_SAMPLES; s++) {
        status |= HARNESS_INVOKE(harness_inputs[s], output);
        printf("out");
        for (i = 0; i < HARNESS_OUTPUT_SIZE; i++) {
            printf(" %02x", (unsigned)(uint8_t)output[i]);
        }
        printf("\n");
    }
#ifdef HARNESS_MEASURE_STACK
    printf("stack %d\n", deepest);
#endif
    return status;
}
