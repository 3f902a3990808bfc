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


RQ_LANES = 8  # outputs per vector step of the requantization


def _requantize_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    arrays = [
        context.make_array(signature.args[i])(context, builder, args[i]).data for i in range(4)
    ]
    out = context.make_array(signature.args[8])(context, builder, args[8]).data
    length, zp_out, lo, hi = args[4], args[5], args[6], args[7]
    i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
    v64, v32, v8 = (ir.VectorType(t, RQ_LANES) for t in (i64, i32, i8))

    def splat(vector_type, value):  # type: ignore[no-untyped-def]
        if isinstance(value, int):
            return ir.Constant(vector_type, [ir.Constant(vector_type.element, value)] * RQ_LANES)
        undef = ir.Constant(vector_type, None)
        one = builder.insert_element(undef, value, ir.Constant(i32, 0))
        return builder.shuffle_vector(
            one, undef, ir.Constant(v32, [ir.Constant(i32, 0)] * RQ_LANES)
        )

    def load(pointer, vector_type, index):  # type: ignore[no-untyped-def]
        return builder.load(
            builder.bitcast(builder.gep(pointer, [index]), vector_type.as_pointer()), align=1
        )

    def select_max(a, b):  # type: ignore[no-untyped-def]
        return builder.select(builder.icmp_signed(">", a, b), a, b)

    def select_min(a, b):  # type: ignore[no-untyped-def]
        return builder.select(builder.icmp_signed("<", a, b), a, b)

    zp32, lo32, hi32 = (splat(v32, builder.trunc(v, i32)) for v in (zp_out, lo, hi))
    entry = builder.block
    loop = builder.append_basic_block("requantize.loop")
    done = builder.append_basic_block("requantize.done")
    builder.cbranch(builder.icmp_signed(">", length, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    total = builder.add(load(arrays[0], v32, i), load(arrays[1], v32, i))
    multiplier = builder.trunc(load(arrays[2], v64, i), v32)
    shift = builder.trunc(load(arrays[3], v64, i), v32)
    left = select_max(shift, splat(v32, 0))
    right = select_max(builder.neg(shift), splat(v32, 0))
    # (a << left) * m == (a * m) << left in int64, and a * m of two int32 is one widening multiply
    product = builder.shl(
        builder.mul(builder.sext(total, v64), builder.sext(multiplier, v64)),
        builder.zext(left, v64),
    )
    negative = builder.icmp_signed("<", product, splat(v64, 0))
    nudged = builder.add(
        product, builder.select(negative, splat(v64, 1 - (1 << 30)), splat(v64, 1 << 30))
    )
    toward_zero = builder.select(
        builder.icmp_signed("<", nudged, splat(v64, 0)), splat(v64, (1 << 31) - 1), splat(v64, 0)
    )
    high = builder.ashr(builder.add(nudged, toward_zero), splat(v64, 31))
    # only a left shift (then right == 0) can push `high` past int32; saturating keeps the clamp's result
    high = builder.trunc(
        select_min(select_max(high, splat(v64, -(1 << 31))), splat(v64, (1 << 31) - 1)), v32
    )
    mask = builder.sub(builder.shl(splat(v32, 1), right), splat(v32, 1))
    threshold = builder.add(
        builder.ashr(mask, splat(v32, 1)),
        builder.zext(builder.icmp_signed("<", high, splat(v32, 0)), v32),
    )
    rounded = builder.add(
        builder.ashr(high, right),
        builder.zext(builder.icmp_signed(">", builder.and_(high, mask), threshold), v32),
    )
    # a value this far out clamps to lo or hi with or without the zero point (which must not overflow)
    rounded = select_min(select_max(rounded, splat(v32, -(1 << 24))), splat(v32, 1 << 24))
    value = select_min(select_max(builder.add(rounded, zp32), lo32), hi32)
    builder.store(
        builder.trunc(value, v8),
        builder.bitcast(builder.gep(out, [i]), v8.as_pointer()),
        align=1,
    )
    step = builder.add(i, ir.Constant(i64, RQ_LANES))
    i.add_incoming(step, builder.block)
    builder.cbranch(builder.icmp_signed("<", step, length), loop, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def requantize_vector(typingctx, acc, biases, mults, shifts, length, zp_out, lo, hi, out):  # type: ignore[no-untyped-def]
    """The double-rounding requantize_channels over the first `length` elements (a multiple of
    RQ_LANES), RQ_LANES at a time: int32 acc and biases, int64 mults and shifts, int8 out. The same
    integer steps, in int32 lanes where they fit. No bounds checks."""
    return types.void(acc, biases, mults, shifts, length, zp_out, lo, hi, out), _requantize_ir


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
    body = n - n % RQ_LANES
    requantize_vector(acc, biases, mults, shifts, body, zp_out, lo, hi, out)
    for o in range(body, n):
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
