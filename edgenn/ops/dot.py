"""The integer dot-product core shared by FullyConnected and Conv kernels.

Four output rows at a time, so one load of the input feeds four rows. The bulk (a multiple of 16
elements) runs in `pair_dot4`, written directly as generic LLVM vector IR: int8 sign-extended, 16 products,
adjacent pairs added into 8 int32 lanes per row. That shape is what x86 lowers to PMADDWD and Arm to
SMULL/SADALP, twice the throughput of the int32 multiplies LLVM picks for the same loop written in Python
(no target-specific intrinsic is used). The tail and leftover rows run as plain loops. Callers guarantee
the int32 sums cannot overflow (the quantizer's accumulator check) and that the operands are in bounds.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # int8 elements per vector step


def _pair_dot4_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    vector = context.make_array(signature.args[0])(context, builder, args[0]).data
    weights = context.make_array(signature.args[1])(context, builder, args[1]).data
    out = context.make_array(signature.args[5])(context, builder, args[5]).data
    start, stride, length = args[2], args[3], args[4]
    i64, i32 = start.type, ir.IntType(32)
    bytes_t, wide_t, sums_t = (
        ir.VectorType(ir.IntType(8), LANES),
        ir.VectorType(i32, LANES),
        ir.VectorType(i32, LANES // 2),
    )
    even = ir.Constant(sums_t, [ir.Constant(i32, 2 * j) for j in range(LANES // 2)])
    odd = ir.Constant(sums_t, [ir.Constant(i32, 2 * j + 1) for j in range(LANES // 2)])
    zero = ir.Constant(sums_t, None)

    def load(pointer, index):  # type: ignore[no-untyped-def]
        raw = builder.load(
            builder.bitcast(builder.gep(pointer, [index]), bytes_t.as_pointer()), align=1
        )
        return builder.sext(raw, wide_t)

    entry = builder.block
    loop = builder.append_basic_block("pair_dot4.loop")
    done = builder.append_basic_block("pair_dot4.done")
    builder.cbranch(builder.icmp_signed(">", length, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    sums = []
    for _ in range(4):
        phi = builder.phi(sums_t)
        phi.add_incoming(zero, entry)
        sums.append(phi)
    x = load(vector, i)
    updated = []
    for r, total in enumerate(sums):
        row = builder.add(builder.add(start, builder.mul(stride, ir.Constant(i64, r))), i)
        product = builder.mul(x, load(weights, row))
        pairs = builder.add(
            builder.shuffle_vector(product, product, even),
            builder.shuffle_vector(product, product, odd),
        )
        updated.append(builder.add(total, pairs))
    step = builder.add(i, ir.Constant(i64, LANES))
    body_end = builder.block
    i.add_incoming(step, body_end)
    for total, new in zip(sums, updated):
        total.add_incoming(new, body_end)
    builder.cbranch(builder.icmp_signed("<", step, length), loop, done)
    builder.position_at_end(done)
    reduce_add = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(i32, [sums_t]), "llvm.vector.reduce.add.v8i32"
    )
    finals = []
    for new in updated:  # all phis first: LLVM wants them at the top of the block
        final = builder.phi(sums_t)
        final.add_incoming(zero, entry)
        final.add_incoming(new, body_end)
        finals.append(final)
    for r, final in enumerate(finals):
        builder.store(builder.call(reduce_add, [final]), builder.gep(out, [ir.Constant(i64, r)]))
    return context.get_dummy_value()


@intrinsic
def pair_dot4(typingctx, vector, weights, start, stride, length, out):  # type: ignore[no-untyped-def]
    """out[r] = sum_{i < length} vector[i] * weights[start + r * stride + i] for r < 4 (int32 sums);
    length a multiple of LANES (0 allowed). No bounds checks."""
    return types.void(vector, weights, start, stride, length, out), _pair_dot4_ir


@njit(cache=True, inline="always")
def dot_rows(vector, weights, offset, k, rows, out):  # type: ignore[no-untyped-def]
    """out[o] = sum_i vector[i] * weights[offset + o*k + i] for o < rows (int32 sums)."""
    body = k - k % LANES
    o = 0
    while o + 4 <= rows:
        base = offset + o * k
        pair_dot4(vector, weights, base, k, body, out[o : o + 4])
        for r in range(4):  # the last k % LANES elements
            a = np.int32(out[o + r])
            w = weights[base + r * k : base + (r + 1) * k]
            for i in range(body, k):
                a = np.int32(a + np.int32(vector[i]) * np.int32(w[i]))
            out[o + r] = a
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
