"""Softmax over one axis (opset 13 semantics; older opsets are accepted when they mean the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError, UnsupportedOpError
from edgenn.ir import Attrs, Graph, Node
from edgenn.ops import (
    FIXED,
    ImportContext,
    Imported,
    Int8Spec,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    positive_axis,
    register,
    same_type,
)
from edgenn.quant.fixed_point import (
    clamp,
    count_leading_zeros32,
    exp_on_negative_values,
    input_radius,
    multiply_by_quantized_multiplier,
    one_over_one_plus_x_for_x_in_0_1,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap32,
)

if TYPE_CHECKING:
    from edgenn.runtime.program import ProgramBuilder


def read_softmax(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    if ctx.opset >= 13:
        axis = positive_axis(int(node.attrs.get("axis", -1)), x.rank)
    else:
        # before opset 13 Softmax flattened [axis:] into one dimension: equal to a single-axis softmax
        # when at most one of those dimensions is larger than 1
        start = positive_axis(int(node.attrs.get("axis", 1)), x.rank)
        big = [d for d in range(start, x.rank) if x.shape[d] > 1]
        if len(big) > 1:
            raise UnsupportedOpError(
                f"node '{node.name}' (Softmax, opset {ctx.opset}): softmax over the flattened dims "
                f"{x.shape[start:]} is not supported; export with opset >= 13"
            )
        axis = big[0] if big else x.rank - 1
    return Imported("Softmax", (node.inputs[0],), {"axis": axis})


def reference_softmax(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    shifted = x - x.max(axis=attrs["axis"], keepdims=True)
    e = np.exp(shifted)
    return [(e / e.sum(axis=attrs["axis"], keepdims=True)).astype(x.dtype, copy=False)]


def permute_softmax(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    return {**attrs, "axis": perm.index(attrs["axis"])}


def examples() -> list[OpExample]:
    return [
        OpExample("softmax_last", "Softmax", ((3, 10),)),
        OpExample("softmax_axis1", "Softmax", ((2, 4, 3, 3),), {"axis": 1}),
        OpExample("softmax_opset11", "Softmax", ((3, 10),), {"axis": 1}, opset=11),
    ]


# ---- int8: TFLM's fixed-point softmax (output 1/256, zero point -128) ----

OP_SOFTMAX = 14
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def prepare_softmax_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    x, y = node.inputs[0], node.outputs[0]
    shape = b.shape(x)
    if node.attrs["axis"] != len(shape) - 1:
        raise QuantizationError(
            f"node '{node.name}' (Softmax): int8 softmax runs over the last axis only"
        )
    s_in, _ = b.scale_zp(x)
    # beta = 1; the multiplier is capped where exp() of any non-maximal input would round to 0 anyway
    real = min(float(s_in) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -input_radius(SCALED_DIFF_INTEGER_BITS, left_shift)
    depth = shape[-1]
    return [
        OP_SOFTMAX,
        b.arena(x),
        b.arena(y),
        int(np.prod(shape)) // depth,
        depth,
        diff_min,
        b.multipliers([(multiplier, left_shift)]),
    ]


@njit(cache=True)
def softmax_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    x, y, outer, depth, diff_min, m = row[1], row[2], row[3], row[4], row[5], row[6]
    for r in range(outer):
        base = r * depth
        peak = -128
        for c in range(depth):
            peak = max(peak, arena[x + base + c])
        total = 0  # Q12.19
        for c in range(depth):
            diff = arena[x + base + c] - peak
            if diff >= diff_min:
                scaled = multiply_by_quantized_multiplier(diff, mults[m], shifts[m], rounding)
                e = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
                total += rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS)
        headroom = count_leading_zeros32(total)
        bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom
        shifted_minus_one = wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31))
        reciprocal = one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)
        exponent = bits_over_unit + 31 - 8
        for c in range(depth):
            diff = arena[x + base + c] - peak
            if diff >= diff_min:
                scaled = multiply_by_quantized_multiplier(diff, mults[m], shifts[m], rounding)
                e = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
                out = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(reciprocal, e), exponent
                )
                arena[y + base + c] = clamp(out - 128, -128, 127)
            else:
                arena[y + base + c] = -128


register(
    OpSpec(
        "Softmax",
        same_type,
        reference_softmax,
        read_softmax,
        onnx_ops=("Softmax",),
        attrs={"axis": -1},
        layout=Layout.AXES,
        permute_attrs=permute_softmax,
        examples=examples,
        int8=Int8Spec(output=FIXED, fixed=(1.0 / 256, -128), prepare=prepare_softmax_int8),
    )
)
