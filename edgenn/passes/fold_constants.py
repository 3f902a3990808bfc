"""Constant folding: a node whose inputs are all constants is evaluated once and replaced by its results."""

from __future__ import annotations

import numpy as np

from edgenn.ir import Graph, GraphEditor, const_value
from edgenn.ops import spec_for


def fold_constants(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    kept = []
    for node in graph.nodes:
        operands = [editor.values[i] for i in node.inputs if i]
        if not all(v.is_const for v in operands):
            kept.append(node)
            continue
        results = spec_for(node.op, node.name).run(
            node, [editor.values[i].data if i else None for i in node.inputs]
        )
        for name, array in zip(node.outputs, results):
            dtype = graph.type_of(name).dtype.numpy
            editor.values[name] = const_value(name, np.asarray(array, dtype))
    editor.nodes = kept
    return editor.build()
