"""HardSwish recovery: x * HardSigmoid(x; alpha=1/6, beta=1/2) -> HardSwish(x).

Exporters targeting opsets before 14 (which has no HardSwish) write this pair; as one op it has an integer
kernel (TFLite HARD_SWISH) and runs once instead of twice.
"""

from __future__ import annotations

import math

from edgenn.ir import Graph, GraphEditor, Node
from edgenn.passes._match import sole_producer


def _is_hard_swish_gate(node: Node | None, x: str) -> bool:
    if node is None or node.op != "HardSigmoid" or node.inputs[0] != x:
        return False
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    return math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5, rel_tol=1e-6)


def fuse_hard_swish(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    consumers = graph.consumers()
    for mul in graph.nodes:
        if mul.op != "Mul" or mul.attrs.get("clip_min", -math.inf) != -math.inf:
            continue
        for x, gate_out in (mul.inputs, mul.inputs[::-1]):
            gate = sole_producer(graph, gate_out, consumers)
            if _is_hard_swish_gate(gate, x):
                assert gate is not None
                editor.remove_node(gate.name)
                editor.replace_node(Node(mul.name, "HardSwish", (x,), mul.outputs))
                break
    return editor.build()
