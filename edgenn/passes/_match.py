"""Small matching helpers shared by the local-fusion passes."""

from __future__ import annotations

from edgenn.ir import Graph, Node


def sole_producer(graph: Graph, value: str, consumers: dict[str, list[Node]]) -> Node | None:
    """The node producing `value` when this value feeds exactly one node and is not a graph output:
    the condition for rewriting the producer to absorb its consumer."""
    if value in graph.outputs or len(consumers.get(value, [])) != 1:
        return None
    return graph.producers().get(value)


def all_const(graph: Graph, names: tuple[str, ...]) -> bool:
    return all(graph.values[n].is_const for n in names if n)
