"""MatMul + Add -> FullyConnected, and Gemm with constant weights -> FullyConnected.

    MatMul(x[N,K], W[K,O]) + b[O]               -> FullyConnected(x, W^T, b)
    Gemm(x[N,K], B, C) = alpha * x @ op(B) + beta * C -> FullyConnected(x, alpha * op(B)^T, beta * C)
FullyConnected stores W as [O, K] (TFLite's layout). Only 2-D x, constant weights, bias broadcastable to [O].
"""

from __future__ import annotations

import numpy as np

from edgenn.ir import Graph, GraphEditor, Node
from edgenn.passes._match import sole_producer


def _bias_vector(c: np.ndarray | None, out: int) -> np.ndarray | None:
    """C as a length-O vector when it broadcasts along the batch only; None otherwise."""
    if c is None or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, out):
        return None
    return np.broadcast_to(c.reshape(-1), (out,)).astype(np.float32)


def _gemm_to_fc(graph: Graph, editor: GraphEditor, node: Node) -> None:
    b = graph.const(node.inputs[1])
    if b is None or node.attrs["transA"] or graph.type_of(node.inputs[0]).rank != 2:
        return
    w = (b if node.attrs["transB"] else b.T) * np.float32(node.attrs["alpha"])
    c_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = None
    if c_name:
        bias = _bias_vector(graph.const(c_name), w.shape[0])
        if bias is None:
            return
        bias = bias * np.float32(node.attrs["beta"])
    # W = B or B^T: a quantization hint of B moves its axis; alpha != 1 changes the scales
    source = (node.inputs[1], (0, 1) if node.attrs["transB"] else (1, 0))
    inputs = (
        node.inputs[0],
        editor.add_const(
            f"{node.name}_weights",
            w.astype(np.float32),
            derived_from=source if node.attrs["alpha"] == 1.0 else None,
        ),
        editor.add_const(f"{node.name}_bias", bias) if bias is not None else "",
    )
    editor.replace_node(Node(node.name, "FullyConnected", inputs, node.outputs, {}))


def _matmul_to_fc(
    graph: Graph, editor: GraphEditor, node: Node, consumers: dict[str, list[Node]]
) -> None:
    w = graph.const(node.inputs[1])
    if w is None or w.ndim != 2 or graph.type_of(node.inputs[0]).rank != 2:
        return
    out, bias_name, add = node.outputs[0], "", None
    uses = consumers.get(out, [])
    if sole_producer(graph, out, consumers) is node and uses[0].op == "Add" and not uses[0].attrs:
        add = uses[0]
        other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
        bias = _bias_vector(graph.const(other), w.shape[1])
        if bias is not None:
            bias_name = editor.add_const(f"{node.name}_bias", bias)
            out = add.outputs[0]
            editor.remove_node(add.name)
    w_name = editor.add_const(
        f"{node.name}_weights", np.ascontiguousarray(w.T), derived_from=(node.inputs[1], (1, 0))
    )
    editor.replace_node(
        Node(node.name, "FullyConnected", (node.inputs[0], w_name, bias_name), (out,), {})
    )


def fuse_matmul_add(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    consumers = graph.consumers()
    for node in graph.nodes:
        if node.op == "Gemm":
            _gemm_to_fc(graph, editor, node)
        elif node.op == "MatMul":
            _matmul_to_fc(graph, editor, node, consumers)
    return editor.build()
