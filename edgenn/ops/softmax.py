"""Softmax over one axis (opset 13 semantics; older opsets are accepted when they mean the same)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgenn.errors import UnsupportedOpError
from edgenn.ir import Attrs
from edgenn.ops import (
    ImportContext,
    Imported,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    positive_axis,
    register,
    same_type,
)


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
    )
)
