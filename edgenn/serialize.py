"""The fixed-point model file (`.edgenn`): one JSON header describing the graph, then the constant tensors
as aligned raw little-endian blobs. Deterministic: the same graph gives the same bytes.

    bytes 0..7   magic b"EDGENN\\x00\\x01"
    bytes 8..15  header length (uint64, little endian)
    header       UTF-8 JSON, keys sorted
    blobs        each at a 16-byte aligned offset from the start of the file
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import ModelFormatError
from edgenn.fileio import write_atomic
from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value, verify

MAGIC = b"EDGENN\x00\x01"
ALIGN = 16


def _encode(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def to_bytes(graph: Graph) -> bytes:
    blobs: list[bytes] = []
    values: dict[str, Any] = {}
    offset = 0
    for name in sorted(graph.values):
        v = graph.values[name]
        qp = v.type.qparams
        entry: dict[str, Any] = {
            "dtype": v.type.dtype.value,
            "shape": list(v.type.shape),
            "qparams": None
            if qp is None
            else {"scale": list(qp.scale), "zero_point": list(qp.zero_point), "axis": qp.axis},
        }
        if v.data is not None:
            raw = np.ascontiguousarray(v.data).astype(v.data.dtype.newbyteorder("<")).tobytes()
            entry["data"] = {"offset": offset, "nbytes": len(raw)}
            blobs.append(raw + b"\0" * (-len(raw) % ALIGN))
            offset += len(blobs[-1])
        values[name] = entry
    header = {
        "format": 1,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "inputs": list(n.inputs),
                "outputs": list(n.outputs),
                "attrs": {k: _encode(a) for k, a in sorted(n.attrs.items())},
            }
            for n in graph.nodes
        ],
        "values": values,
    }
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    start = len(MAGIC) + 8 + len(text)
    pad = -start % ALIGN
    return MAGIC + struct.pack("<Q", len(text) + pad) + text + b" " * pad + b"".join(blobs)


def save_graph(graph: Graph, path: str | os.PathLike[str]) -> Path:
    data = to_bytes(graph)
    return write_atomic(path, lambda f: f.write(data))


def is_edgenn_file(path: str | os.PathLike[str]) -> bool:
    source = Path(path)
    if not source.is_file():
        return False
    with open(source, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def load_graph(path: str | os.PathLike[str]) -> Graph:
    source = Path(path)
    if not source.is_file():
        raise ModelFormatError(f"{source}: no such file")
    return from_bytes(source.read_bytes(), str(source))


def from_bytes(data: bytes, source: str = "model") -> Graph:
    """The graph of an .edgenn file's bytes; any damage is a ModelFormatError naming `source`."""
    if data[: len(MAGIC)] != MAGIC or len(data) < len(MAGIC) + 8:
        raise ModelFormatError(f"{source}: not an edgenn fixed-point model (bad magic)")
    (length,) = struct.unpack("<Q", data[len(MAGIC) : len(MAGIC) + 8])
    body = len(MAGIC) + 8 + length
    try:
        header = json.loads(data[len(MAGIC) + 8 : body].decode())
        return _graph_from_header(header, data, body, source)
    except (
        ValueError,
        KeyError,
        TypeError,
        UnicodeDecodeError,
        AttributeError,
        RecursionError,
    ) as err:
        raise ModelFormatError(
            f"{source}: corrupt edgenn model ({' '.join(str(err).split())})"
        ) from None


def _graph_from_header(header: dict[str, Any], data: bytes, body: int, source: str) -> Graph:
    values = {}
    for name, entry in header["values"].items():
        dtype = DType(entry["dtype"])
        qp = entry["qparams"]
        qparams = (
            None if qp is None else QParams(tuple(qp["scale"]), tuple(qp["zero_point"]), qp["axis"])
        )
        t = TensorType(dtype, tuple(entry["shape"]), qparams)
        array = None
        if entry.get("data"):
            start, nbytes = body + entry["data"]["offset"], entry["data"]["nbytes"]
            if start + nbytes > len(data) or nbytes != t.nbytes:
                raise ModelFormatError(
                    f"{source}: tensor '{name}' data lies outside the file or has the wrong size"
                )
            array = np.frombuffer(data, dtype.numpy.newbyteorder("<"), t.size, start).reshape(
                t.shape
            )
            array = array.astype(dtype.numpy)
            array.setflags(write=False)
        values[name] = Value(name, t, array)
    nodes = tuple(
        Node(
            n["name"],
            n["op"],
            tuple(n["inputs"]),
            tuple(n["outputs"]),
            {k: _decode(a) for k, a in n["attrs"].items()},
        )
        for n in header["nodes"]
    )
    graph = Graph(header["name"], nodes, values, tuple(header["inputs"]), tuple(header["outputs"]))
    verify(graph)
    return graph
