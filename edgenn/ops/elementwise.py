"""Binary elementwise arithmetic with numpy broadcasting: Add, Sub, Mul, Div (fused activation clamp allowed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.ir import Attrs, DType, Graph, Node, TensorType
from edgenn.ops import (
    CLIP_ATTRS,
    Int8Spec,
    Layout,
    OpExample,
    OpSpec,
    ReferenceFn,
    broadcast_shape,
    broadcast_strides,
    clip_range,
    padded_shape,
    passthrough_import,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    spread,
)
from edgenn.ops.wide import prepare_binary16
from edgenn.quant.fixed_point import (
    activation_bounds,
    clamp,
    multiply_by_quantized_multiplier,
    real_multiplier,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder


def infer_binary(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    a, b = inputs[0], inputs[1]
    assert a is not None and b is not None
    return [a.with_shape(broadcast_shape(a.shape, b.shape))]


def binary_reference(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ReferenceFn:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        a, b = inputs[0], inputs[1]
        assert a is not None and b is not None
        return [clip_range(np.asarray(fn(a, b)).astype(np.result_type(a, b), copy=False), attrs)]

    return reference


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # integer Div truncates toward zero in ONNX (shape arithmetic); float Div is true division
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def examples_for(op: str) -> Callable[[], list[OpExample]]:
    def examples() -> list[OpExample]:
        rng = np.random.default_rng(3)
        divisor_safe = rng.uniform(0.5, 2.0, (1, 3, 1, 1)).astype(np.float32)
        return [
            OpExample(f"{op.lower()}_same_shape", op, ((2, 3, 4), (2, 3, 4))),
            OpExample(f"{op.lower()}_broadcast_const", op, ((1, 3, 4, 4),), {}, {1: divisor_safe}),
            OpExample(
                f"{op.lower()}_scalar_const", op, ((2, 5),), {}, {1: np.array(1.5, np.float32)}
            ),
        ]

    return examples


# ---- int8: TFLite ADD / SUB (20-bit left shift, rescale both inputs) and MUL ----

ADD, SUB, MUL = 0, 1, 2
LEFT_SHIFT = 20


def prepare_binary_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    a, c = node.inputs
    y = node.outputs[0]
    (s_a, zp_a), (s_b, zp_b), (s_out, zp_out) = b.scale_zp(a), b.scale_zp(c), b.scale_zp(y)
    kind = {"Add": ADD, "Sub": SUB, "Mul": MUL}[node.op]
    if kind == MUL:
        pairs = [(0, 0), (0, 0), real_multiplier(s_a, s_b, divisor=s_out)]
    else:
        twice_max = 2 * max(float(s_a), float(s_b))
        pairs = [
            real_multiplier(s_a, divisor=twice_max),
            real_multiplier(s_b, divisor=twice_max),
            real_multiplier(twice_max, divisor=(1 << LEFT_SHIFT) * float(s_out)),
        ]
    attrs = {**CLIP_ATTRS, **node.attrs}
    lo, hi = activation_bounds(attrs["clip_min"], attrs["clip_max"], s_out, zp_out)
    out_shape = b.shape(y)
    return BINARY.row(
        **spread("a_const a", b.operand(a)),
        **spread("b_const b", b.operand(c)),
        y=b.arena(y),
        **spread("d0 d1 d2 d3", padded_shape(out_shape)),
        **spread("a_s0 a_s1 a_s2 a_s3", broadcast_strides(b.shape(a), out_shape)),
        **spread("b_s0 b_s1 b_s2 b_s3", broadcast_strides(b.shape(c), out_shape)),
        kind=kind,
        zp_a=zp_a,
        zp_b=zp_b,
        zp_out=zp_out,
        m=b.multipliers(pairs),
        lo=lo,
        hi=hi,
    )


@njit(cache=True)
def binary_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = BINARY_ROW
    b_s0, b_s1, b_s2, b_s3 = row[f.b_s0], row[f.b_s1], row[f.b_s2], row[f.b_s3]
    a_s0, a_s1, a_s2, a_s3 = row[f.a_s0], row[f.a_s1], row[f.a_s2], row[f.a_s3]
    # each operand is read from the arena, or from the weights blob when it is a constant
    first = weights if row[f.a_const] else arena
    second = weights if row[f.b_const] else arena
    a, c, y = row[f.a], row[f.b], row[f.y]
    d0, d1, d2, d3 = row[f.d0], row[f.d1], row[f.d2], row[f.d3]
    kind, zp_a, zp_b, zp_out, m = row[f.kind], row[f.zp_a], row[f.zp_b], row[f.zp_out], row[f.m]
    lo, hi = row[f.lo], row[f.hi]
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                for i3 in range(d3):
                    va = first[a + i0 * a_s0 + i1 * a_s1 + i2 * a_s2 + i3 * a_s3] - zp_a
                    vb = second[c + i0 * b_s0 + i1 * b_s1 + i2 * b_s2 + i3 * b_s3] - zp_b
                    if kind == MUL:
                        value = multiply_by_quantized_multiplier(
                            va * vb, mults[m + 2], shifts[m + 2], rounding
                        )
                    else:
                        sa = multiply_by_quantized_multiplier(
                            va << LEFT_SHIFT, mults[m], shifts[m], rounding
                        )
                        sb = multiply_by_quantized_multiplier(
                            vb << LEFT_SHIFT, mults[m + 1], shifts[m + 1], rounding
                        )
                        total = sa + sb if kind == ADD else sa - sb
                        value = multiply_by_quantized_multiplier(
                            total, mults[m + 2], shifts[m + 2], rounding
                        )
                    arena[y + index] = clamp(value + zp_out, lo, hi)
                    index += 1


_FUNCTIONS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide}

register(
    *(
        OpSpec(
            op,
            infer_binary,
            binary_reference(fn),
            passthrough_import(op),
            onnx_ops=(op,),
            attrs=dict(CLIP_ATTRS),
            layout=Layout.ELEMENTWISE,
            fuses_activation=op != "Div",
            examples=examples_for(op),
            int8=Int8Spec(
                in_place=True,
                prepare=prepare_binary_int8,
                prepare16=prepare_binary16,
            )
            if op != "Div"
            else None,
        )
        for op, fn in _FUNCTIONS.items()
    )
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
BINARY_ROW = row_layout(
    "binary",
    "a_const a b_const b y d0 d1 d2 d3 a_s0 a_s1 a_s2 a_s3 b_s0 b_s1 b_s2 b_s3 kind zp_a zp_b zp_out m lo hi",
)
BINARY = register_kernel("binary", binary_int8, BINARY_ROW, c=("edgenn_binary", "elementwise.c"))


# ---- TFLite: how the writer lowers these ops ----


def lower_binary(lw: Lowering, node: Node) -> None:
    from edgenn.codegen.tflite import fused_activation

    op = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL"}[node.op]
    options: dict[str, Any] = {"fused_activation_function": fused_activation(node)}
    if op != "MUL" and lw.graph.type_of(node.outputs[0]).dtype == DType.INT16:
        options["pot_scale_int16"] = (
            False  # the general rescaling path, as edgenn's kernel computes
        )
    lw.emit(
        op,
        [lw.tensor(i) for i in node.inputs],
        [lw.tensor(node.outputs[0])],
        (f"{op.capitalize()}Options", options),
    )


register_tflite("Add", "Sub", "Mul", lower=lower_binary, versions={"ADD": 2, "SUB": 2, "MUL": 2})


# ---- TFLite: how the reader takes these builtins ----


def read_binary(kind: str) -> Callable[..., None]:
    """The reader of ADD, SUB or MUL (as `kind`), with its fused activation."""

    def read(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
        from edgenn.frontend.tflite import fused_clip

        r.emit(name, kind, ins[:2], outs, **fused_clip(r.options(op, f"{kind}Options")))

    return read


for _builtin, _op in (("ADD", "Add"), ("SUB", "Sub"), ("MUL", "Mul")):
    register_tflite_reader(_builtin, read=read_binary(_op))
