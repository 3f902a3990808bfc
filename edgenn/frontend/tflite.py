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
from edgenn.ops import TFLITE_READERS

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
            if t.IsVariable():  # state that interpreters zero and keep across calls, not constants
                raise UnsupportedOpError(
                    f"{self.name}: tensor '{name}' is a variable (state) tensor, which edgenn "
                    "does not run"
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


def same_pads(
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


def check_positive(r: _Reader, name: str, **values: tuple[int, ...]) -> None:
    for key, pair in values.items():
        if any(v < 1 for v in pair):
            raise ModelFormatError(f"{r.name}: {name} has {key} {pair}; they must be at least 1")


def fused_clip(options: Any) -> dict[str, float]:
    activation = options.FusedActivationFunction() if options is not None else 0
    if activation not in ACTIVATIONS:
        raise UnsupportedOpError(f"fused activation {activation} is not supported")
    lo, hi = ACTIVATIONS[activation]
    return {"clip_min": lo, "clip_max": hi}


def zero_bias(r: _Reader, name: str, x: str, w: str) -> str:
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


def checked_axis(r: _Reader, name: str, axis: int, rank: int) -> int:
    """An axis in [-rank, rank) as a non-negative one; a scalar has none."""
    if not -rank <= axis < rank:
        raise ModelFormatError(f"{r.name}: {name} has axis {axis}, outside a rank-{rank} tensor")
    return axis % rank


def operators() -> dict[str, Callable[..., None]]:
    """TFLite builtin -> its reader, from the op families' registrations (edgenn/ops)."""
    return dict(TFLITE_READERS)


OPERATORS = operators()


def read_boundary_types(data: bytes) -> tuple[bool, bool]:
    """Whether the file's first input and first output are float (QUANTIZE / DEQUANTIZE at its
    edges, which the reader drops): other interpreters then take and give floats."""
    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)

    def is_float(index: int) -> bool:
        return sub.Tensors(index).Type() == tflite.TensorType.FLOAT32

    return is_float(int(sub.Inputs(0))), is_float(int(sub.Outputs(0)))
