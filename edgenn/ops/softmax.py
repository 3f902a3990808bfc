"""Softmax over one axis (opset 13 semantics; older opsets are accepted when they mean the same)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    same_type,
    tflite_unary,
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
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
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
    return SOFTMAX.row(
        x=b.arena(x),
        y=b.arena(y),
        outer=int(np.prod(shape)) // depth,
        depth=depth,
        diff_min=diff_min,
        m=b.multipliers([(multiplier, left_shift)]),
    )


@njit(cache=True)
def softmax_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = SOFTMAX_ROW
    x, y, outer, depth, diff_min = row[f.x], row[f.y], row[f.outer], row[f.depth], row[f.diff_min]
    m = row[f.m]
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


# ---- int16 (16x8): TFLM's table softmax (output 2^-15, zero point 0) ----

LUT_STEPS = 512  # an int16-input table: 512 intervals and one extra value for the last slope


def int16_lut(func: Callable[[np.ndarray], np.ndarray], lo: float, hi: float) -> np.ndarray:
    """TFLM's gen_lut<float, int16_t, int16_t> over [lo, hi] -> [-1, 1], in float32 arithmetic: each
    sample is biased by half the error linear interpolation makes at the interval's midpoint."""
    f32 = np.float32
    step = (f32(hi) - f32(lo)) / f32(LUT_STEPS)
    half = step / f32(2)
    gain = f32(32768)  # (32767 - -32768 + 1) / (1 - -1)
    i = np.arange(LUT_STEPS, dtype=np.float32)
    val = func(f32(lo) + i * step)
    mid = func(f32(lo) + i * step + half)
    nxt = func(f32(lo) + (i + f32(1)) * step)
    sample = round_half_away_f32(val * gain)
    interpolated = round_half_away_f32((nxt * gain + sample) / f32(2))
    bias = round_half_away_f32((interpolated - round_half_away_f32(mid * gain)) / f32(2))
    last = round_half_away_f32(func(np.array([hi], np.float32)) * gain)
    table = np.concatenate([sample - bias, last])
    return np.clip(table, -32768, 32767).astype(np.int64)


def round_half_away_f32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))).astype(np.float32)


def exp_f32(x: np.ndarray) -> np.ndarray:
    """expf, correctly rounded (computed in float64, rounded once to float32)."""
    return np.exp(np.asarray(x, np.float64)).astype(np.float32)


def reciprocal_f32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return (np.float32(1) / (np.float32(1) + x)).astype(np.float32)


def prepare_softmax16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's int16 Prepare: input differences scaled so [-65535, 0] spans exp's table [-10, 0]; the
    exp and 1/(1+x) tables built once; output scale 2^-15, zero point 0."""
    x, y = node.inputs[0], node.outputs[0]
    shape = b.shape(x)
    if node.attrs["axis"] != len(shape) - 1:
        raise QuantizationError(
            f"node '{node.name}' (Softmax): softmax runs over the last axis only"
        )
    (s_in, _), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    if zp_out != 0 or abs(float(s_out) - 1 / 32768) > 0.001 / 32768:
        raise QuantizationError(
            f"node '{node.name}' (Softmax): 16x8 needs output scale 2^-15 and zero point 0, "
            f"got {s_out} and {zp_out}"
        )
    multiplier, shift = quantize_multiplier(float(s_in) / (10.0 / 65535.0))  # beta = 1
    depth = shape[-1]
    return SOFTMAX16.row(
        x=b.arena(x),
        y=b.arena(y),
        outer=int(np.prod(shape)) // depth,
        depth=depth,
        m=b.multipliers([(multiplier, shift)]),
        exp_table=b.wide(int16_lut(exp_f32, -10.0, 0.0)),
        reciprocal_table=b.wide(int16_lut(reciprocal_f32, 0.0, 1.0)),
    )


@njit(cache=True, inline="always")
def lut_lookup16(value, mults, table):  # type: ignore[no-untyped-def]
    """TFLM's int16 table lookup: 512 intervals of 128 inputs, interpolated, rounded to Q0.15."""
    index = 256 + (value >> 7)
    base = mults[table + index]
    slope = mults[table + index + 1] - base
    return base + ((slope * (value & 0x7F) + 64) >> 7)


@njit(cache=True)
def softmax16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = SOFTMAX16_ROW
    x, y, outer, depth, m = row[f.x], row[f.y], row[f.outer], row[f.depth], row[f.m]
    exp_table, reciprocal_table = row[f.exp_table], row[f.reciprocal_table]
    src = arena[x : x + 2 * outer * depth].view(np.int16)
    out = arena[y : y + 2 * outer * depth].view(np.int16)
    for r in range(outer):
        base = r * depth
        peak = -32768
        for c in range(depth):
            peak = max(peak, np.int64(src[base + c]))
        total = np.int64(0)  # Q16.15; the exps wait in the output, as in TFLM
        for c in range(depth):
            scaled = multiply_by_quantized_multiplier(
                np.int64(src[base + c]) - peak, mults[m], shifts[m], rounding
            )
            e = lut_lookup16(clamp(scaled + 32767, -32768, 32767), mults, exp_table)
            out[base + c] = e
            total += e
        headroom = count_leading_zeros32(total)
        shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
        centred = clamp(shifted - ((1 << 15) + (1 << 16)), -32768, 32767)
        reciprocal = lut_lookup16(centred, mults, reciprocal_table)
        right = 31 - headroom
        half = np.int64(1) << (right - 1)
        for c in range(depth):
            value = (np.int64(out[base + c]) * reciprocal + half) >> right
            out[base + c] = clamp(value, 0, 32767)


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
        int8=Int8Spec(
            output=FIXED,
            fixed=(1.0 / 256, -128),
            prepare=prepare_softmax_int8,
            prepare16=prepare_softmax16,
        ),
    )
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
SOFTMAX_ROW = row_layout("softmax", "x y outer depth diff_min m")
SOFTMAX = register_kernel("softmax", softmax_int8, SOFTMAX_ROW, c=("edgenn_softmax", "softmax.c"))
SOFTMAX16_ROW = row_layout("softmax16", "x y outer depth m exp_table reciprocal_table")
SOFTMAX16 = register_kernel("softmax16", softmax16, SOFTMAX16_ROW)


# ---- TFLite: how the writer lowers these ops ----


def lower_softmax(lw: Lowering, node: Node) -> None:
    if node.attrs["axis"] != len(lw.graph.type_of(node.inputs[0]).shape) - 1:
        raise QuantizationError(
            f"node '{node.name}' (Softmax): TFLite softmax runs over the last axis only"
        )
    tflite_unary("SOFTMAX", lambda n: ("SoftmaxOptions", {"beta": 1.0}))(lw, node)


register_tflite("Softmax", lower=lower_softmax, versions={"SOFTMAX": 2})


# ---- TFLite: how the reader takes these builtins ----


def read_softmax(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "SoftmaxOptions")
    if o is not None and o.Beta() != 1.0:
        raise UnsupportedOpError(
            f"{r.name}: {name} has beta {o.Beta()}; edgenn's softmax takes beta 1"
        )
    r.emit(name, "Softmax", ins[:1], outs, axis=len(r.shape(ins[0])) - 1)


register_tflite_reader("SOFTMAX", read=read_softmax)
