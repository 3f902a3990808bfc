"""ReduceMean over a set of axes (attribute before opset 18, constant input from 18 on)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError, UnsupportedOpError
from edgenn.ir import Attrs, DType, Graph, Node, TensorType
from edgenn.ops import (
    SAME,
    ImportContext,
    Imported,
    Int8Spec,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    const_input,
    int_tuple,
    positive_axis,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
)
from edgenn.ops.pool import POOL_BUILTINS, lower_pool, on_int16, pool_row
from edgenn.quant.fixed_point import multiply_by_quantized_multiplier, quantize_multiplier

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder


def read_reduce_mean(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    if ctx.opset >= 18:
        given = const_input(node, 1, ctx, "axes")
        axes = () if given is None else int_tuple(given)
    else:
        axes = tuple(node.attrs.get("axes", ()))
    if not axes:
        axes = () if node.attrs.get("noop_with_empty_axes", 0) else tuple(range(x.rank))
    axes = tuple(sorted(positive_axis(a, x.rank) for a in axes))
    return Imported(
        "ReduceMean",
        (node.inputs[0],),
        {"axes": axes, "keepdims": int(node.attrs.get("keepdims", 1))},
    )


def infer_reduce(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    axes = attrs["axes"]
    if attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [x.with_shape(shape)]


def reference_reduce_mean(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    if not attrs["axes"]:
        return [x]
    return [
        np.mean(x, axis=attrs["axes"], keepdims=bool(attrs["keepdims"])).astype(x.dtype, copy=False)
    ]


def permute_reduce(attrs: Attrs, perm: tuple[int, ...]) -> Attrs | None:
    return {**attrs, "axes": tuple(sorted(perm.index(a) for a in attrs["axes"]))}


def reduced_layout(attrs: Attrs, perm: tuple[int, ...]) -> tuple[int, ...] | None:
    """The output's layout when the input is permuted by `perm`: the same permutation with keepdims;
    without, the permutation of the remaining axes (None when that is the identity)."""
    if attrs["keepdims"]:
        return perm
    kept = [p for p in perm if p not in attrs["axes"]]
    rest = tuple(sorted(kept).index(p) for p in kept)
    return None if rest == tuple(range(len(rest))) else rest


def examples() -> list[OpExample]:
    return [
        OpExample("reducemean_spatial", "ReduceMean", ((2, 3, 4, 5),), {"axes": (2, 3)}, opset=13),
        OpExample(
            "reducemean_nokeep",
            "ReduceMean",
            ((2, 3, 4),),
            {"axes": (-1,), "keepdims": 0},
            opset=13,
        ),
        OpExample("reducemean_all", "ReduceMean", ((2, 3),), {}, opset=13),
        OpExample(
            "reducemean_axes_input",
            "ReduceMean",
            ((2, 3, 4),),
            {},
            {1: np.array([1], np.int64)},
            opset=18,
        ),
    ]


def prepare_reduce_mean_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """A spatial mean on a channels-last tensor is the global average pool (same parameters); a mean
    over trailing axes (a channels-first spatial mean) is one average pool per row of the input read
    as [1, rows, inner, 1]."""
    x = node.inputs[0]
    shape = b.shape(x)
    axes = tuple(node.attrs["axes"])
    rank = len(shape)
    if axes == tuple(range(1, rank - 1)):
        spatial = shape[1:-1]
        ones = (1,) * len(spatial)
        return pool_row(
            x, node.outputs[0], b, spatial, ones, ones, (0,) * (2 * len(spatial)), is_avg=True
        )
    if axes and axes == tuple(range(axes[0], rank)) and axes[0] >= 1:
        inner = math.prod(shape[axes[0] :])
        rows = math.prod(shape[: axes[0]])
        return pool_row(
            x, node.outputs[0], b, (1, inner), (1, 1), (1, 1), (0,) * 4, True, (1, rows, inner, 1)
        )
    raise QuantizationError(
        f"node '{node.name}' (ReduceMean): int8 mean only over the spatial axes or the trailing axes"
    )


register(
    OpSpec(
        "ReduceMean",
        infer_reduce,
        reference_reduce_mean,
        read_reduce_mean,
        onnx_ops=("ReduceMean",),
        attrs={"keepdims": 1},
        layout=Layout.AXES,
        permute_attrs=permute_reduce,
        output_layout=reduced_layout,
        examples=examples,
        int8=Int8Spec(
            output=SAME,
            prepare=prepare_reduce_mean_int8,
            prepare16=on_int16(prepare_reduce_mean_int8),
        ),
    )
)


# ---- Mean: TFLite's MEAN operator as TFLM computes it (read from .tflite files made by other tools) ----


def infer_mean(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    return infer_reduce(inputs, attrs)


def prepare_mean_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's integer mean: the multiplier s_in/s_out absorbs the division by n, pre-shifted by
    k = min(floor(log2 n), 32, 31 + shift) bits so the quotient keeps its precision."""
    x, y = node.inputs[0], node.outputs[0]
    shape = b.shape(x)
    if tuple(node.attrs["axes"]) != tuple(range(1, len(shape) - 1)):
        raise QuantizationError(f"node '{node.name}' (Mean): int8 mean only over the spatial axes")
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    multiplier, shift = quantize_multiplier(float(s_in) / float(s_out))
    n = math.prod(shape[1:-1])
    b.check_sum(n, x)
    k = min(n.bit_length() - 1, 32, 31 + shift)
    scaled = (multiplier << k) // n
    b.scratch(accumulators=shape[-1])
    return MEAN.row(
        x=b.arena(x),
        y=b.arena(y),
        n=n,
        c=shape[-1],
        zp_in=zp_in,
        zp_out=zp_out,
        m=b.multipliers([(scaled, shift - k)]),
    )


@njit(cache=True)
def mean_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = MEAN_ROW
    x, y, n, c, zp_in, zp_out = row[f.x], row[f.y], row[f.n], row[f.c], row[f.zp_in], row[f.zp_out]
    m = row[f.m]
    total = acc[:c]
    for ch in range(c):
        total[ch] = 0
    for i in range(n):
        src = arena[x + i * c : x + (i + 1) * c]
        for ch in range(c):
            total[ch] += src[ch]
    out = arena[y : y + c]
    for ch in range(c):
        value = multiply_by_quantized_multiplier(
            total[ch] - zp_in * n, mults[m], shifts[m], rounding
        )
        out[ch] = min(max(value + zp_out, -128), 127)


def prepare_mean16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's MEAN on int16: the int8 row's multiplier, int16 data and bounds."""
    return MEAN16.retag(prepare_mean_int8(node, graph, b))


@njit(cache=True)
def mean16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = MEAN_ROW
    x, y, n, c, zp_in, zp_out = row[f.x], row[f.y], row[f.n], row[f.c], row[f.zp_in], row[f.zp_out]
    m = row[f.m]
    src = arena[x : x + 2 * n * c].view(np.int16)
    out = arena[y : y + 2 * c].view(np.int16)
    for ch in range(c):
        total = np.int64(0)
        for i in range(n):
            total += src[i * c + ch]
        value = multiply_by_quantized_multiplier(total - zp_in * n, mults[m], shifts[m], rounding)
        out[ch] = min(max(value + zp_out, -32768), 32767)


def reference_mean(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return reference_reduce_mean(inputs, attrs)


register(
    OpSpec(
        "Mean",
        infer_mean,
        reference_mean,
        attrs={"keepdims": 1},
        int8=Int8Spec(prepare=prepare_mean_int8, prepare16=prepare_mean16),
    )
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
MEAN_ROW = row_layout("mean", "x y n c zp_in zp_out m")
MEAN = register_kernel("mean", mean_int8, MEAN_ROW, c=("edgenn_mean", "mean.c"))
MEAN16 = register_kernel("mean16", mean16, MEAN_ROW, c=("edgenn_mean16", "mean.c"))


# ---- TFLite: how the writer lowers these ops ----


def lower_mean(lw: Lowering, node: Node) -> None:
    """A MEAN read from a .tflite file (any axes), written back as it came."""
    axes = np.asarray(node.attrs["axes"], np.int32)
    axes_tensor = lw.new(f"{node.name}_axes", axes.shape, DType.INT32, None, axes)
    options = ("ReducerOptions", {"keep_dims": bool(node.attrs.get("keepdims", 1))})
    lw.emit("MEAN", [lw.tensor(node.inputs[0]), axes_tensor], [lw.tensor(node.outputs[0])], options)


register_tflite("ReduceMean", lower=lower_pool, versions=POOL_BUILTINS)  # spatial means only
register_tflite("Mean", lower=lower_mean, versions={"MEAN": 2})


# ---- TFLite: how the reader takes these builtins ----


def read_mean(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    from edgenn.frontend.tflite import checked_axis

    axes = r.values[ins[1]].data
    if axes is None:
        raise UnsupportedOpError(f"{r.name}: {name} has run-time axes")
    rank = len(r.shape(ins[0]))
    o = r.options(op, "ReducerOptions")
    r.emit(
        name,
        "Mean",
        ins[:1],
        outs,
        axes=tuple(sorted(checked_axis(r, name, int(a), rank) for a in axes.reshape(-1))),
        keepdims=int(o.KeepDims()) if o is not None else 0,
    )


register_tflite_reader("MEAN", read=read_mean)
