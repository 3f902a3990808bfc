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
from edgenn.ops.dot import copy_bytes
from edgenn.ops.wide import prepare_binary16
from edgenn.quant.fixed_point import (
    activation_bounds,
    multiply_lanes,
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
BINARY_CHUNK = 512  # outputs computed into the patch at a time
LEFT_SHIFT = 20


def collapsed_broadcast(
    out: Sequence[int], a: Sequence[int], b: Sequence[int]
) -> tuple[list[int], list[int], list[int]]:
    """The same element-wise broadcast over fewest dimensions: neighbouring axes merge where each
    operand is either whole along both or broadcast along both, so the kernels' inner loop runs as
    long as it can (a same-shape Add becomes one flat run)."""
    rank = len(out)
    shapes = [[1] * (rank - len(a)) + list(a), [1] * (rank - len(b)) + list(b)]
    merged: list[list[int]] = [[], [], []]  # output, a, b
    for axis, size in enumerate(out):
        joins = bool(merged[0]) and (
            size == 1
            or merged[0][-1] == 1
            or all((s[axis] == 1) == (m[-1] == 1) for s, m in zip(shapes, merged[1:]))
        )
        for dims, m in zip((out, *shapes), merged):
            if joins:
                m[-1] *= dims[axis]
            else:
                m.append(dims[axis])
    return merged[0], merged[1], merged[2]


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
    b.scratch(patch=BINARY_CHUNK)
    out_shape, a_shape, b_shape = collapsed_broadcast(b.shape(y), b.shape(a), b.shape(c))
    return BINARY.row(
        **spread("a_const a", b.operand(a)),
        **spread("b_const b", b.operand(c)),
        y=b.arena(y),
        **spread("d0 d1 d2 d3", padded_shape(out_shape)),
        **spread("a_s0 a_s1 a_s2 a_s3", broadcast_strides(a_shape, out_shape)),
        **spread("b_s0 b_s1 b_s2 b_s3", broadcast_strides(b_shape, out_shape)),
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
    kind, m = row[f.kind], row[f.m]
    # int64 throughout: mixed int32 / int64 operands keep LLVM from vectorizing the loops below
    zp_a, zp_b, zp_out = np.int64(row[f.zp_a]), np.int64(row[f.zp_b]), np.int64(row[f.zp_out])
    lo, hi, rounding = np.int64(row[f.lo]), np.int64(row[f.hi]), np.int64(rounding)
    # read once: LLVM would not hoist these loads past the arena stores
    m0, m1, m2, s0, s1, s2 = mults[m], mults[m + 1], mults[m + 2], shifts[m], shifts[m + 1], shifts[m + 2]  # fmt: skip
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                at_a = a + i0 * a_s0 + i1 * a_s1 + i2 * a_s2
                at_b = c + i0 * b_s0 + i1 * b_s1 + i2 * b_s2
                out = arena[y + index : y + index + d3]
                # views, so the loops index from 0 (Numba's negative-index fix-up on an offset index
                # would keep LLVM from vectorizing)
                if a_s3 == 1 and b_s3 == 1:  # the common runs get loops LLVM vectorizes
                    # in chunks through the patch: an output written in place over an input fails
                    # LLVM's overlap check, which would send the loop down its scalar path
                    for start in range(0, d3, BINARY_CHUNK):
                        n = min(BINARY_CHUNK, d3 - start)
                        xa = first[at_a + start : at_a + start + n]
                        xb = second[at_b + start : at_b + start + n]
                        for i in range(n):
                            patch[i] = binary_value(xa[i] - zp_a, xb[i] - zp_b, kind, m0, s0, m1, s1, m2, s2, rounding, zp_out, lo, hi)  # fmt: skip
                        copy_bytes(arena, y + index + start, patch, 0, n)
                elif b_s3 == 0:
                    vb = second[at_b] - zp_b
                    for i in range(d3):
                        va = first[at_a + i * a_s3] - zp_a
                        out[i] = binary_value(va, vb, kind, m0, s0, m1, s1, m2, s2, rounding, zp_out, lo, hi)  # fmt: skip
                else:
                    for i in range(d3):
                        va, vb = first[at_a + i * a_s3] - zp_a, second[at_b + i * b_s3] - zp_b
                        out[i] = binary_value(va, vb, kind, m0, s0, m1, s1, m2, s2, rounding, zp_out, lo, hi)  # fmt: skip
                index += d3


@njit(cache=True, inline="always")
def binary_value(va, vb, kind, m0, s0, m1, s1, m2, s2, rounding, zp_out, lo, hi):  # type: ignore[no-untyped-def]
    """One output of ADD / SUB / MUL from the zero-point-free inputs, branch-free arithmetic."""
    if kind == MUL:
        value = multiply_lanes(va * vb, m2, s2, rounding)
    else:
        sa = multiply_lanes(va << LEFT_SHIFT, m0, s0, rounding)
        sb = multiply_lanes(vb << LEFT_SHIFT, m1, s1, rounding)
        value = multiply_lanes(sa + sb if kind == ADD else sa - sb, m2, s2, rounding)
    return min(max(value + zp_out, lo), hi)


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
