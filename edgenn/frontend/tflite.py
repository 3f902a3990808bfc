"""TFLite import: an int8 .tflite within edgenn's op set becomes the same fixed-point graph `convert` makes,
so the Numba runtime runs files made by edgenn or by TensorFlow's converter (no TensorFlow needed).

Boundary QUANTIZE (float -> int8) and DEQUANTIZE (int8 -> float) operators are dropped: the runtime's
float entry points do the same conversion with the same parameters.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import (
    EdgennError,
    MissingDependencyError,
    ModelFormatError,
    QuantizationError,
    UnsupportedOpError,
)
from edgenn.ir import DType, Graph, GraphEditor, Node, QParams, TensorType, Value, verify
from edgenn.limits import check_bytes

try:
    import tflite
except ImportError as missing:  # an optional extra: only .tflite files need it
    raise MissingDependencyError(
        "reading .tflite files needs: pip install 'edgenn[tflite]'"
    ) from missing

TYPES = {
    tflite.TensorType.INT8: DType.INT8,
    tflite.TensorType.INT32: DType.INT32,
    tflite.TensorType.FLOAT32: DType.FLOAT32,
    tflite.TensorType.INT64: DType.INT64,
    tflite.TensorType.INT16: DType.INT16,
    tflite.TensorType.UINT8: DType.UINT8,
}
ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: (-math.inf, math.inf),
    tflite.ActivationFunctionType.RELU: (0.0, math.inf),
    tflite.ActivationFunctionType.RELU6: (0.0, 6.0),
    tflite.ActivationFunctionType.RELU_N1_TO_1: (-1.0, 1.0),
}
BUILTIN_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
# errors the generated flatbuffer readers raise on corrupt offsets and lengths
CORRUPT = (
    IndexError,
    KeyError,
    struct.error,
    ValueError,
    TypeError,
    UnicodeDecodeError,
    AttributeError,
    OverflowError,
    AssertionError,  # a tensor without the quantization its operator needs
    ZeroDivisionError,  # an operator on a scalar (MEAN, CONCATENATION)
)


def is_tflite_file(path: str | os.PathLike[str]) -> bool:
    source = Path(path)
    if not source.is_file():
        return False
    with open(source, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


def load_tflite(path: str | os.PathLike[str]) -> Graph:
    source = Path(path)
    if not source.is_file():
        raise ModelFormatError(f"{source}: no such file")
    return read_tflite(source.read_bytes(), str(source))


def read_tflite(data: bytes, name: str = "model") -> Graph:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(
            f"{name}: not a TFLite model (file identifier {data[4:8]!r}, expected b'TFL3')"
        )
    try:
        return _Reader(data, name).graph()
    except EdgennError:
        raise
    except RecursionError:
        raise ModelFormatError(f"{name}: corrupt TFLite model (cyclic offsets)") from None
    except CORRUPT as err:
        raise ModelFormatError(
            f"{name}: corrupt TFLite model ({type(err).__name__}: {' '.join(str(err).split())})"
        ) from None


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ModelFormatError(
                f"{name}: {self.model.SubgraphsLength()} subgraphs; edgenn reads exactly one"
            )
        self.sub = self.model.Subgraphs(0)
        self.values: dict[str, Value] = {}
        self.names: list[str] = []
        self.nodes: list[Node] = []

    # ---- tensors ----

    def tensor_name(self, index: int) -> str:
        if not 0 <= index < len(self.names):
            raise ModelFormatError(f"{self.name}: tensor index {index} out of range")
        return self.names[index]

    def read_tensors(self) -> None:
        seen: set[str] = set()
        for i in range(self.sub.TensorsLength()):
            t = self.sub.Tensors(i)
            name = (t.Name() or b"").decode() or f"tensor_{i}"
            while name in seen:
                name = f"{name}_{i}"
            seen.add(name)
            self.names.append(name)
            if t.Type() not in TYPES:
                raise UnsupportedOpError(
                    f"{self.name}: tensor '{name}' has unsupported type {t.Type()}"
                )
            dtype = TYPES[t.Type()]
            shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else []))
            if any(d <= 0 for d in shape):
                raise ModelFormatError(
                    f"{self.name}: tensor '{name}' has a zero or negative dimension {shape}"
                )
            check_bytes(math.prod(shape) * dtype.itemsize, f"{self.name}: tensor '{name}' {shape}")
            ttype = TensorType(dtype, shape, self.qparams(t, name))
            self.values[name] = Value(name, ttype, self.buffer(t.Buffer(), ttype, name))

    def qparams(self, t: Any, name: str) -> QParams | None:
        q = t.Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        scales = tuple(float(s) for s in q.ScaleAsNumpy())
        zeros = (
            tuple(int(z) for z in q.ZeroPointAsNumpy())
            if q.ZeroPointLength()
            else (0,) * len(scales)
        )
        if len(zeros) != len(scales) or any(not (s > 0 and math.isfinite(s)) for s in scales):
            raise ModelFormatError(
                f"{self.name}: tensor '{name}' has invalid quantization parameters"
            )
        return QParams(scales, zeros, q.QuantizedDimension() if len(scales) > 1 else None)

    def buffer(self, index: int, ttype: TensorType, name: str) -> np.ndarray | None:
        if not 0 <= index < self.model.BuffersLength():
            raise ModelFormatError(
                f"{self.name}: tensor '{name}' refers to buffer {index} of {self.model.BuffersLength()}"
            )
        buf = self.model.Buffers(index)
        if buf.Offset() > 0:  # large models keep data after the flatbuffer
            start, size = int(buf.Offset()), int(buf.Size())
            if start + size > len(self.data):
                raise ModelFormatError(f"{self.name}: tensor '{name}' data lies outside the file")
            raw = self.data[start : start + size]
        elif buf.DataLength() == 0:
            return None
        else:
            raw = buf.DataAsNumpy().tobytes()
        if len(raw) != ttype.nbytes:
            raise ModelFormatError(
                f"{self.name}: tensor '{name}' shape {ttype.shape} needs {ttype.nbytes} bytes, its buffer has {len(raw)}"
            )
        array = (
            np.frombuffer(raw, ttype.dtype.numpy.newbyteorder("<"))
            .astype(ttype.dtype.numpy)
            .reshape(ttype.shape)
        )
        array.setflags(write=False)
        return array

    # ---- operators ----

    def graph(self) -> Graph:
        self.check_operators()  # an unsupported operator is named before its odd tensors trip a check
        self.read_tensors()
        inputs = (
            [self.tensor_name(i) for i in self.sub.InputsAsNumpy()]
            if self.sub.InputsLength()
            else []
        )
        outputs = (
            [self.tensor_name(i) for i in self.sub.OutputsAsNumpy()]
            if self.sub.OutputsLength()
            else []
        )
        if not inputs or not outputs:
            raise ModelFormatError(f"{self.name}: the subgraph declares no inputs or no outputs")
        for i in range(self.sub.OperatorsLength()):
            self.read_operator(i)
        return self.finish(inputs, outputs)

    def operator_kind(self, index: int) -> str:
        op = self.sub.Operators(index)
        if not 0 <= op.OpcodeIndex() < self.model.OperatorCodesLength():
            raise ModelFormatError(
                f"{self.name}: operator {index} has opcode index {op.OpcodeIndex()} out of range"
            )
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.CUSTOM:
            return f"CUSTOM ({(code.CustomCode() or b'').decode(errors='replace')})"
        return BUILTIN_NAMES.get(builtin, f"code {builtin}")

    def check_operators(self) -> None:
        for index in range(self.sub.OperatorsLength()):
            kind = self.operator_kind(index)
            if kind not in OPERATORS:
                raise UnsupportedOpError(
                    f"{self.name}: operator {index} is {kind}, which edgenn does not run "
                    f"(supported: {', '.join(sorted(OPERATORS))})"
                )

    def read_operator(self, index: int) -> None:
        op = self.sub.Operators(index)
        kind = self.operator_kind(index)
        ins = [
            self.tensor_name(i) if i >= 0 else ""
            for i in (op.InputsAsNumpy() if op.InputsLength() else [])
        ]
        outs = [self.tensor_name(i) for i in (op.OutputsAsNumpy() if op.OutputsLength() else [])]
        reader = OPERATORS.get(kind)
        if reader is None or not outs:
            raise UnsupportedOpError(
                f"{self.name}: operator {index} is {kind}, which edgenn does not run "
                f"(supported: {', '.join(sorted(OPERATORS))})"
            )
        reader(self, f"{kind.lower()}_{index}", ins, outs, op)

    def options(self, op: Any, kind: str) -> Any:
        table = op.BuiltinOptions()
        options = getattr(tflite, kind)()
        if table is None:
            return None
        options.Init(table.Bytes, table.Pos)
        return options

    def emit(self, name: str, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.nodes.append(Node(name, op, tuple(inputs), tuple(outputs), attrs))

    def shape(self, name: str) -> tuple[int, ...]:
        return self.values[name].type.shape

    def finish(self, inputs: list[str], outputs: list[str]) -> Graph:
        editor = GraphEditor(Graph(self.name, (), self.values, tuple(inputs), tuple(outputs)))
        editor.nodes = list(self.nodes)
        # drop float boundaries: QUANTIZE of a float input and DEQUANTIZE to a float output
        for node in list(editor.nodes):
            if node.op == "Quantize" and node.inputs[0] in editor.inputs:
                editor.remove_node(node.name)
                editor.inputs = tuple(
                    node.outputs[0] if i == node.inputs[0] else i for i in editor.inputs
                )
            elif node.op == "Dequantize" and node.outputs[0] in editor.outputs:
                editor.remove_node(node.name)
                editor.outputs = tuple(
                    node.inputs[0] if o == node.outputs[0] else o for o in editor.outputs
                )
        leftover = [n for n in editor.nodes if n.op in ("Quantize", "Dequantize")]
        if leftover:
            raise UnsupportedOpError(
                f"{self.name}: float <-> int8 conversion inside the graph ({leftover[0].name})"
            )
        for name in (*editor.inputs, *editor.outputs):
            if editor.values[name].type.dtype not in (DType.INT8, DType.INT16):
                raise QuantizationError(
                    f"{self.name}: tensor '{name}' is {editor.values[name].type.dtype.value}; "
                    "edgenn runs int8 and int16 (16x8) models"
                )
        graph = editor.build()
        verify(graph)
        return graph


def _padding(
    r: _Reader,
    x: str,
    y: str,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    same: bool,
) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) pads of TFLite's SAME/VALID for these shapes."""
    if not same:
        return (0, 0, 0, 0)
    (_, h, w, _), (_, oh, ow, _) = r.shape(x), r.shape(y)
    pads = []
    for size, out, k, s, d in (
        (h, oh, kernel[0], strides[0], dilations[0]),
        (w, ow, kernel[1], strides[1], dilations[1]),
    ):
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _positive(r: _Reader, name: str, **values: tuple[int, ...]) -> None:
    for key, pair in values.items():
        if any(v < 1 for v in pair):
            raise ModelFormatError(f"{r.name}: {name} has {key} {pair}; they must be at least 1")


def _clip(options: Any) -> dict[str, float]:
    activation = options.FusedActivationFunction() if options is not None else 0
    if activation not in ACTIVATIONS:
        raise UnsupportedOpError(f"fused activation {activation} is not supported")
    lo, hi = ACTIVATIONS[activation]
    return {"clip_min": lo, "clip_max": hi}


def read_conv(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    depthwise = (
        r.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()
        == tflite.BuiltinOperator.DEPTHWISE_CONV_2D
    )
    o = r.options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else ""
    weights = r.values[w]
    if weights.data is None:
        raise UnsupportedOpError(
            f"{r.name}: {name} has run-time weights; edgenn needs constant filters"
        )
    if o is None:
        raise ModelFormatError(f"{r.name}: {name} has no options")
    strides, dilations = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    _positive(r, name, strides=strides, dilations=dilations)
    _, kh, kw, _ = weights.type.shape
    pads = _padding(r, x, outs[0], (kh, kw), strides, dilations, o.Padding() == tflite.Padding.SAME)
    group = 1
    if depthwise:  # [1, KH, KW, O] -> edgenn's [O, KH, KW, 1], channel axis 3 -> 0
        data = np.ascontiguousarray(np.transpose(weights.data, (3, 1, 2, 0)))
        qp = weights.type.qparams
        r.values[w] = Value(
            w,
            TensorType(
                DType.INT8,
                data.shape,
                qp and QParams(qp.scale, qp.zero_point, 0 if qp.axis is not None else None),
            ),
            data,
        )
        group = r.shape(x)[-1]
    b = b or _zero_bias(r, name, x, w)
    r.emit(
        name,
        "Conv",
        [x, w, b],
        outs,
        strides=strides,
        dilations=dilations,
        pads=pads,
        group=group,
        channels_last=True,
        **_clip(o),
    )


def _zero_bias(r: _Reader, name: str, x: str, w: str) -> str:
    """The all-zero int32 bias an operator without one implies (scale s_in * s_w, as a real one has)."""
    bias = f"{name}_bias"
    out_ch = r.values[w].type.shape[0]
    w_qp, x_qp = r.values[w].type.qparams, r.values[x].type.qparams
    if w_qp is None or x_qp is None:
        raise QuantizationError(f"{r.name}: {name} is not quantized; edgenn runs int8 models")
    scales = tuple(float(np.float32(x_qp.scale[0]) * np.float32(s)) for s in w_qp.scale)
    qp = QParams(scales, (0,) * len(scales), 0 if len(scales) > 1 else None)
    r.values[bias] = Value(bias, TensorType(DType.INT32, (out_ch,), qp), np.zeros(out_ch, np.int32))
    return bias


def read_pool(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "Pool2DOptions")
    is_max = (
        r.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.MAX_POOL_2D
    )
    if o is None:
        raise ModelFormatError(f"{r.name}: {name} has no options")
    kernel, strides = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    _positive(r, name, filter=kernel, strides=strides)
    pads = _padding(r, ins[0], outs[0], kernel, strides, (1, 1), o.Padding() == tflite.Padding.SAME)
    if _clip(o) != {"clip_min": -math.inf, "clip_max": math.inf}:
        raise UnsupportedOpError(
            f"{r.name}: {name} has a fused activation, which edgenn pools do not take"
        )
    r.emit(
        name,
        "MaxPool" if is_max else "AveragePool",
        [ins[0]],
        outs,
        kernel=kernel,
        strides=strides,
        dilations=(1, 1),
        pads=pads,
        ceil_mode=0,
        count_include_pad=0,
        channels_last=True,
    )


def read_fully_connected(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "FullyConnectedOptions")
    x = ins[0]
    k = r.shape(ins[1])[1]
    if len(r.shape(x)) != 2:  # TFLite flattens leading dimensions implicitly
        flat = f"{name}_input"
        r.values[flat] = Value(
            flat, TensorType(DType.INT8, (math.prod(r.shape(x)) // k, k), r.values[x].type.qparams)
        )
        r.emit(f"{name}_flatten", "Reshape", [x], [flat], shape=(math.prod(r.shape(x)) // k, k))
        x = flat
    bias = ins[2] if len(ins) > 2 and ins[2] else _zero_bias(r, name, x, ins[1])
    r.emit(name, "FullyConnected", [x, ins[1], bias], outs, **_clip(o))


def binary(kind: str) -> Callable[..., None]:
    def read(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
        r.emit(name, kind, ins[:2], outs, **_clip(r.options(op, f"{kind}Options")))

    return read


def simple(kind: str, **attrs: Any) -> Callable[..., None]:
    def read(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
        r.emit(name, kind, ins[:1], outs, **attrs)

    return read


def read_reshape(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    r.emit(name, "Reshape", ins[:1], outs, shape=r.shape(outs[0]))


def read_softmax(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "SoftmaxOptions")
    if o is not None and o.Beta() != 1.0:
        raise UnsupportedOpError(
            f"{r.name}: {name} has beta {o.Beta()}; edgenn's softmax takes beta 1"
        )
    r.emit(name, "Softmax", ins[:1], outs, axis=len(r.shape(ins[0])) - 1)


def read_leaky_relu(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "LeakyReluOptions")
    r.emit(name, "LeakyRelu", ins[:1], outs, alpha=float(o.Alpha()) if o is not None else 0.2)


def _axis(r: _Reader, name: str, axis: int, rank: int) -> int:
    """An axis in [-rank, rank) as a non-negative one; a scalar has none."""
    if not -rank <= axis < rank:
        raise ModelFormatError(f"{r.name}: {name} has axis {axis}, outside a rank-{rank} tensor")
    return axis % rank


def read_concat(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    o = r.options(op, "ConcatenationOptions")
    axis = _axis(r, name, o.Axis(), len(r.shape(outs[0])))
    if _clip(o) != {"clip_min": -math.inf, "clip_max": math.inf}:
        raise UnsupportedOpError(f"{r.name}: {name} has a fused activation")
    r.emit(name, "Concat", ins, outs, axis=axis)


def read_pad(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
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


def read_transpose(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    perm = r.values[ins[1]].data
    if perm is None:
        raise UnsupportedOpError(f"{r.name}: {name} has a run-time permutation")
    r.emit(name, "Transpose", ins[:1], outs, perm=tuple(int(p) for p in perm))


def read_quantize(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    source = r.values[ins[0]].type.dtype
    if source == DType.FLOAT32:
        r.emit(name, "Quantize", ins[:1], outs)
    else:
        r.emit(name, "Requantize", ins[:1], outs, to=r.values[outs[0]].type.dtype.value)


def read_mean(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
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
        axes=tuple(sorted(_axis(r, name, int(a), rank) for a in axes.reshape(-1))),
        keepdims=int(o.KeepDims()) if o is not None else 0,
    )


def shape_arithmetic(r: _Reader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    """SHAPE / STRIDED_SLICE / PACK computing a RESHAPE's target: nothing to run, since RESHAPE takes
    its output tensor's static shape. Any other use of these values fails verification by name."""


OPERATORS: dict[str, Callable[..., None]] = {
    "MEAN": read_mean,
    "SHAPE": shape_arithmetic,
    "STRIDED_SLICE": shape_arithmetic,
    "PACK": shape_arithmetic,
    "CONV_2D": read_conv,
    "DEPTHWISE_CONV_2D": read_conv,
    "FULLY_CONNECTED": read_fully_connected,
    "MAX_POOL_2D": read_pool,
    "AVERAGE_POOL_2D": read_pool,
    "ADD": binary("Add"),
    "SUB": binary("Sub"),
    "MUL": binary("Mul"),
    "RESHAPE": read_reshape,
    "SOFTMAX": read_softmax,
    "LOGISTIC": simple("Sigmoid"),
    "TANH": simple("Tanh"),
    "HARD_SWISH": simple("HardSwish"),
    "RELU": simple("Relu"),
    "RELU6": simple("Clip", min=0.0, max=6.0),
    "RELU_N1_TO_1": simple("Clip", min=-1.0, max=1.0),
    "LEAKY_RELU": read_leaky_relu,
    "PRELU": lambda r, name, ins, outs, op: r.emit(name, "PRelu", ins[:2], outs),
    "CONCATENATION": read_concat,
    "PAD": read_pad,
    "PADV2": read_pad,
    "TRANSPOSE": read_transpose,
    "QUANTIZE": read_quantize,
    "DEQUANTIZE": simple("Dequantize"),
}


def read_boundary_types(data: bytes) -> tuple[bool, bool]:
    """Whether the file's first input and first output are float (QUANTIZE / DEQUANTIZE at its
    edges, which the reader drops): other interpreters then take and give floats."""
    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)

    def is_float(index: int) -> bool:
        return sub.Tensors(index).Type() == tflite.TensorType.FLOAT32

    return is_float(int(sub.Inputs(0))), is_float(int(sub.Outputs(0)))
