"""The fixed-point graph as a .tflite flatbuffer (schema version 3, identifier TFL3).

Two steps: `lower` turns IR nodes into TFLite builtin operators over named tensors (adding the reshapes,
explicit pads and shape tensors TFLite needs), then `serialize` encodes them with the flatbuffers runtime
and the `tflite` package's generated schema builders. Quantization parameters are written as the graph
holds them, so every interpreter derives the same multipliers edgenn's runtime uses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import MissingDependencyError

try:
    import flatbuffers
    import tflite
except ImportError as missing:  # an optional extra: only the .tflite backend needs it
    raise MissingDependencyError(
        "writing .tflite files needs: pip install 'edgenn[tflite]'"
    ) from missing

from edgenn.errors import GraphError, QuantizationError
from edgenn.fileio import write_atomic
from edgenn.ir import DType, Graph, Node, QParams
from edgenn.ops import TFLITE_FORMS

TFLITE_TYPES = {
    DType.FLOAT32: tflite.TensorType.FLOAT32,
    DType.INT8: tflite.TensorType.INT8,
    DType.INT16: tflite.TensorType.INT16,
    DType.INT32: tflite.TensorType.INT32,
    DType.INT64: tflite.TensorType.INT64,
    DType.UINT8: tflite.TensorType.UINT8,
}
# builtin operator versions that every interpreter accepts for int8 tensors
EDGE_VERSIONS = {  # what the writer itself emits around the ops' own builtins
    "RESHAPE": 1,
    "PAD": 2,
    "PADV2": 2,
    "QUANTIZE": 2,
    "DEQUANTIZE": 2,
}
FUSED = {
    (0.0, math.inf): "RELU",
    (0.0, 6.0): "RELU6",
    (-1.0, 1.0): "RELU_N1_TO_1",
    (-math.inf, math.inf): "NONE",
}


@dataclass
class FileTensor:
    name: str
    shape: tuple[int, ...]
    dtype: DType
    qparams: QParams | None = None
    data: np.ndarray | None = None


@dataclass
class FileOp:
    builtin: str
    inputs: list[str]
    outputs: list[str]
    options: tuple[str, dict[str, Any]] | None = None


@dataclass
class Lowered:
    name: str
    tensors: dict[str, FileTensor] = field(default_factory=dict)
    ops: list[FileOp] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class Lowering:
    """Builds the TFLite operator list from the fixed-point graph, one IR node at a time."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.out = Lowered(graph.name, inputs=list(graph.inputs), outputs=list(graph.outputs))
        self.count = 0

    def tensor(self, name: str) -> str:
        """An IR value as a file tensor (same name, shape, type, parameters, data)."""
        if name not in self.out.tensors:
            v = self.graph.values[name]
            self.out.tensors[name] = FileTensor(
                name, v.type.shape, v.type.dtype, v.type.qparams, v.data
            )
        return name

    def new(
        self,
        hint: str,
        shape: Sequence[int],
        dtype: DType,
        qparams: QParams | None = None,
        data: np.ndarray | None = None,
    ) -> str:
        self.count += 1
        name = f"{hint}__{self.count}"
        self.out.tensors[name] = FileTensor(
            name, tuple(int(d) for d in shape), dtype, qparams, data
        )
        return name

    def const_int32(self, hint: str, values: Sequence[int] | np.ndarray) -> str:
        array = np.asarray(values, np.int32)
        return self.new(hint, array.shape, DType.INT32, None, array)

    def like(self, hint: str, source: str, shape: Sequence[int]) -> str:
        t = self.out.tensors[source]
        return self.new(hint, shape, t.dtype, t.qparams)

    def emit(
        self,
        builtin: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        options: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        self.out.ops.append(FileOp(builtin, list(inputs), list(outputs), options))

    def reshape(self, source: str, shape: Sequence[int], target: str | None = None) -> str:
        target = target or self.like(f"{source}_reshaped", source, shape)
        # a leading batch dimension is written as -1, so interpreters that resize inputs keep working
        new_shape = (
            [-1, *shape[1:]] if shape and shape[0] == self.graph.batch_size() else list(shape)
        )
        self.emit(
            "RESHAPE",
            [source, self.const_int32(f"{target}_shape", new_shape)],
            [target],
            ("ReshapeOptions", {"new_shape": new_shape}),
        )
        return target


def fused_activation(node: Node) -> str:
    bounds = (node.attrs.get("clip_min", -math.inf), node.attrs.get("clip_max", math.inf))
    if bounds not in FUSED:
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): a fused clamp to {bounds} has no TFLite activation "
            "(RELU, RELU6, RELU_N1_TO_1 exist)"
        )
    return FUSED[bounds]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """TFLite's SAME: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def padding_mode(
    sizes: Sequence[int],
    out: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
) -> str | None:
    """SAME or VALID when the explicit pads mean exactly that, else None (an explicit PAD is needed)."""
    r = len(sizes)
    if not any(pads) and all(
        o == (s - (k - 1) * d - 1) // st + 1
        for s, o, k, st, d in zip(sizes, out, kernel, strides, dilations)
    ):
        return "VALID"
    same = [same_padding(s, k, st, d) for s, k, st, d in zip(sizes, kernel, strides, dilations)]
    if all(
        so == o and (b, a) == (pads[i], pads[r + i])
        for i, ((so, b, a), o) in enumerate(zip(same, out))
    ):
        return "SAME"
    return None


def spatial_4d(lw: Lowering, x: str) -> tuple[str, bool]:
    """A channels-last tensor as 4-D [N, H, W, C]; 1-D inputs [N, W, C] get a height of 1."""
    shape = lw.out.tensors[lw.tensor(x)].shape
    if len(shape) == 4:
        return x, False
    return lw.reshape(x, (shape[0], 1, shape[1], shape[2])), True


def explicit_pad(lw: Lowering, x: str, pads: Sequence[int], value: int) -> str:
    """PADV2 over H and W with the given int8 value (the zero point, or -128 before a max pool)."""
    n, h, w, c = lw.out.tensors[x].shape
    padded = lw.like(f"{x}_padded", x, (n, h + pads[0] + pads[2], w + pads[1] + pads[3], c))
    paddings = lw.const_int32(
        f"{padded}_paddings", [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]]
    )
    qp = lw.out.tensors[x].qparams
    dtype = lw.out.tensors[x].dtype  # the pad value has the padded tensor's type (int8 or int16)
    fill = lw.new(f"{padded}_value", (), dtype, qp, np.array(value, dtype.numpy))
    lw.emit("PADV2", [x, paddings, fill], [padded])
    return padded


def spatial_output(lw: Lowering, y: str, was_1d: bool) -> tuple[str, Callable[[], None]]:
    """Where a 4-D spatial op writes, and what to emit after it to give the graph's output shape."""
    lw.tensor(y)
    shape = lw.out.tensors[y].shape
    if not was_1d and len(shape) == 4:
        return y, lambda: None
    four = (shape[0], 1, shape[1], shape[2]) if len(shape) == 3 else (shape[0], 1, 1, shape[-1])
    inner = lw.like(f"{y}_4d", y, four)
    return inner, lambda: lw.reshape(inner, shape, target=y) and None


def lowerings() -> dict[str, Callable[[Lowering, Node], None]]:
    """IR op -> its TFLite lowering, from the op families' registrations (edgenn/ops)."""
    return {op: form.lower for op, form in TFLITE_FORMS.items()}


def builtin_versions() -> dict[str, int]:
    """Builtin -> operator version: the writer's own, then each op family's."""
    versions = dict(EDGE_VERSIONS)
    for form in TFLITE_FORMS.values():
        for builtin, version in form.versions.items():
            if versions.setdefault(builtin, version) != version:
                raise GraphError(f"TFLite builtin {builtin} declared with two versions")
    return versions


LOWERINGS = lowerings()
VERSIONS = builtin_versions()


def lower(graph: Graph, float_io: bool = False) -> Lowered:
    """The operator list; with float_io the file takes and returns float32 through QUANTIZE and
    DEQUANTIZE operators (the same arithmetic as the runtime's run_float)."""
    lw = Lowering(graph)
    for name in graph.inputs:
        lw.tensor(name)
    if float_io:
        for i, name in enumerate(graph.inputs):
            real = lw.new(f"{name}_float", lw.out.tensors[name].shape, DType.FLOAT32)
            lw.emit("QUANTIZE", [real], [name])
            lw.out.inputs[i] = real
    for node in graph.nodes:
        rule = LOWERINGS.get(node.op)
        if rule is None:
            raise QuantizationError(
                f"node '{node.name}': op '{node.op}' has no TFLite mapping (mapped: {', '.join(sorted(LOWERINGS))})"
            )
        rule(lw, node)
    if float_io:
        for i, name in enumerate(graph.outputs):
            real = lw.new(f"{name}_float", lw.out.tensors[name].shape, DType.FLOAT32)
            lw.emit("DEQUANTIZE", [name], [real])
            lw.out.outputs[i] = real
    return lw.out


# ---- flatbuffer encoding ----


def _vector(
    builder: flatbuffers.Builder, start: Callable[..., None], values: Sequence[Any], kind: str
) -> int:
    start(builder, len(values))
    prepend = {
        "int32": builder.PrependInt32,
        "int64": builder.PrependInt64,
        "float32": builder.PrependFloat32,
        "offset": builder.PrependUOffsetTRelative,
    }[kind]
    for v in reversed(values):
        prepend(v)
    return builder.EndVector()


def _options(builder: flatbuffers.Builder, kind: str, values: dict[str, Any]) -> int:
    """An options table: tflite.<Kind>Start, then Add<Field> for each value (enums given by name)."""
    vectors = {}
    if "new_shape" in values:
        vectors["NewShape"] = _vector(
            builder, tflite.ReshapeOptionsStartNewShapeVector, values["new_shape"], "int32"
        )
    getattr(tflite, f"{kind}Start")(builder)
    for key, value in values.items():
        field_name = "".join(part.capitalize() for part in key.split("_"))
        if field_name in vectors:
            value = vectors[field_name]
        elif key == "padding":
            value = getattr(tflite.Padding, value)
        elif key == "fused_activation_function":
            value = getattr(tflite.ActivationFunctionType, value)
        getattr(tflite, f"{kind}Add{field_name}")(builder, value)
    return getattr(tflite, f"{kind}End")(builder)


def _quantization(builder: flatbuffers.Builder, qp: QParams) -> int:
    scale = _vector(
        builder,
        tflite.QuantizationParametersStartScaleVector,
        [float(s) for s in qp.scale],
        "float32",
    )
    zero = _vector(
        builder,
        tflite.QuantizationParametersStartZeroPointVector,
        [int(z) for z in qp.zero_point],
        "int64",
    )
    tflite.QuantizationParametersStart(builder)
    tflite.QuantizationParametersAddScale(builder, scale)
    tflite.QuantizationParametersAddZeroPoint(builder, zero)
    tflite.QuantizationParametersAddQuantizedDimension(builder, qp.axis or 0)
    return tflite.QuantizationParametersEnd(builder)


def serialize(lowered: Lowered) -> bytes:
    builder = flatbuffers.Builder(4096)
    names = list(lowered.tensors)
    index = {name: i for i, name in enumerate(names)}
    # buffers: 0 is the empty sentinel; each constant gets its own, 16-byte aligned
    buffer_of: dict[str, int] = {}
    buffer_offsets = []
    tflite.BufferStart(builder)
    buffer_offsets.append(tflite.BufferEnd(builder))
    data_vectors = []
    for name in names:
        t = lowered.tensors[name]
        if t.data is None:
            continue
        raw = np.ascontiguousarray(t.data.astype(t.dtype.numpy.newbyteorder("<"))).tobytes()
        builder.StartVector(1, len(raw), 16)
        builder.head = builder.head - len(raw)
        builder.Bytes[builder.head : builder.head + len(raw)] = raw
        data_vectors.append((name, builder.EndVector()))
    for name, vector in data_vectors:
        tflite.BufferStart(builder)
        tflite.BufferAddData(builder, vector)
        buffer_of[name] = len(buffer_offsets)
        buffer_offsets.append(tflite.BufferEnd(builder))
    tensor_offsets = []
    for name in names:
        t = lowered.tensors[name]
        name_off = builder.CreateString(name)
        shape = _vector(builder, tflite.TensorStartShapeVector, list(t.shape), "int32")
        quant = _quantization(builder, t.qparams) if t.qparams is not None else None
        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape)
        tflite.TensorAddType(builder, TFLITE_TYPES[t.dtype])
        tflite.TensorAddBuffer(builder, buffer_of.get(name, 0))
        tflite.TensorAddName(builder, name_off)
        if quant is not None:
            tflite.TensorAddQuantization(builder, quant)
        tensor_offsets.append(tflite.TensorEnd(builder))
    codes: list[str] = []
    for op in lowered.ops:
        if op.builtin not in codes:
            codes.append(op.builtin)
    operator_offsets = []
    for op in lowered.ops:
        inputs = _vector(
            builder, tflite.OperatorStartInputsVector, [index[i] for i in op.inputs], "int32"
        )
        outputs = _vector(
            builder, tflite.OperatorStartOutputsVector, [index[o] for o in op.outputs], "int32"
        )
        options = _options(builder, op.options[0], op.options[1]) if op.options else None
        tflite.OperatorStart(builder)
        tflite.OperatorAddOpcodeIndex(builder, codes.index(op.builtin))
        tflite.OperatorAddInputs(builder, inputs)
        tflite.OperatorAddOutputs(builder, outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(
                builder, getattr(tflite.BuiltinOptions, op.options[0])
            )
            tflite.OperatorAddBuiltinOptions(builder, options)
        operator_offsets.append(tflite.OperatorEnd(builder))
    subgraph_name = builder.CreateString(lowered.name)
    tensors_vec = _vector(builder, tflite.SubGraphStartTensorsVector, tensor_offsets, "offset")
    inputs_vec = _vector(
        builder, tflite.SubGraphStartInputsVector, [index[i] for i in lowered.inputs], "int32"
    )
    outputs_vec = _vector(
        builder, tflite.SubGraphStartOutputsVector, [index[o] for o in lowered.outputs], "int32"
    )
    ops_vec = _vector(builder, tflite.SubGraphStartOperatorsVector, operator_offsets, "offset")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensors_vec)
    tflite.SubGraphAddInputs(builder, inputs_vec)
    tflite.SubGraphAddOutputs(builder, outputs_vec)
    tflite.SubGraphAddOperators(builder, ops_vec)
    tflite.SubGraphAddName(builder, subgraph_name)
    subgraph = tflite.SubGraphEnd(builder)
    code_offsets = []
    for code in codes:
        value = getattr(tflite.BuiltinOperator, code)
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(value, 127))
        tflite.OperatorCodeAddBuiltinCode(builder, value)
        tflite.OperatorCodeAddVersion(builder, VERSIONS.get(code, 1))
        code_offsets.append(tflite.OperatorCodeEnd(builder))
    signature = _signature(builder, lowered, index)
    description = builder.CreateString("edgenn")
    codes_vec = _vector(builder, tflite.ModelStartOperatorCodesVector, code_offsets, "offset")
    subgraphs_vec = _vector(builder, tflite.ModelStartSubgraphsVector, [subgraph], "offset")
    buffers_vec = _vector(builder, tflite.ModelStartBuffersVector, buffer_offsets, "offset")
    signatures_vec = _vector(builder, tflite.ModelStartSignatureDefsVector, [signature], "offset")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, codes_vec)
    tflite.ModelAddSubgraphs(builder, subgraphs_vec)
    tflite.ModelAddDescription(builder, description)
    tflite.ModelAddBuffers(builder, buffers_vec)
    tflite.ModelAddSignatureDefs(builder, signatures_vec)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _signature(builder: flatbuffers.Builder, lowered: Lowered, index: dict[str, int]) -> int:
    def maps(names: list[str]) -> list[int]:
        result = []
        for name in names:
            label = builder.CreateString(name)
            tflite.TensorMapStart(builder)
            tflite.TensorMapAddName(builder, label)
            tflite.TensorMapAddTensorIndex(builder, index[name])
            result.append(tflite.TensorMapEnd(builder))
        return result

    inputs = _vector(builder, tflite.SignatureDefStartInputsVector, maps(lowered.inputs), "offset")
    outputs = _vector(
        builder, tflite.SignatureDefStartOutputsVector, maps(lowered.outputs), "offset"
    )
    key = builder.CreateString("serving_default")
    tflite.SignatureDefStart(builder)
    tflite.SignatureDefAddInputs(builder, inputs)
    tflite.SignatureDefAddOutputs(builder, outputs)
    tflite.SignatureDefAddSignatureKey(builder, key)
    tflite.SignatureDefAddSubgraphIndex(builder, 0)
    return tflite.SignatureDefEnd(builder)


def to_tflite(graph: Graph, float_io: bool = False) -> bytes:
    return serialize(lower(graph, float_io))


def save_tflite(graph: Graph, path: str | os.PathLike[str], float_io: bool = False) -> Path:
    data = to_tflite(graph, float_io)
    return write_atomic(path, lambda f: f.write(data))
