"""ONNX import: a model file becomes an edgenn Graph. The only module that imports `onnx`.

Shape arithmetic (Shape/Gather/Concat/... chains) and anything else whose inputs are all constant is folded
while reading, so ops that need static operands (Reshape's shape, Pad's pads) see constants.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgenn.errors import (
    EdgennError,
    ExternalDataError,
    GraphError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
    UnsupportedOpsetError,
)
from edgenn.frontend.qdq import QDQ_OPS, add_qdq, check_integer_uses
from edgenn.ir import (
    DType,
    Graph,
    GraphEditor,
    Node,
    QParams,
    TensorType,
    Value,
    const_value,
    toposort,
    verify,
)
from edgenn.limits import check_bytes
from edgenn.ops import ONNX_OPS, OnnxNode

MIN_OPSET = 11
DEFAULT_DOMAINS = ("", "ai.onnx")


def load_onnx(source: str | os.PathLike[str], batch_size: int = 1) -> Graph:
    """Read an ONNX file into a verified float Graph. A symbolic or missing batch dimension (dim 0 of each
    input) becomes `batch_size`."""
    path = Path(source)
    model = read_model(path)
    return import_model(model, batch_size=batch_size, name=path.stem)


def read_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such file")
    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as err:  # protobuf raises DecodeError or RuntimeWarning-like errors by version
        raise ModelFormatError(
            f"{path}: not an ONNX model (protobuf parse failed: {_one_line(err)})"
        ) from None
    if not model.HasField("graph") or not model.opset_import or not model.graph.node:
        raise ModelFormatError(
            f"{path}: not an ONNX model (no graph, nodes or opset), or the file is truncated"
        )
    load_external_data(model, path.parent)
    return model


def load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Fill tensors stored outside the model file, refusing locations that leave the model's folder."""
    root = folder.resolve()
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if "\x00" in location:
            raise ExternalDataError(
                f"tensor '{tensor.name}': external data location {location!r} holds a NUL byte"
            )
        target = (root / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(root):
            raise ExternalDataError(
                f"tensor '{tensor.name}': external data location '{location}' points outside the model's folder"
            )
        if not target.is_file():
            raise ExternalDataError(
                f"tensor '{tensor.name}': external data file '{location}' is missing"
            )
        size = target.stat().st_size
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", size - offset))
        except ValueError:
            raise ExternalDataError(
                f"tensor '{tensor.name}': external data offset/length "
                f"{info.get('offset')!r}/{info.get('length')!r} are not integers"
            ) from None
        if offset < 0 or length < 0 or offset + length > size:
            raise ExternalDataError(
                f"tensor '{tensor.name}': external data range {offset}+{length} exceeds '{location}' ({size} B)"
            )
        with open(target, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def _all_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors.extend(a.t for a in node.attribute if a.type == onnx.AttributeProto.TENSOR)
    return tensors


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def model_opset(model: onnx.ModelProto) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise ModelFormatError("model imports no version of the default ONNX operator set")
    opset = max(versions)
    newest = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise UnsupportedOpsetError(
            f"model opset {opset} is older than {MIN_OPSET}; convert it first "
            f"(onnx.version_converter.convert_version(model, {MIN_OPSET}))"
        )
    if opset > newest:
        raise UnsupportedOpsetError(
            f"model opset {opset} is newer than the installed onnx supports ({newest})"
        )
    return opset


def _dtype(elem_type: int, what: str) -> DType:
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    except Exception:
        raise ShapeError(f"{what}: unknown ONNX element type {elem_type}") from None
    if np_dtype in (np.float16, np.float64):
        return DType.FLOAT32  # float weights of other widths are computed in float32
    return DType.from_numpy(np_dtype)


def _tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    try:
        array = numpy_helper.to_array(tensor)
    except Exception as err:
        raise ModelFormatError(f"{what}: unreadable tensor data ({_one_line(err)})") from None
    if any(d <= 0 for d in array.shape):
        raise ShapeError(f"{what}: zero or negative dimension in shape {array.shape}")
    if array.dtype in (np.float16, np.float64):
        array = array.astype(np.float32)
    _dtype(tensor.data_type, what)
    if array.dtype.kind == "f" and np.isnan(array).any():  # Inf can be meant (a mask, a bound)
        first = tuple(int(i) for i in np.argwhere(np.isnan(array))[0])
        raise ModelFormatError(
            f"{what} holds {int(np.isnan(array).sum())} NaN value(s) (first at index {first})"
        )
    return array


def input_type(info: onnx.ValueInfoProto, batch_size: int) -> TensorType:
    what = f"graph input '{info.name}'"
    if not info.type.HasField("tensor_type"):
        raise ShapeError(f"{what} is not a tensor")
    tensor = info.type.tensor_type
    if not tensor.HasField("shape"):
        raise ShapeError(f"{what} has no shape; edgenn needs static shapes")
    shape = []
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value"):
            if dim.dim_value <= 0:
                raise ShapeError(
                    f"{what} has a zero or negative dimension {dim.dim_value} at axis {axis}"
                )
            shape.append(dim.dim_value)
        elif axis == 0:
            shape.append(batch_size)  # symbolic or missing batch dimension
        else:
            label = dim.dim_param or "unknown"
            raise ShapeError(
                f"{what} has a symbolic dimension '{label}' at axis {axis}; only the batch may be"
            )
    result = TensorType(_dtype(tensor.elem_type, what), tuple(shape))
    check_bytes(result.nbytes, f"{what} {result.shape}")
    return result


def decode_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = _tensor_array(value, f"node '{node.name}' attribute '{attr.name}'")
        elif isinstance(value, list):
            value = tuple(v.decode() if isinstance(v, bytes) else v for v in value)
        attrs[attr.name] = value
    if node.op_type == "Cast" and "to" in attrs:
        attrs["to"] = _dtype(attrs["to"], f"node '{node.name}' (Cast)").value
    return attrs


def constant_node_value(node: OnnxNode) -> np.ndarray:
    for key, dtype in (
        ("value", None),
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in node.attrs:
            return np.asarray(node.attrs[key], dtype)
    raise UnsupportedOpError(
        f"node '{node.name}' (Constant): only value/value_float(s)/value_int(s) are supported"
    )


class _Importer:
    """Reads nodes in order, inferring types and folding constant subgraphs as it goes."""

    def __init__(self, opset: int, batch_size: int) -> None:
        self.opset = opset
        self.batch_size = batch_size
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.hints: dict[str, QParams] = {}  # QDQ parameters carried by float tensors
        self.pending: dict[str, tuple[str, QParams]] = {}  # QuantizeLinear outputs awaiting a DQ

    # ImportContext
    def const(self, name: str) -> np.ndarray | None:
        value = self.values.get(name)
        return None if value is None else value.data

    def type_of(self, name: str) -> TensorType:
        return self.values[name].type

    def add(self, node: OnnxNode) -> None:
        for name in node.inputs:
            if name and name not in self.values:
                raise GraphError(
                    f"node '{node.name}' ({node.op_type}) uses '{name}', which nothing defines"
                )
        if node.op_type == "Constant":
            self.values[node.outputs[0]] = const_value(node.outputs[0], constant_node_value(node))
            return
        if node.op_type in QDQ_OPS:
            add_qdq(self, node)
            return
        check_integer_uses(self, node)
        spec = ONNX_OPS.get(node.op_type)
        if spec is None or spec.from_onnx is None:
            raise UnsupportedOpError(
                f"node '{node.name}': op '{node.op_type}' is not supported "
                f"(supported: {', '.join(sorted([*ONNX_OPS, 'Constant', *QDQ_OPS]))})"
            )
        try:
            imported = spec.from_onnx(node, self)
        except EdgennError:
            raise
        except (
            KeyError,
            ValueError,
            IndexError,
            TypeError,
            ZeroDivisionError,
            OverflowError,
        ) as err:
            raise UnsupportedOpError(
                f"node '{node.name}' ({node.op_type}): cannot read: {_one_line(err)}"
            ) from None
        ir_node = Node(
            node.name,
            imported.op,
            tuple(imported.inputs),
            node.outputs[: imported.n_outputs],
            dict(imported.attrs),
        )
        in_types = [self.type_of(i) if i else None for i in ir_node.inputs]
        out_types = spec.infer_checked(ir_node, in_types)
        operands = [i for i in ir_node.inputs if i]
        if all(self.values[i].is_const for i in operands) or ir_node.op == "Shape":
            results = spec.run(
                ir_node,
                [self.const(i) if i else None for i in ir_node.inputs]
                if ir_node.op != "Shape"
                else [np.empty(in_types[0].shape, np.bool_)],
            )
            for name, array in zip(ir_node.outputs, results):
                self.values[name] = const_value(name, np.asarray(array))
            return
        for name, out_type in zip(ir_node.outputs, out_types):
            self.values[name] = Value(name, out_type)
        self.nodes.append(ir_node)


def onnx_nodes(graph: onnx.GraphProto) -> list[OnnxNode]:
    nodes, seen = [], set()
    for index, node in enumerate(graph.node):
        if node.domain not in DEFAULT_DOMAINS:
            raise UnsupportedOpError(
                f"node '{node.name or index}': op '{node.domain}.{node.op_type}' is outside the default ONNX domain"
            )
        name = node.name or f"{node.op_type}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        seen.add(name)
        nodes.append(
            OnnxNode(name, node.op_type, tuple(node.input), tuple(node.output), decode_attrs(node))
        )
    return nodes


def import_model(model: onnx.ModelProto, batch_size: int = 1, name: str | None = None) -> Graph:
    """Import a parsed model. The graph is named `name` (the file stem when loaded from a file)."""
    if batch_size < 1:
        raise ShapeError(f"batch size must be at least 1, got {batch_size}")
    opset = model_opset(model)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    importer = _Importer(opset, batch_size)
    for tensor in graph.initializer:
        importer.values[tensor.name] = const_value(
            tensor.name, _tensor_array(tensor, f"initializer '{tensor.name}'")
        )
    inputs = []
    for info in graph.input:
        if info.name in importer.values:
            continue  # an initializer listed as input (old exporters): a constant
        importer.values[info.name] = Value(info.name, input_type(info, batch_size))
        inputs.append(info.name)
    if not inputs:
        raise ModelFormatError("model has no (non-constant) input")
    nodes = onnx_nodes(graph)
    ordered = _onnx_order(nodes, set(importer.values))
    for node in ordered:
        importer.add(node)
    outputs = tuple(o.name for o in graph.output)
    for out in outputs:
        if out not in importer.values:
            raise GraphError(f"graph output '{out}' is not produced by any node")
        if outputs.count(out) > 1:
            raise GraphError(f"graph output '{out}' is listed {outputs.count(out)} times")
        if out in importer.pending:
            raise UnsupportedOpError(
                f"graph output '{out}' is a QuantizeLinear output; edgenn's graphs end in float"
            )
    result = Graph(
        name=name or graph.name or "model",
        nodes=tuple(importer.nodes),
        values=importer.values,
        inputs=tuple(inputs),
        outputs=outputs,
        quant_hints=importer.hints,
    )
    result = GraphEditor(result).build()  # drops folded-away values
    verify(result)
    return result


def _onnx_order(nodes: list[OnnxNode], available: set[str]) -> list[OnnxNode]:
    """Topological order of the ONNX nodes (ONNX requires it; some writers don't keep it). Cycles raise."""
    as_ir = [Node(n.name, n.op_type, n.inputs, n.outputs) for n in nodes]
    by_name = {n.name: n for n in nodes}
    return [by_name[n.name] for n in toposort(as_ir, available)]
