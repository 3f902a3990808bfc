"""Requantize: int8 -> int8 with new parameters (TFLite QUANTIZE between two int8 tensors), and the
requantize-and-clamp kernel it shares with standalone Relu/Clip (TFLite RELU, RELU6, RELU_N1_TO_1).

    y = clamp(zp_out + MBQM(x - zp_in, s_in / s_out), lo, hi)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from edgenn.ir import Attrs, DType, Graph, Node, TensorType
from edgenn.ops import Int8Spec, OpSpec, register
from edgenn.ops.wide import prepare_requantize_wide
from edgenn.quant.fixed_point import (
    activation_bounds,
    clamp,
    multiply_by_quantized_multiplier,
    real_multiplier,
)

if TYPE_CHECKING:
    from edgenn.runtime.program import ProgramBuilder

OP_REQUANTIZE = 5


def requantize_row(
    node: Node, b: ProgramBuilder, clip_min: float = -math.inf, clip_max: float = math.inf
) -> list[int]:
    x, y = node.inputs[0], node.outputs[0]
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    lo, hi = activation_bounds(clip_min, clip_max, s_out, zp_out)
    pair = b.multipliers([real_multiplier(s_in, divisor=s_out)])
    return [
        OP_REQUANTIZE,
        b.arena(x),
        b.arena(y),
        int(np.prod(b.shape(x))),
        zp_in,
        zp_out,
        pair,
        lo,
        hi,
    ]


def prepare_requantize_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    return requantize_row(node, b)


@njit(cache=True)
def requantize_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    x, y, n, zp_in, zp_out, m, lo, hi = (
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
    )
    for i in range(n):
        v = multiply_by_quantized_multiplier(arena[x + i] - zp_in, mults[m], shifts[m], rounding)
        arena[y + i] = clamp(v + zp_out, lo, hi)


def infer_requantize(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    """Same shape; the element type named by `to` (int8 <-> int16), else the input's."""
    x = inputs[0]
    assert x is not None
    return [TensorType(DType(attrs["to"]), x.shape) if "to" in attrs else x]


def reference_requantize(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    return [x]  # on real values, a change of quantization parameters is the identity


register(
    OpSpec(
        "Requantize",
        infer_requantize,
        reference_requantize,
        int8=Int8Spec(prepare=prepare_requantize_int8, prepare16=prepare_requantize_wide),
    )
)
