"""Resize, nearest neighbour (ONNX Resize with mode "nearest", as of opset 11; TFLite
RESIZE_NEAREST_NEIGHBOR): every output element copies one input element, chosen per axis.

Which source index an output index reads depends on the coordinate rule and the rounding, and on
whose float arithmetic computes it (ONNX Runtime and TFLite evaluate different float32 formulas, which
can pick different pixels for the same sizes). `source_indices` computes the choice once, in float32 as
each runtime does; the float reference gathers with it and the integer kernel reads the same indices
from a program table, so all paths copy the same elements. The int8 output keeps the input's scale and
zero point (TFLite requires it of this op).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import ShapeError, UnsupportedOpError
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
    padded_shape,
    positive_axis,
    register,
    register_kernel,
    register_table,
    register_tflite,
    register_tflite_reader,
    row_layout,
    spread,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder

# ONNX coordinate_transformation_mode values edgenn reads (tf_crop_and_resize needs an roi;
# half_pixel_symmetric, opset 19, is not read yet)
COORDINATES = (
    "asymmetric",
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "tf_half_pixel_for_nn",
)
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ONNX_DEFAULTS = {
    "mode": "nearest",
    "coordinate_transformation_mode": "half_pixel",
    "nearest_mode": "round_prefer_floor",
    "keep_aspect_ratio_policy": "stretch",
}
ONNX_ALLOWED = {
    "mode": ("nearest",),
    "coordinate_transformation_mode": COORDINATES,
    "nearest_mode": NEAREST,
    "keep_aspect_ratio_policy": ("stretch",),
}
# the TFLite modes (align_corners, half_pixel_centers) and the rule each one means
TFLITE_MODES = {
    (False, False): "asymmetric",
    (False, True): "half_pixel",
    (True, False): "align_corners",
}


def source_indices(in_size: int, out_size: int, scale: float, attrs: Attrs) -> np.ndarray:
    """The input index each output index reads along one axis (int64 [out_size])."""
    f32 = np.float32
    x = np.arange(out_size, dtype=f32)
    if attrs["convention"] == "tflite":
        return _tflite_indices(x, in_size, out_size, attrs["coordinates"])
    s, rule = f32(scale), attrs["coordinates"]
    if rule == "asymmetric":
        v = x / s
    elif rule == "half_pixel" or (rule == "pytorch_half_pixel" and out_size > 1):
        v = (x + f32(0.5)) / s - f32(0.5)
    elif rule == "pytorch_half_pixel":
        v = np.zeros(out_size, f32)
    elif rule == "tf_half_pixel_for_nn":
        v = (x + f32(0.5)) / s
    elif out_size == 1:  # align_corners
        v = np.zeros(out_size, f32)
    else:
        v = x * f32(in_size - 1) / f32(out_size - 1)
    rounding = attrs["nearest"]
    if rounding == "floor":
        index = np.floor(v)
    elif rounding == "ceil":
        index = np.ceil(v)
    elif rounding == "round_prefer_ceil":
        index = np.floor(v + f32(0.5))
    else:  # round_prefer_floor: halves go down
        index = np.ceil(v - f32(0.5))
    return np.clip(index.astype(np.int64), 0, in_size - 1)


def _tflite_indices(x: np.ndarray, in_size: int, out_size: int, rule: str) -> np.ndarray:
    """TFLite's GetNearestNeighbor: (x + offset) * in/out (or (in-1)/(out-1) with align_corners),
    floored (rounded half away from zero with align_corners), at most in - 1."""
    f32 = np.float32
    corners = rule == "align_corners"
    if corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    v = (x + f32(0.5 if rule == "half_pixel" else 0.0)) * scale
    index = np.floor(v + f32(0.5)) if corners else np.floor(v)
    return np.clip(index.astype(np.int64), 0, in_size - 1)


# ---- ONNX import, shapes, float reference ----


def read_resize(node: OnnxNode, ctx: ImportContext) -> Imported:
    where = f"node '{node.name}' (Resize)"
    if ctx.opset < 11:
        raise UnsupportedOpError(
            f"{where}: Resize from opset {ctx.opset} (export with opset >= 11)"
        )
    a = {**ONNX_DEFAULTS, **node.attrs}
    for key, allowed in ONNX_ALLOWED.items():
        if a[key] not in allowed:
            raise UnsupportedOpError(
                f"{where}: {key} '{a[key]}' is not supported (supported: {', '.join(allowed)})"
            )
    shape = ctx.type_of(node.inputs[0]).shape
    scales = const_input(node, 2, ctx, "scales")
    sizes = const_input(node, 3, ctx, "sizes")
    axes = [positive_axis(int(v), len(shape)) for v in a.get("axes", range(len(shape)))]
    if sizes is not None and sizes.size:
        out = [int(v) for v in sizes.reshape(-1)]
        factors = [float(np.float32(o) / np.float32(shape[i])) for o, i in zip(out, axes)]
    elif scales is not None and scales.size:
        factors = [float(np.float32(v)) for v in scales.reshape(-1)]
        out = [int(np.floor(np.float32(shape[i]) * np.float32(f))) for f, i in zip(factors, axes)]
    else:
        raise UnsupportedOpError(f"{where}: neither scales nor sizes is given")
    if len(out) != len(axes) or len(set(axes)) != len(axes):
        raise ShapeError(f"{where}: {len(out)} sizes or scales for axes {axes}")
    if any(f <= 0 for f in factors) or any(o < 1 for o in out):
        raise ShapeError(f"{where}: scales {factors} must be positive and sizes {out} at least 1")
    changed = [(i, o, f) for i, o, f in zip(axes, out, factors) if o != shape[i] or f != 1.0]
    attrs = {
        "axes": tuple(i for i, _, _ in changed),
        "sizes": tuple(o for _, o, _ in changed),
        "scales": tuple(f for _, _, f in changed),
        "coordinates": a["coordinate_transformation_mode"],
        "nearest": a["nearest_mode"],
        "convention": "onnx",
    }
    return Imported("Resize", (node.inputs[0],), attrs)


def infer_resize(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    shape = list(x.shape)
    for axis, size in zip(attrs["axes"], attrs["sizes"]):
        shape[positive_axis(axis, x.rank)] = size
    return [x.with_shape(tuple(shape))]


def reference_resize(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    y = inputs[0]
    assert y is not None
    for axis, size, scale in zip(attrs["axes"], attrs["sizes"], attrs["scales"]):
        y = np.take(y, source_indices(y.shape[axis], size, scale, attrs), axis=axis)
    return [y]


def permute_resize(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    """Axis i of the original layout is axis perm.index(i) of the permuted one; channels_last marks
    the node as converted (the layout pass moves spatial ops to channels-last once)."""
    return {**attrs, "axes": tuple(perm.index(a) for a in attrs["axes"]), "channels_last": True}


def examples_resize() -> list[OpExample]:
    f32, i64 = np.float32, np.int64
    scales = {2: np.array([1, 1, 2, 2], f32)}
    cases = [
        OpExample("resize_nearest_2x", "Resize", ((2, 3, 4, 5),), {"mode": "nearest"}, scales),
        OpExample(
            "resize_asymmetric_floor",
            "Resize",
            ((2, 2, 5, 3),),
            {
                "mode": "nearest",
                "coordinate_transformation_mode": "asymmetric",
                "nearest_mode": "floor",
            },
            {2: np.array([1, 1, 1.5, 3], f32)},
        ),
        OpExample(
            "resize_down_sizes",
            "Resize",
            ((1, 4, 9, 7),),
            {"mode": "nearest", "nearest_mode": "round_prefer_ceil"},
            {3: np.array([1, 4, 4, 3], i64)},
        ),
        OpExample(
            "resize_align_corners",
            "Resize",
            ((1, 3, 3, 4),),
            {"mode": "nearest", "coordinate_transformation_mode": "align_corners"},
            {3: np.array([1, 3, 7, 5], i64)},
        ),
        OpExample(
            "resize_pytorch_ceil",
            "Resize",
            ((1, 2, 6, 6),),
            {
                "mode": "nearest",
                "coordinate_transformation_mode": "pytorch_half_pixel",
                "nearest_mode": "ceil",
            },
            {2: np.array([1, 1, 0.5, 1.25], f32)},
        ),
        OpExample(
            "resize_axes_opset18",
            "Resize",
            ((1, 3, 4, 4),),
            {"mode": "nearest", "axes": [2, 3], "nearest_mode": "floor"},
            {2: np.array([2, 3], f32)},
            opset=18,
        ),
    ]
    return cases


# ---- int8 / int16: one gather kernel over a source index table per axis ----


def prepare_resize(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """Rows for int8; int16 elements are two bytes, so the innermost axis is counted in bytes (its
    table names both bytes of each source element)."""
    x, y = node.inputs[0], node.outputs[0]
    in_shape, out_shape = padded_shape(b.shape(x)), padded_shape(b.shape(y))
    lead = 4 - len(b.shape(x))
    tables = [np.arange(n, dtype=np.int64) for n in out_shape]
    for axis, size, scale in zip(node.attrs["axes"], node.attrs["sizes"], node.attrs["scales"]):
        axis = lead + positive_axis(axis, len(b.shape(x)))
        if axis == lead:  # the batch axis: each sample is resized alone
            raise b.refuse("resizing the batch axis is not a per-sample operation")
        tables[axis] = source_indices(in_shape[axis], size, scale, node.attrs)
    if graph.type_of(x).dtype == DType.INT16:
        tables[3] = np.stack([2 * tables[3], 2 * tables[3] + 1], axis=1).reshape(-1)
        in_shape[3], out_shape[3] = 2 * in_shape[3], 2 * out_shape[3]
    starts = [b.table("resize_index", t) for t in tables]
    return RESIZE.row(
        x=b.arena(x),
        y=b.arena(y),
        **spread("d1 d2 d3", in_shape[1:]),
        **spread("o0 o1 o2 o3", out_shape),
        **spread("t0 t1 t2 t3", starts),
    )


@njit(cache=True)
def resize_nearest(row, arena, weights, biases, mults, shifts, rounding, patch, acc, index):  # type: ignore[no-untyped-def]
    f = RESIZE_ROW
    x, y = row[f.x], row[f.y]
    d1, d2, d3 = row[f.d1], row[f.d2], row[f.d3]
    t0, t1, t2, t3 = row[f.t0], row[f.t1], row[f.t2], row[f.t3]
    position = y
    for i0 in range(row[f.o0]):
        for i1 in range(row[f.o1]):
            outer = index[t0 + i0] * d1 + index[t1 + i1]
            for i2 in range(row[f.o2]):
                base = x + (outer * d2 + index[t2 + i2]) * d3
                for i3 in range(row[f.o3]):
                    arena[position + i3] = arena[base + index[t3 + i3]]
                position += row[f.o3]


register(
    OpSpec(
        "Resize",
        infer_resize,
        reference_resize,
        read_resize,
        onnx_ops=("Resize",),
        layout=Layout.SPATIAL,  # channels-last, as TFLite and the neighbouring convs want it
        permute_attrs=permute_resize,
        examples=examples_resize,
        int8=Int8Spec(output=SAME, prepare=prepare_resize, prepare16=prepare_resize),
    )
)

register_table("resize_index", np.int32, "source index of each output index, per axis (Resize)")
RESIZE_ROW = row_layout("resize", "x y d1 d2 d3 o0 o1 o2 o3 t0 t1 t2 t3")
RESIZE = register_kernel(
    "resize_nearest",
    resize_nearest,
    RESIZE_ROW,
    c=("edgenn_resize_nearest", "resize.c"),
    tables=("resize_index",),
)


# ---- TFLite ----


def lower_resize(lw: Lowering, node: Node) -> None:
    """RESIZE_NEAREST_NEIGHBOR over the H and W axes of an NHWC tensor, in the TFLite mode that picks
    the same source pixels as the node (checked index by index); refused when none does."""
    x_type, y_type = lw.graph.type_of(node.inputs[0]), lw.graph.type_of(node.outputs[0])
    where = f"node '{node.name}' (Resize)"
    if x_type.rank != 4 or not set(node.attrs["axes"]) <= {1, 2}:
        raise UnsupportedOpError(f"{where}: TFLite resizes only the H and W axes of NHWC tensors")
    want = [_axis_indices(x_type.shape[a], y_type.shape[a], a, node.attrs) for a in (1, 2)]
    for (corners, half), rule in TFLITE_MODES.items():
        got = [
            _tflite_indices(
                np.arange(y_type.shape[a], dtype=np.float32), x_type.shape[a], y_type.shape[a], rule
            )
            for a in (1, 2)
        ]
        if all(np.array_equal(g, w) for g, w in zip(got, want)):
            size = lw.const_int32(f"{node.name}_size", list(y_type.shape[1:3]))
            options = {"align_corners": corners, "half_pixel_centers": half}
            lw.emit(
                "RESIZE_NEAREST_NEIGHBOR",
                [lw.tensor(node.inputs[0]), size],
                [lw.tensor(node.outputs[0])],
                ("ResizeNearestNeighborOptions", options),
            )
            return
    raise UnsupportedOpError(
        f"{where}: {node.attrs['coordinates']} / {node.attrs['nearest']} picks other pixels than "
        f"any TFLite RESIZE_NEAREST_NEIGHBOR mode for {x_type.shape[1:3]} -> {y_type.shape[1:3]}"
    )


def _axis_indices(in_size: int, out_size: int, axis: int, attrs: Attrs) -> np.ndarray:
    if axis not in attrs["axes"]:
        return np.arange(out_size, dtype=np.int64)
    k = list(attrs["axes"]).index(axis)
    return source_indices(in_size, out_size, attrs["scales"][k], attrs)


register_tflite("Resize", lower=lower_resize, versions={"RESIZE_NEAREST_NEIGHBOR": 3})


def read_resize_nearest(
    r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any
) -> None:
    o = r.options(op, "ResizeNearestNeighborOptions")
    corners, half = bool(o.AlignCorners()), bool(o.HalfPixelCenters())
    if (corners, half) not in TFLITE_MODES:
        raise UnsupportedOpError(f"{r.name}: {name} sets both align_corners and half_pixel_centers")
    in_shape, out_shape = r.shape(ins[0]), r.shape(outs[0])
    axes = tuple(a for a in (1, 2) if in_shape[a] != out_shape[a])
    r.emit(
        name,
        "Resize",
        ins[:1],
        outs,
        axes=axes,
        sizes=tuple(out_shape[a] for a in axes),
        scales=tuple(out_shape[a] / in_shape[a] for a in axes),
        coordinates=TFLITE_MODES[(corners, half)],
        nearest="floor",
        convention="tflite",
    )


register_tflite_reader("RESIZE_NEAREST_NEIGHBOR", read=read_resize_nearest)
