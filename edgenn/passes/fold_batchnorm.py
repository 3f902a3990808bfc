"""BatchNorm folding into the preceding Conv or FullyConnected.

With m = scale / sqrt(var + eps) per output channel:
    w' = w * m        (along the output-channel axis 0 of OIHW, OHWI and [O, K] weights)
    b' = (b - mean) * m + beta = b * m + (beta - mean * m)
Check: the producer feeds only the BatchNorm, has no fused clamp, and every weight/BN tensor is constant.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgenn.ir import Graph, GraphEditor, Node
from edgenn.ops.normalization import batchnorm_affine
from edgenn.passes._match import all_const, sole_producer

log = logging.getLogger("edgenn.passes")


def rejection(graph: Graph, bn: Node, producer: Node | None) -> str | None:
    """None when the BatchNorm can fold into `producer`, else the reason it cannot."""
    if producer is None or producer.op not in ("Conv", "FullyConnected"):
        return "not preceded by a Conv/FullyConnected used only here"
    if (
        producer.attrs.get("clip_min", -math.inf) != -math.inf
        or producer.attrs.get("clip_max", math.inf) != math.inf
    ):
        return "the producer has a fused activation"
    if not all_const(graph, producer.inputs[1:]) or not all_const(graph, bn.inputs[1:]):
        return "weights or BatchNorm parameters are not constant"
    out_rank = graph.type_of(producer.outputs[0]).rank
    channel_axis = out_rank - 1 if producer.attrs.get("channels_last") else 1
    if bn.attrs.get("axis", 1) != channel_axis:
        return "BatchNorm normalizes another axis than the output channels"
    return None


def fold_batchnorm(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    consumers = graph.consumers()
    for bn in graph.nodes:
        if bn.op != "BatchNormalization":
            continue
        producer = sole_producer(graph, bn.inputs[0], consumers)
        reason = rejection(graph, bn, producer)
        if reason or producer is None:
            log.debug("fold_batchnorm: %s kept: %s", bn.name, reason)
            continue
        mul, add = batchnorm_affine(
            [None, *(graph.const(i) for i in bn.inputs[1:])], bn.attrs.get("epsilon", 1e-5)
        )
        weights = graph.const(producer.inputs[1])
        assert weights is not None
        bias_name = producer.inputs[2] if len(producer.inputs) > 2 else ""
        bias = graph.const(bias_name) if bias_name else np.zeros(weights.shape[0])
        assert bias is not None
        new_w = (weights * mul.reshape(-1, *[1] * (weights.ndim - 1))).astype(weights.dtype)
        new_b = (bias * mul + add).astype(np.float32)
        w_name = editor.add_const(f"{producer.name}_weights_bn", new_w)
        b_name = editor.add_const(f"{producer.name}_bias_bn", new_b)
        editor.remove_node(bn.name)
        editor.replace_node(
            Node(
                producer.name,
                producer.op,
                (producer.inputs[0], w_name, b_name),
                (bn.outputs[0],),
                dict(producer.attrs),
            )
        )
    return editor.build()
