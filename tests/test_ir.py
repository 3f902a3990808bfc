"""IR records, topological ordering and verification."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn.errors import GraphCycleError, GraphError, ShapeError, UnsupportedOpError
from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value, const_value, toposort, verify

F32 = DType.FLOAT32


def tiny_graph(nodes: list[Node], out_shape: tuple[int, ...] = (1, 4)) -> Graph:
    values = {"x": Value("x", TensorType(F32, (1, 4)))}
    for node in nodes:
        for out in node.outputs:
            values[out] = Value(out, TensorType(F32, out_shape))
    return Graph("g", tuple(nodes), values, ("x",), (nodes[-1].outputs[0],))


def test_toposort_orders_and_keeps_given_order() -> None:
    a = Node("a", "Relu", ("x",), ("ya",))
    b = Node("b", "Relu", ("ya",), ("yb",))
    c = Node("c", "Relu", ("x",), ("yc",))
    assert [n.name for n in toposort([b, c, a], ["x"])] == ["c", "a", "b"]
    assert [n.name for n in toposort([a, b, c], ["x"])] == ["a", "b", "c"]


def test_toposort_names_a_node_on_the_cycle() -> None:
    a = Node("a", "Add", ("x", "yb"), ("ya",))
    b = Node("b", "Relu", ("ya",), ("yb",))
    with pytest.raises(GraphCycleError, match="node 'a'"):
        toposort([a, b], ["x"])


def test_verify_accepts_valid_graph() -> None:
    verify(tiny_graph([Node("r", "Relu", ("x",), ("y",))]))


def test_verify_names_node_with_wrong_declared_shape() -> None:
    with pytest.raises(
        GraphError, match="node 'r' .*declared float32\\[1,5\\] but infers float32\\[1,4\\]"
    ):
        verify(tiny_graph([Node("r", "Relu", ("x",), ("y",))], out_shape=(1, 5)))


def test_verify_names_node_using_undefined_value() -> None:
    with pytest.raises(GraphError, match="node 'r' \\(Relu\\) uses \\['nope'\\]"):
        verify(tiny_graph([Node("r", "Relu", ("nope",), ("y",))]))


def test_verify_rejects_unknown_op() -> None:
    with pytest.raises(UnsupportedOpError, match="op 'Frobnicate'"):
        verify(tiny_graph([Node("f", "Frobnicate", ("x",), ("y",))]))


def test_verify_rejects_zero_dimension() -> None:
    graph = tiny_graph([Node("r", "Relu", ("x",), ("y",))])
    values = dict(graph.values) | {"x": Value("x", TensorType(F32, (1, 0)))}
    with pytest.raises(ShapeError, match="'x' has a zero or negative dimension"):
        verify(Graph("g", graph.nodes, values, graph.inputs, graph.outputs))


def test_qparams_per_tensor_and_per_axis() -> None:
    per_tensor = QParams((0.5,), (3,))
    per_axis = QParams((0.1, 0.2), (0, 0), axis=0)
    assert not per_tensor.per_axis and per_axis.per_axis
    with pytest.raises(GraphError):
        QParams((0.1, 0.2), (0, 0))  # two scales need an axis
    with pytest.raises(GraphError):
        QParams((0.0,), (0,))  # zero scale


def test_constants_are_read_only_copies() -> None:
    source = np.zeros(3, np.float32)
    value = const_value("c", source)
    source[0] = 1
    assert value.data is not None and value.data[0] == 0
    with pytest.raises(ValueError):
        value.data[0] = 2
    assert const_value("s", np.array(1.5, np.float32)).type.shape == ()
