"""Graph passes: each a pure function Graph -> Graph in its own module, composed by `run_pipeline`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from edgenn.ir import Graph, verify
from edgenn.passes.channels_last import simplify_layout, to_channels_last
from edgenn.passes.fold_batchnorm import fold_batchnorm
from edgenn.passes.fold_constants import fold_constants
from edgenn.passes.fully_connected import fuse_matmul_add
from edgenn.passes.fuse_activation import fuse_activation
from edgenn.passes.fuse_hard_swish import fuse_hard_swish
from edgenn.passes.lower_hard_sigmoid import lower_hard_sigmoid
from edgenn.passes.remove_dead import remove_dead_nodes
from edgenn.passes.remove_identity import remove_identity

log = logging.getLogger("edgenn.passes")

Pass = Callable[[Graph], Graph]

FLOAT_PASSES: tuple[tuple[str, Pass], ...] = (
    ("fold_constants", fold_constants),
    ("remove_identity", remove_identity),
    ("fuse_matmul_add", fuse_matmul_add),
    ("fold_batchnorm", fold_batchnorm),
    ("fuse_activation", fuse_activation),
    ("fuse_hard_swish", fuse_hard_swish),
    ("lower_hard_sigmoid", lower_hard_sigmoid),
    ("remove_dead_nodes", remove_dead_nodes),
)
LAYOUT_PASSES: tuple[tuple[str, Pass], ...] = (
    ("to_channels_last", to_channels_last),
    ("simplify_layout", simplify_layout),
    ("fold_constants", fold_constants),
    ("remove_dead_nodes", remove_dead_nodes),
)
PIPELINE = FLOAT_PASSES + LAYOUT_PASSES  # what the integer backends take


def run_pipeline(
    graph: Graph, steps: Sequence[tuple[str, Pass]] = PIPELINE, dump_dir: Path | None = None
) -> Graph:
    """Run the passes in order, verifying the graph after each; optionally dump a listing per step."""
    for index, (name, step) in enumerate(steps):
        before = len(graph.nodes)
        graph = step(graph)
        verify(graph)
        log.debug("%s: nodes %d -> %d", name, before, len(graph.nodes))
        if dump_dir is not None:
            dump_dir.mkdir(parents=True, exist_ok=True)
            (dump_dir / f"{index:02d}_{name}.txt").write_text(describe(graph))
    return graph


def optimize(graph: Graph, channels_last: bool = True) -> Graph:
    return run_pipeline(graph, PIPELINE if channels_last else FLOAT_PASSES)


def describe(graph: Graph) -> str:
    """A plain listing of the graph (one node a line) for debugging dumps."""
    lines = [f"graph {graph.name}: inputs {list(graph.inputs)} outputs {list(graph.outputs)}"]
    for node in graph.nodes:
        types = ", ".join(str(graph.type_of(o)) for o in node.outputs)
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(node.attrs.items()))
        lines.append(f"{node.name}: {node.op}({', '.join(node.inputs)}) -> {types} {{{attrs}}}")
    return "\n".join(lines) + "\n"
