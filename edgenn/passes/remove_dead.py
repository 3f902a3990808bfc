"""Dead-node removal: keep only nodes that some graph output depends on."""

from __future__ import annotations

from edgenn.ir import Graph, GraphEditor


def remove_dead_nodes(graph: Graph) -> Graph:
    needed = set(graph.outputs)
    live = []
    for node in reversed(graph.nodes):
        if needed.intersection(node.outputs):
            live.append(node)
            needed.update(i for i in node.inputs if i)
    editor = GraphEditor(graph)
    editor.nodes = live[::-1]
    return editor.build()
