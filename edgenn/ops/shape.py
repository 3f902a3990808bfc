"""Data movement and shape arithmetic: Identity, Dropout, Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
Concat, Pad, and the ops of Shape/Gather chains (Shape, Gather, Cast, Slice) that import folds to constants.

Operands that ONNX passes as tensors (Reshape's shape, Pad's pads, axes...) become attributes at import, so
every later stage sees static parameters. Reshape keeps its full static output shape; at run time a batch
larger than the imported one replaces dimension 0 (the batch dimension must stay first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError, ShapeError, UnsupportedOpError
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
    padded_shape,
    passthrough_import,
    positive_axis,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    same_type,
    spread,
)
from edgenn.quant.fixed_point import quantize_value

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder


def _first(inputs: Sequence[np.ndarray | None]) -> np.ndarray:
    x = inputs[0]
    assert x is not None
    return x


def _first_type(inputs: Sequence[TensorType | None]) -> TensorType:
    x = inputs[0]
    assert x is not None
    return x


# ---- Identity, Dropout ----


def identity(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [_first(inputs)]


def read_dropout(node: OnnxNode, ctx: ImportContext) -> Imported:
    training = const_input(node, 2, ctx, "training_mode") if ctx.opset >= 12 else None
    if training is not None and bool(training):
        raise UnsupportedOpError(
            f"node '{node.name}' (Dropout): training_mode=True is not supported"
        )
    return Imported("Dropout", (node.inputs[0],), {})


# ---- Flatten, Reshape, Squeeze, Unsqueeze ----


def read_flatten(node: OnnxNode, ctx: ImportContext) -> Imported:
    rank = ctx.type_of(node.inputs[0]).rank
    axis = int(node.attrs.get("axis", 1))
    if rank == 0 or not -rank <= axis <= rank:
        raise ShapeError(f"node '{node.name}' (Flatten): axis {axis} does not fit rank {rank}")
    return Imported("Flatten", (node.inputs[0],), {"axis": axis % rank if axis != rank else rank})


def infer_flatten(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    axis = attrs["axis"]
    return [x.with_shape((math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))]


def reference_flatten(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = _first(inputs)
    return [x.reshape(math.prod(x.shape[: attrs["axis"]]), -1)]


def read_reshape(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    target = list(int_tuple(const_input(node, 1, ctx, "shape")))
    if not node.attrs.get("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    if target.count(-1) > 1:
        raise ShapeError(f"node '{node.name}' (Reshape): more than one -1 in target shape {target}")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        if known <= 0 or x.size % known:
            raise ShapeError(f"node '{node.name}' (Reshape): cannot reshape {x.shape} to {target}")
        target[target.index(-1)] = x.size // known
    return Imported("Reshape", (node.inputs[0],), {"shape": tuple(target)})


def infer_reshape(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    if math.prod(attrs["shape"]) != x.size or any(d <= 0 for d in attrs["shape"]):
        raise ShapeError(f"cannot reshape {x.shape} to {attrs['shape']}")
    return [x.with_shape(attrs["shape"])]


def reference_reshape(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, shape = _first(inputs), attrs["shape"]
    if x.size == math.prod(shape):
        return [x.reshape(shape)]
    return [x.reshape((-1, *shape[1:]))]  # a batch other than the imported one


def _axes_operand(node: OnnxNode, ctx: ImportContext) -> tuple[int, ...] | None:
    if ctx.opset >= 13:
        given = const_input(node, 1, ctx, "axes")
        return None if given is None else int_tuple(given)
    return tuple(node.attrs["axes"]) if "axes" in node.attrs else None


def read_squeeze(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    axes = _axes_operand(node, ctx)
    if axes is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    return Imported(
        "Squeeze",
        (node.inputs[0],),
        {"axes": tuple(sorted(positive_axis(a, x.rank) for a in axes))},
    )


def infer_squeeze(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    if any(x.shape[a] != 1 for a in attrs["axes"]):
        raise ShapeError(f"cannot squeeze axes {attrs['axes']} of shape {x.shape}: not all are 1")
    return [x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in attrs["axes"]))]


def reference_squeeze(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [np.squeeze(_first(inputs), axis=attrs["axes"])]


def read_unsqueeze(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    axes = _axes_operand(node, ctx)
    if not axes:
        raise ShapeError(f"node '{node.name}' (Unsqueeze): no axes given")
    rank = x.rank + len(axes)
    return Imported(
        "Unsqueeze",
        (node.inputs[0],),
        {"axes": tuple(sorted(positive_axis(a, rank) for a in axes))},
    )


def infer_unsqueeze(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    shape = list(x.shape)
    for a in attrs["axes"]:
        shape.insert(a, 1)
    return [x.with_shape(shape)]


def reference_unsqueeze(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [np.expand_dims(_first(inputs), attrs["axes"])]


# ---- Transpose, Concat, Pad ----


def read_transpose(node: OnnxNode, ctx: ImportContext) -> Imported:
    rank = ctx.type_of(node.inputs[0]).rank
    perm = tuple(int(p) for p in node.attrs.get("perm", range(rank - 1, -1, -1)))
    return Imported("Transpose", (node.inputs[0],), {"perm": perm})


def infer_transpose(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    if sorted(attrs["perm"]) != list(range(x.rank)):
        raise ShapeError(f"perm {attrs['perm']} is not a permutation of rank {x.rank}")
    return [x.with_shape(tuple(x.shape[p] for p in attrs["perm"]))]


def reference_transpose(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(_first(inputs), attrs["perm"]))]


def read_concat(node: OnnxNode, ctx: ImportContext) -> Imported:
    rank = ctx.type_of(node.inputs[0]).rank
    return Imported("Concat", node.inputs, {"axis": positive_axis(int(node.attrs["axis"]), rank)})


def infer_concat(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    types = [t for t in inputs if t is not None]
    axis, first = attrs["axis"], types[0]
    for t in types[1:]:
        if t.rank != first.rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis
        ):
            raise ShapeError(f"cannot concatenate {first.shape} and {t.shape} on axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [first.with_shape(shape)]


def reference_concat(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    arrays = [x for x in inputs if x is not None]
    if arrays[0].shape[0] != arrays[-1].shape[0] and attrs["axis"] != 0:
        # constant operands keep the imported batch; repeat them to the batch being run
        batch = max(x.shape[0] for x in arrays)
        arrays = [
            np.broadcast_to(x, (batch, *x.shape[1:])) if x.shape[0] == 1 else x for x in arrays
        ]
    return [np.concatenate(arrays, axis=attrs["axis"])]


def permute_axis(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    return {**attrs, "axis": perm.index(attrs["axis"])}


def read_pad(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    mode = node.attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode != "constant":
        raise UnsupportedOpError(
            f"node '{node.name}' (Pad): mode '{mode}' is not supported (only constant)"
        )
    if ctx.opset < 11:
        pads, value = tuple(node.attrs["pads"]), float(node.attrs.get("value", 0.0))
    else:
        given = const_input(node, 2, ctx, "constant_value")
        pads, value = (
            int_tuple(const_input(node, 1, ctx, "pads")),
            0.0 if given is None else float(given),
        )
        axes_given = const_input(node, 3, ctx, "axes")
        if axes_given is not None:
            axes = [positive_axis(a, x.rank) for a in int_tuple(axes_given)]
            full = [0] * (2 * x.rank)
            for j, a in enumerate(axes):
                full[a], full[x.rank + a] = pads[j], pads[len(axes) + j]
            pads = tuple(full)
    if any(p < 0 for p in pads):
        raise UnsupportedOpError(
            f"node '{node.name}' (Pad): negative pads {pads} are not supported"
        )
    return Imported("Pad", (node.inputs[0],), {"pads": pads, "value": value})


def infer_pad(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, pads = _first_type(inputs), attrs["pads"]
    if len(pads) != 2 * x.rank:
        raise ShapeError(f"pads {pads} do not match rank {x.rank}")
    return [x.with_shape(tuple(d + pads[i] + pads[x.rank + i] for i, d in enumerate(x.shape)))]


def reference_pad(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, pads = _first(inputs), attrs["pads"]
    r = x.ndim
    return [np.pad(x, [(pads[i], pads[r + i]) for i in range(r)], constant_values=attrs["value"])]


def permute_pad(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    pads, r = attrs["pads"], len(perm)
    return {**attrs, "pads": tuple(pads[p] for p in perm) + tuple(pads[r + p] for p in perm)}


# ---- Shape, Gather, Cast, Slice (shape arithmetic; folded at import) ----


def read_shape(node: OnnxNode, ctx: ImportContext) -> Imported:
    rank = ctx.type_of(node.inputs[0]).rank
    start = int(node.attrs.get("start", 0))
    end = int(node.attrs.get("end", rank))
    return Imported("Shape", (node.inputs[0],), {"start": start, "end": end})


def infer_shape_op(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    return [TensorType(DType.INT64, (len(x.shape[attrs["start"] : attrs["end"]]),))]


def reference_shape(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [np.array(_first(inputs).shape[attrs["start"] : attrs["end"]], np.int64)]


def infer_gather(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    data, indices = inputs[0], inputs[1]
    assert data is not None and indices is not None
    axis = positive_axis(attrs["axis"], data.rank)
    return [data.with_shape(data.shape[:axis] + indices.shape + data.shape[axis + 1 :])]


def reference_gather(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    data, indices = inputs[0], inputs[1]
    assert data is not None and indices is not None
    return [np.take(data, indices.astype(np.int64), axis=attrs["axis"])]


def read_gather(node: OnnxNode, ctx: ImportContext) -> Imported:
    """Constant indices are checked against the gathered axis here, so a bad one is named at import."""
    axis = int(node.attrs.get("axis", 0))
    indices = ctx.const(node.input(1)) if node.input(1) else None
    if indices is not None and indices.size:
        data = ctx.type_of(node.inputs[0])
        size = data.shape[positive_axis(axis, data.rank)]
        if int(indices.max()) >= size or int(indices.min()) < -size:
            raise ShapeError(
                f"node '{node.name}' (Gather): indices {int(indices.min())}..{int(indices.max())} "
                f"are out of range for axis {axis} of size {size}"
            )
    return Imported("Gather", tuple(node.inputs[:2]), {"axis": axis})


def read_cast(node: OnnxNode, ctx: ImportContext) -> Imported:
    return Imported("Cast", (node.inputs[0],), {"to": node.attrs["to"]})  # decoded to a DType name


def infer_cast(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    return [TensorType(DType(attrs["to"]), _first_type(inputs).shape)]


def reference_cast(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [_first(inputs).astype(DType(attrs["to"]).numpy)]


def read_slice(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    if ctx.opset < 10:
        starts, ends = tuple(node.attrs["starts"]), tuple(node.attrs["ends"])
        axes = tuple(node.attrs.get("axes", range(len(starts))))
        steps: tuple[int, ...] = (1,) * len(starts)
    else:
        starts = int_tuple(const_input(node, 1, ctx, "starts"))
        ends = int_tuple(const_input(node, 2, ctx, "ends"))
        given_axes, given_steps = (
            const_input(node, 3, ctx, "axes"),
            const_input(node, 4, ctx, "steps"),
        )
        axes = tuple(range(len(starts))) if given_axes is None else int_tuple(given_axes)
        steps = (1,) * len(starts) if given_steps is None else int_tuple(given_steps)
    # resolve against the static shape now, so the attribute is a plain python slice per axis
    bounds = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = positive_axis(axis, x.rank)
        lo, hi, st = slice(start, end, step).indices(x.shape[axis])
        bounds.append((axis, lo, hi, st))
    return Imported("Slice", (node.inputs[0],), {"slices": tuple(bounds)})


def _slicer(rank: int, slices: Sequence[tuple[int, int, int, int]]) -> tuple[slice, ...]:
    index = [slice(None)] * rank
    for axis, lo, hi, step in slices:
        index[axis] = slice(lo, None if hi < 0 else hi, step)
    return tuple(index)


def infer_slice(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = _first_type(inputs)
    probe = np.empty(x.shape, np.bool_)[_slicer(x.rank, attrs["slices"])]
    return [x.with_shape(probe.shape)]


def reference_slice(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = _first(inputs)
    return [np.ascontiguousarray(x[_slicer(x.ndim, attrs["slices"])])]


def examples_shape_ops() -> dict[str, list[OpExample]]:
    i64 = np.int64
    return {
        "Identity": [OpExample("identity", "Identity", ((2, 3),))],
        "Dropout": [OpExample("dropout", "Dropout", ((2, 3),))],
        "Flatten": [
            OpExample("flatten", "Flatten", ((2, 3, 4, 5),)),
            OpExample("flatten_axis2", "Flatten", ((2, 3, 4, 5),), {"axis": 2}),
        ],
        "Reshape": [
            OpExample(
                "reshape_minus1_zero", "Reshape", ((2, 3, 4),), {}, {1: np.array([0, -1, 2], i64)}
            )
        ],
        "Transpose": [
            OpExample("transpose", "Transpose", ((2, 3, 4),), {"perm": (1, 2, 0)}),
            OpExample("transpose_default", "Transpose", ((2, 3, 4),)),
        ],
        "Squeeze": [
            OpExample("squeeze_axes", "Squeeze", ((2, 1, 3, 1),), {}, {1: np.array([1, -1], i64)}),
            OpExample("squeeze_all", "Squeeze", ((2, 1, 3, 1),)),
        ],
        "Unsqueeze": [
            OpExample("unsqueeze", "Unsqueeze", ((2, 3),), {}, {1: np.array([0, -1], i64)}),
            OpExample("unsqueeze_opset11", "Unsqueeze", ((2, 3),), {"axes": (1,)}, opset=11),
        ],
        "Concat": [
            OpExample("concat", "Concat", ((2, 3, 4), (2, 5, 4)), {"axis": 1}),
            OpExample(
                "concat_const", "Concat", ((2, 3),), {"axis": -1}, {1: np.ones((2, 2), np.float32)}
            ),
        ],
        "Pad": [
            OpExample(
                "pad",
                "Pad",
                ((1, 2, 3, 3),),
                {},
                {1: np.array([0, 0, 1, 2, 0, 0, 2, 1], i64), 2: np.array(0.5, np.float32)},
            ),
            OpExample(
                "pad_axes",
                "Pad",
                ((1, 2, 5),),
                {},
                {1: np.array([1, 3], i64), 3: np.array([-1], i64)},
                opset=18,
            ),
        ],
        "Shape": [OpExample("shape", "Shape", ((2, 3, 4),))],
        "Gather": [
            OpExample("gather", "Gather", ((5, 3),), {"axis": 0}, {1: np.array([4, 0, -1], i64)})
        ],
        "Cast": [OpExample("cast_int", "Cast", ((2, 3),), {"to": 7})],
        "Slice": [
            OpExample(
                "slice",
                "Slice",
                ((6, 5),),
                {},
                {
                    1: np.array([1, -4], i64),
                    2: np.array([5, 100], i64),
                    3: np.array([0, 1], i64),
                    4: np.array([2, 1], i64),
                },
            ),
            OpExample(
                "slice_negative_step",
                "Slice",
                ((6, 5),),
                {},
                {
                    1: np.array([-1], i64),
                    2: np.array([-100], i64),
                    3: np.array([0], i64),
                    4: np.array([-2], i64),
                },
            ),
        ],
    }


def _examples(op: str):  # type: ignore[no-untyped-def]
    return lambda: examples_shape_ops()[op]


# ---- int8: data movement keeps the quantization parameters ----


def prepare_transpose_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    shape = b.shape(node.inputs[0])
    lead = 4 - len(shape)
    perm = [*range(lead), *(p + lead for p in node.attrs["perm"])]
    return TRANSPOSE.row(
        x=b.arena(node.inputs[0]),
        y=b.arena(node.outputs[0]),
        **spread("d0 d1 d2 d3", padded_shape(shape)),
        **spread("p0 p1 p2 p3", perm),
    )


@njit(cache=True)
def transpose_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = TRANSPOSE_ROW
    x, y = row[f.x], row[f.y]
    dims = row[f.d0 : f.d3 + 1]
    perm = row[f.p0 : f.p3 + 1]
    strides = np.ones(4, np.int64)
    for axis in range(2, -1, -1):
        strides[axis] = strides[axis + 1] * dims[axis + 1]
    out_dims = np.empty(4, np.int64)
    step = np.empty(4, np.int64)
    for axis in range(4):
        out_dims[axis] = dims[perm[axis]]
        step[axis] = strides[perm[axis]]
    index = 0
    for i0 in range(out_dims[0]):
        for i1 in range(out_dims[1]):
            for i2 in range(out_dims[2]):
                for i3 in range(out_dims[3]):
                    arena[y + index] = arena[
                        x + i0 * step[0] + i1 * step[1] + i2 * step[2] + i3 * step[3]
                    ]
                    index += 1


def prepare_pad_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    x, y = node.inputs[0], node.outputs[0]
    scale, zp = b.scale_zp(x)
    value = quantize_value(float(node.attrs.get("value", 0.0)), scale, zp)
    shape, pads = b.shape(x), node.attrs["pads"]
    lead = 4 - len(shape)
    begins = [0] * lead + list(pads[: len(shape)])
    return PAD.row(
        x=b.arena(x),
        y=b.arena(y),
        **spread("d0 d1 d2 d3", padded_shape(shape)),
        **spread("begin0 begin1 begin2 begin3", begins),
        **spread("o0 o1 o2 o3", padded_shape(b.shape(y))),
        value=max(-128, min(127, value)),
    )


def prepare_pad16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """int16 Pad as the int8 byte copy with the innermost axis counted in bytes; the fill is the int16
    zero point 0 (symmetric 16x8 activations), whose two bytes are both 0."""
    row = prepare_pad_int8(node, graph, b)
    scale, zp = b.scale_zp(node.inputs[0])
    if quantize_value(float(node.attrs.get("value", 0.0)), scale, zp) != 0:
        raise QuantizationError(f"node '{node.name}' (Pad): int16 padding with a non-zero value")
    f = PAD_ROW
    for last in (f.d3, f.begin3, f.o3):  # input size, begin and output size of the innermost axis
        row[last] *= 2
    row[f.value] = 0
    return row


@njit(cache=True)
def pad_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = PAD_ROW
    x, y = row[f.x], row[f.y]
    d0, d1, d2, d3 = row[f.d0], row[f.d1], row[f.d2], row[f.d3]
    b0, b1, b2, b3 = row[f.begin0], row[f.begin1], row[f.begin2], row[f.begin3]
    o1, o2, o3 = row[f.o1], row[f.o2], row[f.o3]
    total = row[f.o0] * o1 * o2 * o3
    for i in range(total):
        arena[y + i] = row[f.value]
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                base = y + (((i0 + b0) * o1 + i1 + b1) * o2 + i2 + b2) * o3 + b3
                for i3 in range(d3):
                    arena[base + i3] = arena[x + index]
                    index += 1


def prepare_concat_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """Inputs share the output's parameters (the quantizer requantizes them; TFLM requires it of a
    file): a blockwise byte copy, so int16 data (2 bytes an element) runs the same row."""
    y = node.outputs[0]
    out_type = graph.type_of(y)
    for name in node.inputs:
        if graph.type_of(name).qparams != out_type.qparams:
            raise QuantizationError(
                f"node '{node.name}' (Concat): input '{name}' is quantized unlike the output; "
                "concatenation copies, so every input needs the output's scale and zero point"
            )
        if graph.values[name].is_const and out_type.dtype != DType.INT8:
            raise QuantizationError(f"node '{node.name}' (Concat): a constant int16 input")
    axis = node.attrs["axis"]
    out_shape = b.shape(y)
    outer = int(np.prod(out_shape[:axis]))
    inner = int(np.prod(out_shape[axis + 1 :])) * out_type.dtype.itemsize
    parts = [v for name in node.inputs for v in (*b.operand(name), b.shape(name)[axis] * inner)]
    head = CONCAT.row(
        y=b.arena(y), outer=outer, block=out_shape[axis] * inner, count=len(node.inputs)
    )
    return [*head, *parts]  # the tail: (constant?, offset, block) per input


@njit(cache=True)
def concat_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = CONCAT_ROW
    y, outer, out_block, count = row[f.y], row[f.outer], row[f.block], row[f.count]
    for o in range(outer):
        position = y + o * out_block
        for k in range(count):
            part = f.count + 1 + 3 * k  # the tail: (constant?, offset, block) per input
            source = weights if row[part] else arena
            x, block = row[part + 1], row[part + 2]
            for i in range(block):
                arena[position + i] = source[x + o * block + i]
            position += block


register(
    OpSpec(
        "Identity",
        same_type,
        identity,
        passthrough_import("Identity", 1),
        onnx_ops=("Identity",),
        layout=Layout.ELEMENTWISE,
        examples=_examples("Identity"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Dropout",
        same_type,
        identity,
        read_dropout,
        onnx_ops=("Dropout",),
        layout=Layout.ELEMENTWISE,
        examples=_examples("Dropout"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Flatten",
        infer_flatten,
        reference_flatten,
        read_flatten,
        onnx_ops=("Flatten",),
        examples=_examples("Flatten"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Reshape",
        infer_reshape,
        reference_reshape,
        read_reshape,
        onnx_ops=("Reshape",),
        examples=_examples("Reshape"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Squeeze",
        infer_squeeze,
        reference_squeeze,
        read_squeeze,
        onnx_ops=("Squeeze",),
        examples=_examples("Squeeze"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Unsqueeze",
        infer_unsqueeze,
        reference_unsqueeze,
        read_unsqueeze,
        onnx_ops=("Unsqueeze",),
        examples=_examples("Unsqueeze"),
        int8=Int8Spec(output=SAME, alias=True),
    ),
    OpSpec(
        "Transpose",
        infer_transpose,
        reference_transpose,
        read_transpose,
        onnx_ops=("Transpose",),
        examples=_examples("Transpose"),
        int8=Int8Spec(output=SAME, prepare=prepare_transpose_int8),
    ),
    OpSpec(
        "Concat",
        infer_concat,
        reference_concat,
        read_concat,
        onnx_ops=("Concat",),
        layout=Layout.AXES,
        permute_attrs=permute_axis,
        examples=_examples("Concat"),
        int8=Int8Spec(same_inputs=True, prepare=prepare_concat_int8, prepare16=prepare_concat_int8),
    ),
    OpSpec(
        "Pad",
        infer_pad,
        reference_pad,
        read_pad,
        onnx_ops=("Pad",),
        attrs={"value": 0.0},
        layout=Layout.AXES,
        permute_attrs=permute_pad,
        examples=_examples("Pad"),
        int8=Int8Spec(output=SAME, prepare=prepare_pad_int8, prepare16=prepare_pad16),
    ),
    OpSpec(
        "Shape",
        infer_shape_op,
        reference_shape,
        read_shape,
        onnx_ops=("Shape",),
        examples=_examples("Shape"),
    ),
    OpSpec(
        "Gather",
        infer_gather,
        reference_gather,
        read_gather,
        onnx_ops=("Gather",),
        attrs={"axis": 0},
        examples=_examples("Gather"),
    ),
    OpSpec(
        "Cast",
        infer_cast,
        reference_cast,
        read_cast,
        onnx_ops=("Cast",),
        examples=_examples("Cast"),
    ),
    OpSpec(
        "Slice",
        infer_slice,
        reference_slice,
        read_slice,
        onnx_ops=("Slice",),
        examples=_examples("Slice"),
    ),
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
TRANSPOSE_ROW = row_layout("transpose", "x y d0 d1 d2 d3 p0 p1 p2 p3")
TRANSPOSE = register_kernel(
    "transpose", transpose_int8, TRANSPOSE_ROW, c=("edgenn_transpose", "shape.c")
)
PAD_ROW = row_layout("pad", "x y d0 d1 d2 d3 begin0 begin1 begin2 begin3 o0 o1 o2 o3 value")
PAD = register_kernel("pad", pad_int8, PAD_ROW, c=("edgenn_pad", "shape.c"))
CONCAT_ROW = row_layout("concat", "y outer block count")
CONCAT = register_kernel(
    "concat", concat_int8, CONCAT_ROW, c=("edgenn_concat", "shape.c"), tail=True
)


# ---- TFLite: how the writer lowers these ops ----


def lower_reshape(lw: Lowering, node: Node) -> None:
    lw.tensor(node.outputs[0])
    lw.reshape(
        lw.tensor(node.inputs[0]), lw.out.tensors[node.outputs[0]].shape, target=node.outputs[0]
    )


def lower_transpose(lw: Lowering, node: Node) -> None:
    perm = lw.const_int32(f"{node.name}_perm", node.attrs["perm"])
    lw.emit("TRANSPOSE", [lw.tensor(node.inputs[0]), perm], [lw.tensor(node.outputs[0])])


def lower_pad(lw: Lowering, node: Node) -> None:
    from edgenn.quant.fixed_point import quantize_value

    x = lw.tensor(node.inputs[0])
    rank = len(lw.out.tensors[x].shape)
    pads = node.attrs["pads"]
    paddings = lw.const_int32(
        f"{node.name}_paddings", [[pads[i], pads[rank + i]] for i in range(rank)]
    )
    qp = lw.out.tensors[x].qparams
    assert qp is not None
    dtype = lw.out.tensors[x].dtype
    info = np.iinfo(dtype.numpy)
    value = max(
        info.min,
        min(info.max, quantize_value(node.attrs.get("value", 0.0), qp.scale[0], qp.zero_point[0])),
    )
    fill = lw.new(f"{node.name}_value", (), dtype, qp, np.array(value, dtype.numpy))
    lw.emit("PADV2", [x, paddings, fill], [lw.tensor(node.outputs[0])])


def lower_concat(lw: Lowering, node: Node) -> None:
    lw.emit(
        "CONCATENATION",
        [lw.tensor(i) for i in node.inputs],
        [lw.tensor(node.outputs[0])],
        ("ConcatenationOptions", {"axis": node.attrs["axis"], "fused_activation_function": "NONE"}),
    )


register_tflite(
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Dropout",
    lower=lower_reshape,
    versions={"RESHAPE": 1},
)
register_tflite("Transpose", lower=lower_transpose, versions={"TRANSPOSE": 2})
register_tflite("Pad", lower=lower_pad, versions={"PADV2": 2})
register_tflite("Concat", lower=lower_concat, versions={"CONCATENATION": 2})


# ---- TFLite: how the reader takes these builtins ----


def read_reshape(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    r.emit(name, "Reshape", ins[:1], outs, shape=r.shape(outs[0]))


def read_concat(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    from edgenn.frontend.tflite import checked_axis, fused_clip

    o = r.options(op, "ConcatenationOptions")
    axis = checked_axis(r, name, o.Axis(), len(r.shape(outs[0])))
    if fused_clip(o) != {"clip_min": -math.inf, "clip_max": math.inf}:
        raise UnsupportedOpError(f"{r.name}: {name} has a fused activation")
    r.emit(name, "Concat", ins, outs, axis=axis)


def read_pad(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    paddings = r.values[ins[1]].data
    if paddings is None:
        raise UnsupportedOpError(f"{r.name}: {name} has run-time paddings")
    x_qp = r.values[ins[0]].type.qparams
    if x_qp is None:
        raise QuantizationError(f"{r.name}: {name} (PAD) reads '{ins[0]}', which is not quantized")
    fill = r.values[ins[2]].data if len(ins) > 2 and ins[2] else None
    value = 0.0 if fill is None else (int(fill.reshape(-1)[0]) - x_qp.zero_point[0]) * x_qp.scale[0]
    pads = tuple(int(p) for p in paddings[:, 0]) + tuple(int(p) for p in paddings[:, 1])
    r.emit(name, "Pad", ins[:1], outs, pads=pads, value=float(value))


def read_transpose(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    perm = r.values[ins[1]].data
    if perm is None:
        raise UnsupportedOpError(f"{r.name}: {name} has a run-time permutation")
    r.emit(name, "Transpose", ins[:1], outs, perm=tuple(int(p) for p in perm))


def shape_arithmetic(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    """SHAPE / STRIDED_SLICE / PACK computing a RESHAPE's target: nothing to run, since RESHAPE takes
    its output tensor's static shape. Any other use of these values fails verification by name."""


register_tflite_reader("RESHAPE", read=read_reshape)
register_tflite_reader("SHAPE", "STRIDED_SLICE", "PACK", read=shape_arithmetic)
register_tflite_reader("CONCATENATION", read=read_concat)
register_tflite_reader("PAD", "PADV2", read=read_pad)
register_tflite_reader("TRANSPOSE", read=read_transpose)
