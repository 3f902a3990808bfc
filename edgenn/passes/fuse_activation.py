"""Activation fusion: Relu or Clip after an op with a fused clamp (Conv, FullyConnected, Add, Sub, Mul)
becomes that op's clip_min/clip_max, as TFLite's fused activations do.

    clip(clip(x, a, b), c, d) = clip(x, max(a, c), min(b, d))   when the two intervals overlap
"""

from __future__ import annotations

import math
from dataclasses import replace

from edgenn.ir import DType, Graph, GraphEditor
from edgenn.ops import spec_for
from edgenn.passes._match import sole_producer

BOUNDS = {"Relu": lambda attrs: (0.0, math.inf), "Clip": lambda attrs: (attrs["min"], attrs["max"])}


def fuse_activation(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    consumers = graph.consumers()
    for act in graph.nodes:
        if act.op not in BOUNDS or graph.type_of(act.outputs[0]).dtype != DType.FLOAT32:
            continue
        producer = sole_producer(graph, act.inputs[0], consumers)
        if producer is None or not spec_for(producer.op).fuses_activation:
            continue
        current = editor.node(producer.name)
        lo, hi = BOUNDS[act.op](spec_for(act.op).attrs_of(act))
        new_lo = max(current.attrs.get("clip_min", -math.inf), lo)
        new_hi = min(current.attrs.get("clip_max", math.inf), hi)
        if new_lo > new_hi:
            continue  # disjoint clamps: the result is a constant; leave it to the reference
        fused = current.with_attrs(clip_min=float(new_lo), clip_max=float(new_hi))
        editor.remove_node(act.name)
        editor.replace_node(replace(fused, outputs=(act.outputs[0],)))
    return editor.build()
