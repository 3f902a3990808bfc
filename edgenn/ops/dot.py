"""The integer dot-product core shared by FullyConnected and Conv kernels.

Four output rows at a time, each with an int32 accumulator, so one load of the input feeds four
multiply-adds and LLVM vectorizes the inner loop. Slices with non-negative loop indices keep Numba from
emitting negative-index checks, which would block vectorization. Callers guarantee the int32 sums cannot
overflow (the quantizer's accumulator check).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def dot_rows(vector, weights, offset, k, rows, out):  # type: ignore[no-untyped-def]
    """out[o] = sum_i vector[i] * weights[offset + o*k + i] for o < rows (int32 sums)."""
    o = 0
    while o + 4 <= rows:
        base = offset + o * k
        w0 = weights[base : base + k]
        w1 = weights[base + k : base + 2 * k]
        w2 = weights[base + 2 * k : base + 3 * k]
        w3 = weights[base + 3 * k : base + 4 * k]
        a0 = np.int32(0)
        a1 = np.int32(0)
        a2 = np.int32(0)
        a3 = np.int32(0)
        for i in range(k):
            v = np.int32(vector[i])
            a0 = np.int32(a0 + v * np.int32(w0[i]))
            a1 = np.int32(a1 + v * np.int32(w1[i]))
            a2 = np.int32(a2 + v * np.int32(w2[i]))
            a3 = np.int32(a3 + v * np.int32(w3[i]))
        out[o] = a0
        out[o + 1] = a1
        out[o + 2] = a2
        out[o + 3] = a3
        o += 4
    while o < rows:
        w = weights[offset + o * k : offset + o * k + k]
        a = np.int32(0)
        for i in range(k):
            a = np.int32(a + np.int32(vector[i]) * np.int32(w[i]))
        out[o] = a
        o += 1


@njit(cache=True, inline="always")
def requantize_channels(acc, biases, mults, shifts, rounding, zp_out, lo, hi, out):  # type: ignore[no-untyped-def]
    """out[o] = clamp(MBQM(acc[o] + biases[o], mults[o], shifts[o]) + zp_out, lo, hi), written without
    branches so the loop vectorizes. Multipliers are non-negative (never INT32_MIN), so SRDHM's one
    saturating case cannot occur."""
    n = out.shape[0]
    if rounding == 1:  # single rounding: one rounding shift of the 64-bit product
        for o in range(n):
            total = 31 - shifts[o]
            v = (np.int64(acc[o] + biases[o]) * mults[o] + (np.int64(1) << (total - 1))) >> total
            v += zp_out
            out[o] = min(max(v, lo), hi)
        return
    for o in range(n):
        shift = shifts[o]
        left = max(shift, 0)
        right = max(-shift, 0)
        product = (np.int64(acc[o] + biases[o]) << left) * mults[o]
        nudged = product + ((1 << 30) if product >= 0 else (1 - (1 << 30)))
        high = (
            nudged + ((nudged >> 63) & np.int64((1 << 31) - 1))
        ) >> 31  # divide, truncating toward 0
        mask = (np.int64(1) << right) - 1
        threshold = (mask >> 1) - (high >> 63)
        v = (high >> right) + np.int64((high & mask) > threshold) + zp_out
        out[o] = min(max(v, lo), hi)
