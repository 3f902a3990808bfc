"""Channels-last model inputs and outputs: where the layout pass put a transpose between a
channels-first graph input (or output) and the channels-last layers, the graph takes (gives) that
tensor channels-last instead and the transpose goes. A camera or sensor driver that already
delivers NHWC then needs no transpose, and the arena holds no transposed copy.

Only a graph input whose single reader is that transpose (an output whose producer is one, read by
nothing else) changes; `changed_io` says which did.
"""

from __future__ import annotations

from dataclasses import replace

from edgenn.ir import Graph
from edgenn.passes.channels_last import TO_LAST, inverse


def channels_last_io(graph: Graph) -> Graph:
    consumers, producers = graph.consumers(), graph.producers()
    renamed: dict[str, str] = {}  # graph input or output -> the channels-last tensor it becomes
    dropped: set[str] = set()  # transposes that go
    for name in graph.inputs:
        readers = consumers.get(name, [])
        rank = graph.type_of(name).rank
        if len(readers) == 1 and _is_transpose(readers[0], TO_LAST.get(rank)):
            renamed[name] = readers[0].outputs[0]
            dropped.add(readers[0].name)
    for name in graph.outputs:
        node = producers.get(name)
        rank = graph.type_of(name).rank
        to_first = inverse(TO_LAST[rank]) if rank in TO_LAST else None
        if node is None or not _is_transpose(node, to_first) or consumers.get(name):
            continue
        source = node.inputs[0]
        if source in graph.inputs or source in graph.outputs:
            continue
        renamed[name] = source
        dropped.add(node.name)
    if not renamed:
        return graph
    values = {n: v for n, v in graph.values.items() if n not in renamed}
    return replace(
        graph,
        nodes=tuple(n for n in graph.nodes if n.name not in dropped),
        values=values,
        inputs=tuple(renamed.get(n, n) for n in graph.inputs),
        outputs=tuple(renamed.get(n, n) for n in graph.outputs),
    )


def _is_transpose(node, perm) -> bool:  # type: ignore[no-untyped-def]
    return node.op == "Transpose" and perm is not None and tuple(node.attrs["perm"]) == perm


def changed_io(before: Graph, after: Graph) -> dict[str, str]:
    """The graph inputs and outputs that became channels-last: old name -> new name."""
    pairs = zip((*before.inputs, *before.outputs), (*after.inputs, *after.outputs))
    return {old: new for old, new in pairs if old != new}
