"""QuantizeLinear / DequantizeLinear in ONNX files quantized elsewhere (onnxruntime's QDQ format, or
quantization-aware training exported as fake-quant pairs).

They do not become IR ops. A DequantizeLinear of a constant (int8 weights, int32 bias) becomes the float
constant (q - zp) * scale, and a QuantizeLinear -> DequantizeLinear pair on an activation becomes a Clip
to the range its integers can represent (the pair's float meaning, bar rounding: onnxruntime drops a Relu
whose clamp the saturation implies, so the float graph needs the clamp); either way the tensor keeps the parameters it carried as a quantization hint
(`Graph.quant_hints`), which the quantizer takes instead of calibrating. Since q * scale / scale rounds
back to q, the weights come out as the very integers the file holds.

uint8 parameters become int8 ones with the zero point moved by -128 (q - 128 under zp - 128 is the same
real value), the only conversion made; int16 QDQ and blocked quantization are refused by name.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgenn.errors import UnsupportedOpError
from edgenn.ir import DType, Node, QParams, TensorType, Value, const_value
from edgenn.ops import OnnxNode
from edgenn.quant.quantize import broadcast_qparams

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INT_TYPES = {np.dtype(np.int8): DType.INT8, np.dtype(np.uint8): DType.UINT8}


class QdqImporter(Protocol):
    values: dict[str, Value]
    nodes: list[Node]
    hints: dict[str, QParams]
    pending: dict[
        str, tuple[str, QParams]
    ]  # QuantizeLinear output -> (its float input, parameters)


def _params(
    node: OnnxNode, importer: QdqImporter, shape: tuple[int, ...]
) -> tuple[QParams, np.dtype]:
    """The node's (scale, zero point, axis) and integer type, as the file states them."""
    rank = len(shape)
    if int(node.attrs.get("block_size", 0)):
        raise UnsupportedOpError(f"node '{node.name}' ({node.op_type}): blocked quantization")
    scale = importer.values[node.inputs[1]].data if node.input(1) else None
    zp_name = node.input(2)
    zero = importer.values[zp_name].data if zp_name else np.zeros((), np.uint8)
    if scale is None or zero is None:
        raise UnsupportedOpError(
            f"node '{node.name}' ({node.op_type}): scale and zero point must be constants"
        )
    if scale.size != zero.size or scale.ndim > 1:
        raise UnsupportedOpError(
            f"node '{node.name}' ({node.op_type}): scale {scale.shape} and zero point {zero.shape} "
            "must be scalars or one vector"
        )
    scales = tuple(float(np.float32(s)) for s in scale.reshape(-1))
    zeros = tuple(int(z) for z in zero.reshape(-1))
    axis = None
    if scale.ndim == 1 and scale.size > 1:
        axis = int(node.attrs.get("axis", 1))
        if not -rank <= axis < rank or shape[axis] != scale.size:
            raise UnsupportedOpError(
                f"node '{node.name}' ({node.op_type}): {scale.size} scales along axis {axis} of "
                f"'{node.inputs[0]}', whose shape is {shape}"
            )
        axis %= rank
    try:
        return QParams(scales, zeros, axis), zero.dtype
    except Exception as err:  # a zero, negative or non-finite scale
        raise UnsupportedOpError(f"node '{node.name}' ({node.op_type}): {err}") from None


def _as_int8(qp: QParams, dtype: np.dtype, node: OnnxNode) -> QParams:
    """Parameters of the int8 (or int32 bias) tensor edgenn will hold for this integer type."""
    if dtype == np.uint8:
        return QParams(qp.scale, tuple(z - 128 for z in qp.zero_point), qp.axis)
    if dtype in (np.int8, np.int32):
        return qp
    raise UnsupportedOpError(
        f"node '{node.name}' ({node.op_type}): {dtype} quantization; edgenn reads int8 and uint8 QDQ"
    )


def _real(q: np.ndarray, qp: QParams) -> np.ndarray:
    """(q - zp) * scale in float32, as DequantizeLinear computes it."""
    scale, zero = broadcast_qparams(qp, q.ndim)
    return ((q.astype(np.int64) - zero).astype(np.float32) * scale).astype(np.float32)


def _quantized(x: np.ndarray, qp: QParams, dtype: np.dtype) -> np.ndarray:
    """QuantizeLinear of a constant: round half to even, saturate (ONNX's definition)."""
    scale, zero = broadcast_qparams(qp, x.ndim)
    info = np.iinfo(dtype)
    q = np.rint(x.astype(np.float32) / scale).astype(np.int64) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def add_qdq(importer: QdqImporter, node: OnnxNode) -> None:
    source = node.inputs[0]
    value = importer.values[source]
    qp, dtype = _params(node, importer, value.type.shape)
    out = node.outputs[0]
    if node.op_type == "QuantizeLinear":
        if value.is_const:  # fake-quantized weights (QAT export): the integers, read on by a DQ
            assert value.data is not None
            importer.values[out] = const_value(out, _quantized(value.data, qp, dtype))
            return
        if qp.axis is not None:
            raise UnsupportedOpError(
                f"node '{node.name}' (QuantizeLinear): per-axis activation quantization of "
                f"'{source}'; int8 activations take one scale"
            )
        importer.pending[out] = (source, _as_int8(qp, dtype, node))
        importer.values[out] = Value(
            out, TensorType(INT_TYPES.get(dtype, DType.INT8), value.type.shape)
        )
        return
    if value.is_const:  # weights, bias or a constant operand stored as integers
        assert value.data is not None
        importer.values[out] = const_value(out, _real(value.data, qp))
        importer.hints[out] = _as_int8(qp, value.data.dtype, node)
        return
    if source not in importer.pending:
        raise UnsupportedOpError(
            f"node '{node.name}' (DequantizeLinear): '{source}' is an integer tensor computed at run "
            "time; edgenn reads DequantizeLinear of constants and of QuantizeLinear outputs"
        )
    real, q_params = importer.pending[source]
    if _as_int8(qp, dtype, node) != q_params:
        raise UnsupportedOpError(
            f"node '{node.name}' (DequantizeLinear): parameters differ from the QuantizeLinear "
            f"that made '{source}'"
        )
    if importer.hints.get(real, q_params) != q_params:
        raise UnsupportedOpError(
            f"tensor '{real}' is quantized twice with different parameters "
            f"({importer.hints[real]} and {q_params})"
        )
    importer.hints[real] = importer.hints[out] = q_params
    importer.values[out] = Value(out, importer.values[real].type)
    lo, hi = representable_range(q_params)
    importer.nodes.append(Node(f"{node.name}_qdq", "Clip", (real,), (out,), {"min": lo, "max": hi}))


def representable_range(qp: QParams) -> tuple[float, float]:
    """The reals an int8 tensor with these parameters can hold: (-128 - zp) * s to (127 - zp) * s."""
    scale = np.float32(qp.scale[0])
    return (
        float(np.float32(-128 - qp.zero_point[0]) * scale),
        float(np.float32(127 - qp.zero_point[0]) * scale),
    )


def check_integer_uses(importer: QdqImporter, node: OnnxNode) -> None:
    """Only a DequantizeLinear may read a QuantizeLinear output (edgenn holds no int8 float-graph ops)."""
    for name in node.inputs:
        if name in importer.pending:
            raise UnsupportedOpError(
                f"node '{node.name}' ({node.op_type}) reads '{name}', a QuantizeLinear output; "
                "edgenn reads QuantizeLinear only followed by DequantizeLinear"
            )
