"""The float reference executor: runs a Graph op by op with each op's numpy reference.

Any batch size runs, not only the imported one, provided the batch stays in dimension 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgenn.errors import InputError
from edgenn.ir import Graph
from edgenn.ops import spec_for

Feeds = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray


def bind_inputs(graph: Graph, feeds: Feeds) -> dict[str, np.ndarray]:
    """Match user arrays to graph inputs (by name, by position, or one array for a one-input graph) and
    check their shapes: every dimension but the batch must equal the graph's."""
    if isinstance(feeds, np.ndarray):
        feeds = [feeds]
    if not isinstance(feeds, Mapping):
        if len(feeds) != len(graph.inputs):
            raise InputError(
                f"model takes {len(graph.inputs)} input(s) {list(graph.inputs)}, got {len(feeds)}"
            )
        feeds = dict(zip(graph.inputs, feeds))
    unknown = set(feeds) - set(graph.inputs)
    missing = set(graph.inputs) - set(feeds)
    if unknown or missing:
        raise InputError(
            f"inputs {sorted(unknown)} are not model inputs; missing {sorted(missing)}"
        )
    bound = {}
    for name in graph.inputs:
        want = graph.type_of(name)
        array = np.asarray(feeds[name])
        if want.rank == 0:  # a scalar input has no batch axis
            if array.ndim != 0:
                raise InputError(f"input '{name}' has shape {array.shape}; expected a scalar")
        elif array.ndim != want.rank or array.shape[1:] != want.shape[1:] or array.shape[0] < 1:
            raise InputError(
                f"input '{name}' has shape {array.shape}; expected {('N', *want.shape[1:])} "
                f"(model imported with N={want.shape[0]})"
            )
        if array.dtype.kind not in "fiub":
            raise InputError(f"input '{name}' has dtype {array.dtype}; expected {want.dtype.value}")
        bound[name] = np.ascontiguousarray(array, dtype=want.dtype.numpy)
    return bound


def run_reference(graph: Graph, feeds: Feeds, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Run the graph. Returns the graph outputs by name, or every value (inputs, constants,
    intermediates) with keep_all=True (for per-layer comparisons)."""
    env: dict[str, np.ndarray] = {n: v.data for n, v in graph.values.items() if v.data is not None}
    env.update(bind_inputs(graph, feeds))
    consumers_left = _use_counts(graph)
    for node in graph.nodes:
        spec = spec_for(node.op, node.name)
        results = spec.run(node, [env[i] if i else None for i in node.inputs])
        env.update(zip(node.outputs, results))
        if not keep_all:  # free activations as soon as their last consumer ran
            for name in node.inputs:
                if name and name in consumers_left:
                    consumers_left[name] -= 1
                    if consumers_left[name] == 0 and not graph.values[name].is_const:
                        del env[name]
    if keep_all:
        return env
    return {name: env[name] for name in graph.outputs}


def _use_counts(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            if name:
                counts[name] = counts.get(name, 0) + 1
    for name in graph.outputs:
        counts[name] = counts.get(name, 0) + 1  # never freed
    return counts
