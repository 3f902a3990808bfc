"""ReduceMean over a set of axes (attribute before opset 18, constant input from 18 on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgenn.errors import QuantizationError
from edgenn.ir import Attrs, Graph, Node, TensorType
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
)
from edgenn.ops.pool import pool_row

if TYPE_CHECKING:
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
    """A spatial mean on a channels-last tensor is the global average pool (same parameters)."""
    x = node.inputs[0]
    rank = len(b.shape(x))
    if tuple(node.attrs["axes"]) != tuple(range(1, rank - 1)):
        raise QuantizationError(
            f"node '{node.name}' (ReduceMean): int8 mean only over the spatial axes of a channels-last tensor"
        )
    spatial = b.shape(x)[1:-1]
    ones = (1,) * len(spatial)
    return pool_row(
        x, node.outputs[0], b, spatial, ones, ones, (0,) * (2 * len(spatial)), is_avg=True
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
        int8=Int8Spec(output=SAME, prepare=prepare_reduce_mean_int8),
    )
)
