"""The graph IR shared by every stage: float graphs from import, fused/channels-last graphs, fixed-point graphs.

A `Graph` is immutable: passes build a new one (usually through `GraphEditor`). Every tensor is a `Value` with a
static `TensorType`; constants carry their payload in `Value.data`. Nodes are kept in a topological order.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgenn.errors import GraphCycleError, GraphError, ShapeError


class DType(enum.Enum):
    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        name = np.dtype(dtype).name
        for member in cls:
            if member.value == name:
                return member
        raise ShapeError(
            f"dtype {name} is not supported (supported: {', '.join(m.value for m in cls)})"
        )


@dataclass(frozen=True, slots=True)
class QParams:
    """Affine quantization: real = (q - zero_point) * scale. One entry per tensor, or one per slice of `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if len(self.scale) != len(self.zero_point) or not self.scale:
            raise GraphError(f"QParams needs as many zero points as scales, got {self}")
        if self.axis is None and len(self.scale) != 1:
            raise GraphError(
                "per-tensor QParams take one scale; give an axis for per-channel parameters"
            )
        if any(not (s > 0 and math.isfinite(s)) for s in self.scale):
            raise GraphError(f"quantization scales must be positive and finite, got {self.scale}")

    @property
    def per_axis(self) -> bool:
        return self.axis is not None


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: tuple[int, ...]
    qparams: QParams | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def with_shape(self, shape: Sequence[int]) -> TensorType:
        return replace(self, shape=tuple(int(d) for d in shape))

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(map(str, self.shape))}]"


def tensor_type_of(array: np.ndarray) -> TensorType:
    return TensorType(DType.from_numpy(array.dtype), tuple(int(d) for d in array.shape))


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    """A named tensor. `data` is set for constants (weights, folded shapes) and None for activations."""

    name: str
    type: TensorType
    data: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None


def const_value(name: str, data: np.ndarray) -> Value:
    data = np.array(data, order="C")  # a private copy (ascontiguousarray would turn 0-d into 1-d)
    data.setflags(write=False)  # constants are shared between graphs: never mutate them
    return Value(name, tensor_type_of(data), data)


Attrs = Mapping[str, Any]
Perm = tuple[int, ...]


def permuted_qparams(qp: QParams, perm: Perm) -> QParams:
    """The parameters of a tensor transposed by `perm` (np.transpose order): the channel axis moves."""
    if qp.axis is None:
        return qp
    return QParams(qp.scale, qp.zero_point, list(perm).index(qp.axis))


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One operation. `inputs` may hold "" for an omitted optional input. Attribute values are plain Python
    scalars, strings or tuples, never arrays (tensors go through constant inputs)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Attrs = field(default_factory=dict)

    def with_attrs(self, **changes: Any) -> Node:
        return replace(self, attrs={**self.attrs, **changes})


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    name: str
    nodes: tuple[Node, ...]
    values: Mapping[str, Value]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    # the int8 parameters a float tensor carried in the file (a QDQ model's QuantizeLinear scales, a
    # DequantizeLinear weight's scales): the quantizer takes them instead of calibrating
    quant_hints: Mapping[str, QParams] = field(default_factory=dict)

    def type_of(self, name: str) -> TensorType:
        return self.values[name].type

    def const(self, name: str) -> np.ndarray | None:
        value = self.values.get(name)
        return None if value is None else value.data

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        uses: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    uses.setdefault(name, []).append(node)
        return uses

    def batch_size(self) -> int:
        """The batch dimension the graph was imported with (dim 0 of the first input)."""
        shape = self.type_of(self.inputs[0]).shape
        return shape[0] if shape else 1


def toposort(nodes: Sequence[Node], available: Iterable[str]) -> list[Node]:
    """Order `nodes` so each comes after the producers of its inputs, keeping the given order where it
    already works (so the result is deterministic). Raises GraphCycleError naming a node on a cycle."""
    ready = set(available)
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
    pending = [
        {name for name in node.inputs if name and name not in ready and name in producer}
        for node in nodes
    ]
    done = [False] * len(nodes)
    order: list[Node] = []
    progress = True
    while progress:
        progress = False
        for i, node in enumerate(nodes):
            if done[i] or pending[i] - ready:
                continue
            order.append(node)
            done[i] = True
            ready.update(node.outputs)
            progress = True
    if len(order) != len(nodes):
        stuck = next(node for i, node in enumerate(nodes) if not done[i])
        raise GraphCycleError(
            f"graph has a cycle: node '{stuck.name}' ({stuck.op}) waits on its own outputs "
            f"through {sorted(pending[nodes.index(stuck)] - ready)}"
        )
    return order


class GraphEditor:
    """A mutable working copy for passes: add/replace nodes and constants, then `build()` a new Graph."""

    def __init__(self, graph: Graph) -> None:
        self.name = graph.name
        self.nodes: list[Node] = list(graph.nodes)
        self.values: dict[str, Value] = dict(graph.values)
        self.inputs = graph.inputs
        self.outputs = graph.outputs
        self.hints: dict[str, QParams] = dict(graph.quant_hints)
        self.taken = {*graph.values, *(n.name for n in graph.nodes)}

    def fresh_name(self, hint: str) -> str:
        """A name no value or node of the graph has had (reserved once returned)."""
        name, i = hint, 0
        while name in self.taken:
            i += 1
            name = f"{hint}_{i}"
        self.taken.add(name)
        return name

    def add_const(
        self, hint: str, data: np.ndarray, derived_from: tuple[str, Perm] | None = None
    ) -> str:
        """A new constant; `derived_from` (source constant, axis permutation) carries the source's
        quantization hint over to it, its channel axis moved by the permutation."""
        name = self.fresh_name(hint)
        self.values[name] = const_value(name, data)
        if derived_from is not None and derived_from[0] in self.hints:
            self.hints[name] = permuted_qparams(self.hints[derived_from[0]], derived_from[1])
        return name

    def make_node(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: Attrs,
        out_types: Sequence[TensorType],
        hint: str,
    ) -> Node:
        """Create a node with fresh output values (not yet placed in `nodes`)."""
        outputs = []
        for i, out_type in enumerate(out_types):
            name = self.fresh_name(hint if i == 0 else f"{hint}_{i}")
            self.values[name] = Value(name, out_type)
            outputs.append(name)
        return Node(self.fresh_name(hint), op, tuple(inputs), tuple(outputs), dict(attrs))

    def node(self, name: str) -> Node:
        """The current version of a node (edits replace node records, so look them up by name)."""
        return next(n for n in self.nodes if n.name == name)

    def remove_node(self, name: str) -> None:
        self.nodes = [n for n in self.nodes if n.name != name]

    def replace_node(self, node: Node) -> None:
        self.nodes = [node if n.name == node.name else n for n in self.nodes]

    def rename_uses(self, old: str, new: str) -> None:
        """Point every consumer (and graph output) of `old` at `new`."""
        self.nodes = [
            replace(n, inputs=tuple(new if i == old else i for i in n.inputs))
            if old in n.inputs
            else n
            for n in self.nodes
        ]
        self.outputs = tuple(new if o == old else o for o in self.outputs)

    def rename_value(self, old: str, new: str) -> None:
        """Give value `old` the name `new` everywhere: its record, its producer and its consumers."""
        self.values[new] = replace(self.values.pop(old), name=new)
        if old in self.hints:
            self.hints[new] = self.hints.pop(old)
        swap = {old: new}
        self.nodes = [
            replace(
                n,
                inputs=tuple(swap.get(i, i) for i in n.inputs),
                outputs=tuple(swap.get(o, o) for o in n.outputs),
            )
            for n in self.nodes
        ]
        self.inputs = tuple(swap.get(i, i) for i in self.inputs)
        self.outputs = tuple(swap.get(o, o) for o in self.outputs)

    def build(self) -> Graph:
        nodes = toposort(
            self.nodes, [*self.inputs, *(n for n, v in self.values.items() if v.is_const)]
        )
        used = {*self.inputs, *self.outputs}
        for node in nodes:
            used.update(i for i in node.inputs if i)
            used.update(node.outputs)
        values = {name: value for name, value in self.values.items() if name in used}
        hints = {name: qp for name, qp in self.hints.items() if name in values}
        return Graph(
            self.name, tuple(nodes), values, tuple(self.inputs), tuple(self.outputs), hints
        )


def verify(graph: Graph) -> None:
    """Check the graph is well formed: every value defined once before use, known ops, valid shapes, and
    declared output types equal to what each op's shape inference says. Errors name the offending node."""
    from edgenn.ops import spec_for  # local: ops import ir

    defined: set[str] = set()
    for name in graph.inputs:
        if name not in graph.values or graph.values[name].is_const:
            raise GraphError(f"graph input '{name}' has no (non-constant) value")
        defined.add(name)
    defined.update(name for name, value in graph.values.items() if value.is_const)
    for value in graph.values.values():
        if any(d <= 0 for d in value.type.shape):
            raise ShapeError(
                f"tensor '{value.name}' has a zero or negative dimension: {value.type.shape}"
            )
        _check_axis_qparams(value)
    for node in graph.nodes:
        spec = spec_for(node.op, node.name)
        missing = [i for i in node.inputs if i and i not in defined]
        if missing:
            raise GraphError(f"node '{node.name}' ({node.op}) uses {missing} before it is defined")
        for out in node.outputs:
            if out in defined:
                raise GraphError(f"node '{node.name}' ({node.op}) redefines value '{out}'")
            if out not in graph.values:
                raise GraphError(
                    f"node '{node.name}' ({node.op}) output '{out}' has no value record"
                )
        in_types = [graph.type_of(i) if i else None for i in node.inputs]
        inferred = spec.infer_checked(node, in_types)
        for out, want in zip(node.outputs, inferred):
            have = graph.type_of(out)
            if (have.dtype, have.shape) != (want.dtype, want.shape):
                raise GraphError(
                    f"node '{node.name}' ({node.op}) output '{out}' is declared {have} but infers {want}"
                )
        defined.update(node.outputs)
    for name in graph.outputs:
        if name not in defined:
            raise GraphError(f"graph output '{name}' is not produced by any node")


def _check_axis_qparams(value: Value) -> None:
    """Zero points lie inside their integer type; per-axis parameters name a real axis and give one
    scale per slice of it (kernels index by it)."""
    qp, shape = value.type.qparams, value.type.shape
    if qp is None:
        return
    dtype = value.type.dtype.numpy
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if any(not info.min <= z <= info.max for z in qp.zero_point):
            raise GraphError(
                f"tensor '{value.name}' ({value.type.dtype.value}) has zero points outside its type: "
                f"{sorted(set(qp.zero_point))[:4]}"
            )
    if qp.axis is None:
        return
    if not 0 <= qp.axis < len(shape):
        raise GraphError(
            f"tensor '{value.name}' is quantized along axis {qp.axis}, but has rank {len(shape)}"
        )
    if len(qp.scale) != shape[qp.axis]:
        raise GraphError(
            f"tensor '{value.name}' has {len(qp.scale)} quantization scales for "
            f"{shape[qp.axis]} channels along axis {qp.axis}"
        )
