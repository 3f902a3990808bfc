"""Pointwise activations: Relu, Clip (ReLU6 and friends), LeakyRelu, PRelu, Sigmoid, Tanh, HardSigmoid, HardSwish."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError
from edgenn.ir import Attrs, Graph, Node, TensorType
from edgenn.ops import (
    FIXED,
    SAME,
    ImportContext,
    Imported,
    Int8Spec,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    broadcast_shape,
    broadcast_strides,
    const_input,
    padded_shape,
    passthrough_import,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    same_type,
    spread,
    tflite_read_as,
    tflite_unary,
)
from edgenn.ops.quantization import requantize_row
from edgenn.ops.wide import prepare_logistic_tanh16
from edgenn.quant.fixed_point import (
    clamp,
    fixed_logistic,
    fixed_tanh,
    input_radius,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    real_multiplier,
    round_half_away,
    rounding_divide_by_pot,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder

Unary = Callable[[np.ndarray, Attrs], np.ndarray]


def unary_reference(fn: Unary) -> Callable[[Sequence[np.ndarray | None], Attrs], list[np.ndarray]]:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        return [np.asarray(fn(x, attrs)).astype(x.dtype, copy=False)]

    return reference


def read_clip(node: OnnxNode, ctx: ImportContext) -> Imported:
    """Clip bounds are attributes before opset 11 and optional constant inputs from 11 on."""
    if ctx.opset < 11:
        lo, hi = node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf)
    else:
        lo_arr, hi_arr = const_input(node, 1, ctx, "min"), const_input(node, 2, ctx, "max")
        lo = -math.inf if lo_arr is None else float(lo_arr)
        hi = math.inf if hi_arr is None else float(hi_arr)
    return Imported("Clip", (node.inputs[0],), {"min": float(lo), "max": float(hi)})


def _sigmoid(x: np.ndarray, attrs: Attrs) -> np.ndarray:
    # split by sign so exp never overflows
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _hard_sigmoid(x: np.ndarray, attrs: Attrs) -> np.ndarray:
    return np.clip(attrs["alpha"] * x + attrs["beta"], 0.0, 1.0)


UNARY: dict[str, tuple[Unary, dict[str, float]]] = {
    "Relu": (lambda x, a: np.maximum(x, 0), {}),
    "Clip": (lambda x, a: np.clip(x, a["min"], a["max"]), {"min": -math.inf, "max": math.inf}),
    "LeakyRelu": (lambda x, a: np.where(x >= 0, x, a["alpha"] * x), {"alpha": 0.01}),
    "Sigmoid": (_sigmoid, {}),
    "Tanh": (lambda x, a: np.tanh(x), {}),
    "HardSigmoid": (_hard_sigmoid, {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": (lambda x, a: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0), {}),
}


def infer_prelu(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, slope = inputs[0], inputs[1]
    assert x is not None and slope is not None
    return [x.with_shape(broadcast_shape(x.shape, slope.shape))]


def reference_prelu(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, slope = inputs[0], inputs[1]
    assert x is not None and slope is not None
    return [np.where(x >= 0, x, slope * x).astype(x.dtype, copy=False)]


def unary_examples(op: str) -> Callable[[], list[OpExample]]:
    def examples() -> list[OpExample]:
        cases = [OpExample(op.lower(), op, ((2, 3, 5),))]
        if op == "Clip":
            cases += [
                OpExample(
                    "clip_relu6",
                    op,
                    ((2, 8),),
                    {},
                    {1: np.array(0.0, np.float32), 2: np.array(6.0, np.float32)},
                ),
                OpExample("clip_min_only", op, ((2, 8),), {}, {1: np.array(-0.25, np.float32)}),
                OpExample(
                    "clip_opset11_max_only",
                    op,
                    ((2, 8),),
                    {},
                    {2: np.array(0.5, np.float32)},
                    opset=11,
                ),
            ]
        if op == "LeakyRelu":
            cases.append(OpExample("leakyrelu_alpha", op, ((4, 4),), {"alpha": 0.2}))
        if op == "HardSigmoid":
            cases.append(
                OpExample("hardsigmoid_alpha_beta", op, ((4, 4),), {"alpha": 0.3, "beta": 0.4})
            )
        return cases

    return examples


def prelu_examples() -> list[OpExample]:
    slope = np.array([0.1, -0.2, 0.3], np.float32).reshape(3, 1, 1)
    return [OpExample("prelu_channel", "PRelu", ((1, 3, 4, 4),), {}, {1: slope})]


def _read_unary(op: str) -> Callable[[OnnxNode, ImportContext], Imported]:
    return read_clip if op == "Clip" else passthrough_import(op, 1)


# ---- int8 ----


def prepare_clamp_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """Relu and Clip keep their input's parameters (TFLM's RELU6 clamps without requantizing), so the
    kernel is a clamp: TFLite RELU / RELU6 / RELU_N1_TO_1."""
    lo, hi = (0.0, math.inf) if node.op == "Relu" else (node.attrs["min"], node.attrs["max"])
    return requantize_row(node, b, lo, hi)


def prepare_leaky_relu_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLite LEAKY_RELU: identity multiplier s_in/s_out for x >= zp_in, alpha * s_in/s_out below."""
    x, y = node.inputs[0], node.outputs[0]
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    alpha = float(np.float32(node.attrs.get("alpha", 0.01)))
    pairs = [real_multiplier(s_in, divisor=s_out), real_multiplier(alpha, s_in, divisor=s_out)]
    return LEAKY_RELU.row(
        x=b.arena(x),
        y=b.arena(y),
        n=int(np.prod(b.shape(x))),
        zp_in=zp_in,
        zp_out=zp_out,
        m=b.multipliers(pairs),
    )


@njit(cache=True)
def leaky_relu_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = LEAKY_RELU_ROW
    x, y, n, zp_in, zp_out, m = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.zp_out], row[f.m]
    for i in range(n):
        v = arena[x + i] - zp_in
        k = m if v >= 0 else m + 1
        arena[y + i] = clamp(
            multiply_by_quantized_multiplier(v, mults[k], shifts[k], rounding) + zp_out, -128, 127
        )


def prepare_leaky_relu16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLite LEAKY_RELU on int16 (zero points 0): the int8 row's multipliers, int16 bounds."""
    return LEAKY_RELU16.retag(prepare_leaky_relu_int8(node, graph, b))


@njit(cache=True)
def leaky_relu16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = LEAKY_RELU_ROW
    x, y, n, zp_in, zp_out, m = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.zp_out], row[f.m]
    src = arena[x : x + 2 * n].view(np.int16)
    out = arena[y : y + 2 * n].view(np.int16)
    for i in range(n):
        v = np.int64(src[i]) - zp_in
        k = m if v >= 0 else m + 1
        out[i] = clamp(
            multiply_by_quantized_multiplier(v, mults[k], shifts[k], rounding) + zp_out,
            -32768,
            32767,
        )


def prepare_prelu_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLite PRELU: x >= zp_in scales by s_in/s_out; below, (x - zp_in) * (alpha - zp_alpha) by
    s_in * s_alpha / s_out. Alpha broadcasts against x."""
    x, alpha = node.inputs
    y = node.outputs[0]
    (s_in, zp_in), (s_a, zp_a), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(alpha), b.scale_zp(y)
    pairs = [real_multiplier(s_in, divisor=s_out), real_multiplier(s_in, s_a, divisor=s_out)]
    out_shape = b.shape(y)
    return PRELU.row(
        x=b.arena(x),
        alpha=b.weights(b.const(alpha)),
        y=b.arena(y),
        **spread("d0 d1 d2 d3", padded_shape(out_shape)),
        **spread("x_s0 x_s1 x_s2 x_s3", broadcast_strides(b.shape(x), out_shape)),
        **spread("a_s0 a_s1 a_s2 a_s3", broadcast_strides(b.shape(alpha), out_shape)),
        zp_in=zp_in,
        zp_alpha=zp_a,
        zp_out=zp_out,
        m=b.multipliers(pairs),
    )


@njit(cache=True)
def prelu_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = PRELU_ROW
    x_s0, x_s1, x_s2, x_s3 = row[f.x_s0], row[f.x_s1], row[f.x_s2], row[f.x_s3]
    a_s0, a_s1, a_s2, a_s3 = row[f.a_s0], row[f.a_s1], row[f.a_s2], row[f.a_s3]
    x, a, y = row[f.x], row[f.alpha], row[f.y]
    d0, d1, d2, d3 = row[f.d0], row[f.d1], row[f.d2], row[f.d3]
    zp_in, zp_a, zp_out, m = row[f.zp_in], row[f.zp_alpha], row[f.zp_out], row[f.m]
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                for i3 in range(d3):
                    v = arena[x + i0 * x_s0 + i1 * x_s1 + i2 * x_s2 + i3 * x_s3] - zp_in
                    if v >= 0:
                        out = multiply_by_quantized_multiplier(v, mults[m], shifts[m], rounding)
                    else:
                        slope = weights[a + i0 * a_s0 + i1 * a_s1 + i2 * a_s2 + i3 * a_s3] - zp_a
                        out = multiply_by_quantized_multiplier(
                            v * slope, mults[m + 1], shifts[m + 1], rounding
                        )
                    arena[y + index] = clamp(out + zp_out, -128, 127)
                    index += 1


INPUT_INTEGER_BITS = 4  # TFLM rescales Logistic/Tanh inputs to Q4.27


def prepare_logistic_tanh_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's Prepare: input multiplier s_in * 2^27 as frexp mantissa (rounded, not renormalized) and
    exponent, and the input radius beyond which the output saturates."""
    x, y = node.inputs[0], node.outputs[0]
    s_in, zp_in = b.scale_zp(x)
    mantissa, left_shift = math.frexp(float(s_in) * float(1 << (31 - INPUT_INTEGER_BITS)))
    multiplier = round_half_away(mantissa * (1 << 31))
    radius = input_radius(INPUT_INTEGER_BITS, left_shift)
    return LOGISTIC_TANH.row(
        x=b.arena(x),
        y=b.arena(y),
        n=int(np.prod(b.shape(x))),
        zp_in=zp_in,
        radius=radius,
        m=b.multipliers([(multiplier, left_shift)]),
        tanh=int(node.op == "Tanh"),
    )


@njit(cache=True)
def logistic_tanh_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = LOGISTIC_TANH_ROW
    x, y, n, zp_in, radius, m = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.radius], row[f.m]
    tanh = row[f.tanh]
    for i in range(n):
        v = arena[x + i] - zp_in
        if v <= -radius:
            arena[y + i] = -128
        elif v >= radius:
            arena[y + i] = 127
        else:
            q4 = multiply_by_quantized_multiplier(v, mults[m], shifts[m], rounding)
            if not tanh:  # logistic: output 1/256, zero point -128
                out = rounding_divide_by_pot(fixed_logistic(q4, INPUT_INTEGER_BITS), 23) - 128
            else:  # output 1/128, zero point 0
                out = rounding_divide_by_pot(fixed_tanh(q4, INPUT_INTEGER_BITS), 24)
            arena[y + i] = clamp(out, -128, 127)


def int16_multiplier(q31: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: round a Q31 multiplier to Q15."""
    if q31 >= 2**31 - 1 - (1 << 15):
        return 2**15 - 1
    return (q31 + (1 << 15)) >> 16


def prepare_hard_swish_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's HardSwish Prepare: scales formed in float32, then two Q15 multipliers."""
    x, y = node.inputs[0], node.outputs[0]
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    hires = np.float32(1.0 / 128.0) * np.float32(s_in)
    out_q31, out_exp = quantize_multiplier(float(hires / np.float32(s_out)))
    relu_q31, relu_exp = quantize_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    if out_exp > 0:
        raise QuantizationError(
            f"node '{node.name}' (HardSwish): output scale {s_out} is too small for the int8 kernel"
        )
    return HARD_SWISH.row(
        x=b.arena(x),
        y=b.arena(y),
        n=int(np.prod(b.shape(x))),
        zp_in=zp_in,
        zp_out=zp_out,
        out_mult=int16_multiplier(out_q31),
        out_exp=out_exp,
        relu_mult=int16_multiplier(relu_q31),
        relu_exp=relu_exp,
    )


@njit(cache=True, inline="always")
def _srdhm16(a: int, b: int) -> int:
    if a == b and a == -32768:
        return 32767
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    total = ab + nudge
    return total // (1 << 15) if total >= 0 else -((-total) // (1 << 15))


@njit(cache=True, inline="always")
def _sdhm16(a: int, b: int) -> int:
    """SQDMULH: the doubling high multiply truncating toward zero (no rounding nudge)."""
    if a == b and a == -32768:
        return 32767
    ab = a * b
    return ab // (1 << 15) if ab >= 0 else -((-ab) // (1 << 15))


@njit(cache=True, inline="always")
def _saturating_left_shift16(value: int, amount: int) -> int:
    return max(-32768, min(32767, value * (1 << amount)))


@njit(cache=True)
def hard_swish_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = HARD_SWISH_ROW
    x, y, n, zp_in, zp_out = row[f.x], row[f.y], row[f.n], row[f.zp_in], row[f.zp_out]
    out_mult, out_exp, relu_mult = row[f.out_mult], row[f.out_exp], row[f.relu_mult]
    relu_exp = row[f.relu_exp]
    for i in range(n):
        hires = (arena[x + i] - zp_in) * 128
        preshift_out = _srdhm16(hires, out_mult)
        reluish = hires
        if relu_exp > 0:
            reluish = _saturating_left_shift16(reluish, relu_exp - 1)
        reluish = _srdhm16(reluish, relu_mult)
        if relu_exp > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if relu_exp < 0:
            reluish = rounding_divide_by_pot(reluish, -relu_exp)
        reluish = (reluish + (1 << 15)) >> 1
        value = rounding_divide_by_pot(_sdhm16(reluish, preshift_out), -out_exp)
        arena[y + i] = clamp(value + zp_out, -128, 127)


INT8_UNARY = {
    # the clamp's requantize row runs its wide kernel on int16 data
    "Relu": Int8Spec(
        output=SAME, in_place=True, prepare=prepare_clamp_int8, prepare16=prepare_clamp_int8
    ),
    "Clip": Int8Spec(
        output=SAME, in_place=True, prepare=prepare_clamp_int8, prepare16=prepare_clamp_int8
    ),
    "LeakyRelu": Int8Spec(
        in_place=True, prepare=prepare_leaky_relu_int8, prepare16=prepare_leaky_relu16
    ),
    "Sigmoid": Int8Spec(
        output=FIXED,
        fixed=(1.0 / 256, -128),
        in_place=True,
        prepare=prepare_logistic_tanh_int8,
        prepare16=prepare_logistic_tanh16,
    ),
    "Tanh": Int8Spec(
        output=FIXED,
        fixed=(1.0 / 128, 0),
        in_place=True,
        prepare=prepare_logistic_tanh_int8,
        prepare16=prepare_logistic_tanh16,
    ),
    "HardSwish": Int8Spec(in_place=True, prepare=prepare_hard_swish_int8),
}

register(
    *(
        OpSpec(
            op,
            same_type,
            unary_reference(fn),
            _read_unary(op),
            onnx_ops=(op,),
            attrs=defaults,
            layout=Layout.ELEMENTWISE,
            examples=unary_examples(op),
            int8=INT8_UNARY.get(op),
        )
        for op, (fn, defaults) in UNARY.items()
    )
)
register(
    OpSpec(
        "PRelu",
        infer_prelu,
        reference_prelu,
        passthrough_import("PRelu"),
        onnx_ops=("PRelu",),
        layout=Layout.ELEMENTWISE,
        examples=prelu_examples,
        int8=Int8Spec(prepare=prepare_prelu_int8),
    )
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
LEAKY_RELU_ROW = row_layout("leaky_relu", "x y n zp_in zp_out m")
LEAKY_RELU = register_kernel(
    "leaky_relu", leaky_relu_int8, LEAKY_RELU_ROW, c=("edgenn_leaky_relu", "activation.c")
)
LEAKY_RELU16 = register_kernel(
    "leaky_relu16", leaky_relu16, LEAKY_RELU_ROW, c=("edgenn_leaky_relu16", "activation.c")
)
PRELU_ROW = row_layout(
    "prelu",
    "x alpha y d0 d1 d2 d3 x_s0 x_s1 x_s2 x_s3 a_s0 a_s1 a_s2 a_s3 zp_in zp_alpha zp_out m",
)
PRELU = register_kernel("prelu", prelu_int8, PRELU_ROW, c=("edgenn_prelu", "activation.c"))
# one kernel for both: the tanh field (not the opcode) picks the function, in Numba and in C
LOGISTIC_TANH_ROW = row_layout("logistic_tanh", "x y n zp_in radius m tanh")
LOGISTIC_TANH = register_kernel(
    "logistic_tanh",
    logistic_tanh_int8,
    LOGISTIC_TANH_ROW,
    c=("edgenn_logistic_tanh", "activation.c"),
)
HARD_SWISH_ROW = row_layout("hard_swish", "x y n zp_in zp_out out_mult out_exp relu_mult relu_exp")
HARD_SWISH = register_kernel(
    "hard_swish", hard_swish_int8, HARD_SWISH_ROW, c=("edgenn_hard_swish", "activation.c")
)


# ---- TFLite: how the writer lowers these ops ----


def lower_clip(lw: Lowering, node: Node) -> None:
    bounds = (0.0, math.inf) if node.op == "Relu" else (node.attrs["min"], node.attrs["max"])
    builtin = {(0.0, math.inf): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}.get(
        bounds
    )
    if builtin is None:
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): clamp to {bounds} has no TFLite operator"
        )
    tflite_unary(builtin)(lw, node)


register_tflite(
    "Relu", "Clip", lower=lower_clip, versions={"RELU": 2, "RELU6": 2, "RELU_N1_TO_1": 1}
)
register_tflite("Sigmoid", lower=tflite_unary("LOGISTIC"), versions={"LOGISTIC": 2})
register_tflite("Tanh", lower=tflite_unary("TANH"), versions={"TANH": 2})
register_tflite("HardSwish", lower=tflite_unary("HARD_SWISH"), versions={"HARD_SWISH": 1})
register_tflite(
    "LeakyRelu",
    lower=tflite_unary(
        "LEAKY_RELU", lambda n: ("LeakyReluOptions", {"alpha": n.attrs.get("alpha", 0.01)})
    ),
    versions={"LEAKY_RELU": 2},
)
register_tflite("PRelu", lower=tflite_unary("PRELU"), versions={"PRELU": 1})


# ---- TFLite: how the reader takes these builtins ----


def read_leaky_relu(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "LeakyReluOptions")
    r.emit(name, "LeakyRelu", ins[:1], outs, alpha=float(o.Alpha()) if o is not None else 0.2)


def read_prelu(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    r.emit(name, "PRelu", ins[:2], outs)


register_tflite_reader("LOGISTIC", read=tflite_read_as("Sigmoid"))
register_tflite_reader("TANH", read=tflite_read_as("Tanh"))
register_tflite_reader("HARD_SWISH", read=tflite_read_as("HardSwish"))
register_tflite_reader("RELU", read=tflite_read_as("Relu"))
register_tflite_reader("RELU6", read=tflite_read_as("Clip", min=0.0, max=6.0))
register_tflite_reader("RELU_N1_TO_1", read=tflite_read_as("Clip", min=-1.0, max=1.0))
register_tflite_reader("LEAKY_RELU", read=read_leaky_relu)
register_tflite_reader("PRELU", read=read_prelu)
