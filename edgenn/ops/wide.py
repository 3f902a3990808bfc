"""Int16 activations with int8 weights ("16x8", as TFLite offers) for layers whose int8 error is too
high. Activations are int16 and symmetric (zero point 0); Conv and FullyConnected accumulate in int64
with an int64 bias and requantize with TFLite's 64-bit MultiplyByQuantizedMultiplier; Add/Sub rescale
with a 15-bit left shift; pooling and requantization work as in int8 with int16 bounds.

int16 tensors live in the same byte arena as int8 ones; kernels view their bytes as int16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError
from edgenn.ir import Graph, Node
from edgenn.ops import broadcast_strides, padded_shape
from edgenn.quant.fixed_point import (
    activation_bounds,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_64,
    real_multiplier,
)

if TYPE_CHECKING:
    from edgenn.runtime.program import ProgramBuilder

OP_CONV16, OP_FC16, OP_BINARY16 = 16, 17, 18  # 19: OP_POOL16 (pool.py), 20: OP_REQUANTIZE_WIDE
INT16_MIN, INT16_MAX = -32768, 32767
LEFT_SHIFT16 = 15


def _bounds16(attrs: dict, scale: float) -> tuple[int, int]:
    return activation_bounds(
        attrs.get("clip_min", -np.inf),
        attrs.get("clip_max", np.inf),
        scale,
        0,
        INT16_MIN,
        INT16_MAX,
    )


def prepare_conv16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    attrs = node.attrs
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    w = b.const(w_name)
    one_d = len(b.shape(x)) == 3
    _, *spatial, c = b.shape(x)
    _, *out_spatial, oc = b.shape(y)
    h, width = (1, spatial[0]) if one_d else spatial
    oh, ow = (1, out_spatial[0]) if one_d else out_spatial
    kh, kw = (1, w.shape[1]) if one_d else w.shape[1:3]
    strides = (1, *attrs["strides"]) if one_d else attrs["strides"]
    dilations = (1, *attrs["dilations"]) if one_d else attrs["dilations"]
    pads = attrs["pads"]
    pt, pl = (0, pads[0]) if one_d else (pads[0], pads[1])
    depthwise = attrs["group"] == c and c > 1 and w.shape[-1] == 1
    if attrs["group"] != 1 and not depthwise:
        raise QuantizationError(
            f"node '{node.name}' (Conv): grouped convolution has no 16x8 kernel"
        )
    s_in, s_out = b.scale_zp(x)[0], b.scale_zp(y)[0]
    lo, hi = _bounds16(attrs, s_out)
    return [
        OP_CONV16,
        b.arena(x),
        b.arena(y),
        b.weights(w),
        b.wide(b.const(bias)),
        b.channel_multipliers(node, w_name, oc, s_in, s_out),
        h,
        width,
        c,
        oh,
        ow,
        oc,
        kh,
        kw,
        *strides,
        *dilations,
        pt,
        pl,
        lo,
        hi,
        oc // c if depthwise else 0,
    ]


@njit(cache=True)
def conv16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    x, y, w, b, m = row[1], row[2], row[3], row[4], row[5]
    h, width, c, oh, ow, oc, kh, kw = (
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
    )
    sh, sw, dh, dw, pt, pl, lo, hi, depth_mult = (
        row[14],
        row[15],
        row[16],
        row[17],
        row[18],
        row[19],
        row[20],
        row[21],
        row[22],
    )
    src = arena[x : x + 2 * h * width * c].view(np.int16)
    out = arena[y : y + 2 * oh * ow * oc].view(np.int16)
    for oy in range(oh):
        for ox in range(ow):
            for o in range(oc):
                total = np.int64(0)
                for ky in range(kh):
                    iy = oy * sh - pt + ky * dh
                    if iy < 0 or iy >= h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw - pl + kx * dw
                        if ix < 0 or ix >= width:
                            continue
                        pixel = (iy * width + ix) * c
                        if depth_mult > 0:
                            total += (
                                np.int64(src[pixel + o // depth_mult])
                                * weights[w + (o * kh + ky) * kw + kx]
                            )
                        else:
                            tap = w + ((o * kh + ky) * kw + kx) * c
                            for i in range(c):
                                total += np.int64(src[pixel + i]) * weights[tap + i]
                total += mults[b + o]  # the int64 bias lives in the 64-bit blob
                value = multiply_by_quantized_multiplier_64(total, mults[m + o], shifts[m + o])
                out[(oy * ow + ox) * oc + o] = min(max(value, lo), hi)


def prepare_fc16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    s_in, s_out = b.scale_zp(x)[0], b.scale_zp(y)[0]
    lo, hi = _bounds16(node.attrs, s_out)
    n, k = b.shape(x)
    w = b.const(w_name)
    return [
        OP_FC16,
        b.arena(x),
        b.arena(y),
        b.weights(w),
        b.wide(b.const(bias)),
        b.channel_multipliers(node, w_name, w.shape[0], s_in, s_out),
        n,
        k,
        w.shape[0],
        lo,
        hi,
    ]


@njit(cache=True)
def fc16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    x, y, w, b, m, n, k, outs, lo, hi = (
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
    )
    src = arena[x : x + 2 * n * k].view(np.int16)
    out = arena[y : y + 2 * n * outs].view(np.int16)
    for s in range(n):
        for o in range(outs):
            total = np.int64(0)
            for i in range(k):
                total += np.int64(src[s * k + i]) * weights[w + o * k + i]
            total += mults[b + o]
            value = multiply_by_quantized_multiplier_64(total, mults[m + o], shifts[m + o])
            out[s * outs + o] = min(max(value, lo), hi)


def prepare_binary16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    a, c = node.inputs
    y = node.outputs[0]
    if node.op == "Mul" or any(graph.values[i].is_const for i in node.inputs):
        raise QuantizationError(f"node '{node.name}' ({node.op}): no 16x8 kernel for this form")
    (s_a, _), (s_b, _), (s_out, _) = b.scale_zp(a), b.scale_zp(c), b.scale_zp(y)
    twice_max = 2 * max(float(s_a), float(s_b))
    pairs = [
        real_multiplier(s_a, divisor=twice_max),
        real_multiplier(s_b, divisor=twice_max),
        real_multiplier(twice_max, divisor=(1 << LEFT_SHIFT16) * float(s_out)),
    ]
    lo, hi = _bounds16(node.attrs, s_out)
    out_shape = b.shape(y)
    return [
        OP_BINARY16,
        b.arena(a),
        b.arena(c),
        b.arena(y),
        *padded_shape(out_shape),
        *broadcast_strides(b.shape(a), out_shape),
        *broadcast_strides(b.shape(c), out_shape),
        int(node.op == "Sub"),
        b.multipliers(pairs),
        lo,
        hi,
        int(np.prod(b.shape(a))),
        int(np.prod(b.shape(c))),
    ]


@njit(cache=True)
def binary16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    a, c, y = row[1], row[2], row[3]
    d0, d1, d2, d3 = row[4], row[5], row[6], row[7]
    subtract, m, lo, hi, size_a, size_b = row[16], row[17], row[18], row[19], row[20], row[21]
    first = arena[a : a + 2 * size_a].view(np.int16)
    second = arena[c : c + 2 * size_b].view(np.int16)
    out = arena[y : y + 2 * d0 * d1 * d2 * d3].view(np.int16)
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                for i3 in range(d3):
                    va = np.int64(first[i0 * row[8] + i1 * row[9] + i2 * row[10] + i3 * row[11]])
                    vb = np.int64(second[i0 * row[12] + i1 * row[13] + i2 * row[14] + i3 * row[15]])
                    sa = multiply_by_quantized_multiplier(
                        va << LEFT_SHIFT16, mults[m], shifts[m], rounding
                    )
                    sb = multiply_by_quantized_multiplier(
                        vb << LEFT_SHIFT16, mults[m + 1], shifts[m + 1], rounding
                    )
                    total = sa - sb if subtract else sa + sb
                    value = multiply_by_quantized_multiplier(
                        total, mults[m + 2], shifts[m + 2], rounding
                    )
                    out[index] = min(max(value, lo), hi)
                    index += 1
