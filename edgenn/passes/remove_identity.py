"""Identity removal: Identity, inference-time Dropout, Reshape to the same shape and Transpose by the identity
permutation compute y = x; their consumers read x instead.

A graph output keeps its name: if y is an output, x's producer is made to write y directly; when x cannot be
renamed (it is a graph input, a constant or another output) the node stays.
"""

from __future__ import annotations

from edgenn.ir import Graph, GraphEditor, Node


def is_identity(node: Node, graph: Graph) -> bool:
    if node.op in ("Identity", "Dropout"):
        return True
    if node.op == "Reshape":
        return graph.type_of(node.inputs[0]).shape == graph.type_of(node.outputs[0]).shape
    if node.op == "Transpose":
        return tuple(node.attrs["perm"]) == tuple(range(len(node.attrs["perm"])))
    return False


def remove_identity(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    fixed = {*graph.inputs, *graph.outputs, *(n for n, v in graph.values.items() if v.is_const)}
    for original in graph.nodes:
        if not is_identity(original, graph):
            continue
        node = editor.node(original.name)
        src, dst = node.inputs[0], node.outputs[0]
        if dst not in graph.outputs:
            editor.remove_node(node.name)
            editor.rename_uses(dst, src)
        elif src not in fixed:
            editor.remove_node(node.name)
            editor.rename_uses(dst, src)  # other readers of dst, and the output slot
            del editor.values[dst]
            editor.rename_value(src, dst)
            fixed.add(dst)
    return editor.build()
