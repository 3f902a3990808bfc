"""Requantize: int8 -> int8 with new parameters (TFLite QUANTIZE between two int8 tensors), and the
requantize-and-clamp kernel it shares with standalone Relu/Clip (TFLite RELU, RELU6, RELU_N1_TO_1).

    y = clamp(zp_out + MBQM(x - zp_in, s_in / s_out), lo, hi)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.ir import Attrs, DType, Graph, Node, TensorType
from edgenn.ops import (
    Int8Spec,
    OpSpec,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    tflite_read_as,
    tflite_unary,
)
from edgenn.quant.fixed_point import (
    activation_bounds,
    clamp,
    multiply_by_quantized_multiplier,
    real_multiplier,
)

if TYPE_CHECKING:
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder


def requantize_row(
    node: Node, b: ProgramBuilder, clip_min: float = -math.inf, clip_max: float = math.inf
) -> list[int]:
    """Requantize with an optional clamp; int8 or int16 on either side (16x8 boundaries run the wide
    kernel, which views int16 operands)."""
    x, y = node.inputs[0], node.outputs[0]
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    wide_in, wide_out = (b.graph.type_of(name).dtype == DType.INT16 for name in (x, y))
    qmin, qmax = (-32768, 32767) if wide_out else (-128, 127)
    lo, hi = activation_bounds(clip_min, clip_max, s_out, zp_out, qmin, qmax)
    pair = b.multipliers([real_multiplier(s_in, divisor=s_out)])
    kernel = REQUANTIZE_WIDE if wide_in or wide_out else REQUANTIZE
    count = int(np.prod(b.shape(x)))
    return kernel.row(
        x=b.arena(x),
        y=b.arena(y),
        n=count,
        zp_in=zp_in,
        zp_out=zp_out,
        m=pair,
        lo=lo,
        hi=hi,
        wide_in=int(wide_in),
        wide_out=int(wide_out),
    )


def prepare_requantize_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    return requantize_row(node, b)


@njit(cache=True)
def requantize_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = REQUANTIZE_ROW
    x, y, n, zp_in, zp_out, m = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.zp_out], row[f.m]
    lo, hi = row[f.lo], row[f.hi]
    requantize_values(
        arena[x : x + n], arena[y : y + n], zp_in, zp_out, mults[m], shifts[m], rounding, lo, hi
    )


@njit(cache=True)
def requantize_values(src, out, zp_in, zp_out, q, shift, rounding, lo, hi):  # type: ignore[no-untyped-def]
    """out = clamp(zp_out + MBQM(src - zp_in)) elementwise; src and out are int8 slices or int16 views."""
    for i in range(src.shape[0]):
        value = multiply_by_quantized_multiplier(np.int64(src[i]) - zp_in, q, shift, rounding)
        out[i] = clamp(value + zp_out, lo, hi)


@njit(cache=True)
def requantize_wide(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = REQUANTIZE_ROW
    x, y, n, zp_in, zp_out, m = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.zp_out], row[f.m]
    lo, hi = row[f.lo], row[f.hi]
    wide_in, wide_out = row[f.wide_in], row[f.wide_out]
    q, shift = mults[m], shifts[m]
    if wide_in and wide_out:
        requantize_values(
            arena[x : x + 2 * n].view(np.int16),
            arena[y : y + 2 * n].view(np.int16),
            zp_in,
            zp_out,
            q,
            shift,
            rounding,
            lo,
            hi,
        )
    elif wide_in:
        requantize_values(
            arena[x : x + 2 * n].view(np.int16),
            arena[y : y + n],
            zp_in,
            zp_out,
            q,
            shift,
            rounding,
            lo,
            hi,
        )
    else:
        requantize_values(
            arena[x : x + n],
            arena[y : y + 2 * n].view(np.int16),
            zp_in,
            zp_out,
            q,
            shift,
            rounding,
            lo,
            hi,
        )


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
        int8=Int8Spec(
            in_place=True, prepare=prepare_requantize_int8, prepare16=prepare_requantize_int8
        ),
    )
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
REQUANTIZE_ROW = row_layout("requantize", "x y n zp_in zp_out m lo hi wide_in wide_out")
REQUANTIZE = register_kernel(
    "requantize", requantize_int8, REQUANTIZE_ROW, c=("edgenn_requantize", "requantize.c")
)
REQUANTIZE_WIDE = register_kernel(
    "requantize_wide",
    requantize_wide,
    REQUANTIZE_ROW,
    c=("edgenn_requantize_wide", "requantize.c"),
)


# ---- TFLite ----
register_tflite("Requantize", lower=tflite_unary("QUANTIZE"), versions={"QUANTIZE": 2})


# ---- TFLite: how the reader takes these builtins ----


def read_quantize(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    source = r.values[ins[0]].type.dtype
    if source == DType.FLOAT32:
        r.emit(name, "Quantize", ins[:1], outs)
    else:
        r.emit(name, "Requantize", ins[:1], outs, to=r.values[outs[0]].type.dtype.value)


register_tflite_reader("QUANTIZE", read=read_quantize)
register_tflite_reader("DEQUANTIZE", read=tflite_read_as("Dequantize"))
