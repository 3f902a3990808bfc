"""HardSigmoid lowering: TFLite has no HARD_SIGMOID builtin, so the op becomes the steps TensorFlow's
converter writes for Keras' hard_sigmoid, each with an int8 kernel:

    hard_sigmoid(x; a, b) = clip(a x + b, 0, 1) = relu6(6a x + 6b) / 6
    -> Mul(x, 6a)  (skipped when 6a == 1, as for a = 1/6)
    -> Add(6b) with a fused RELU6
    -> Mul(1/6)

Runs after fuse_hard_swish, which turns x * HardSigmoid(x) into one HardSwish first.
"""

from __future__ import annotations

import math

import numpy as np

from edgenn.ir import Graph, GraphEditor, Node


def lower_hard_sigmoid(graph: Graph) -> Graph:
    editor = GraphEditor(graph)
    for node in graph.nodes:
        if node.op != "HardSigmoid":
            continue
        alpha = float(node.attrs.get("alpha", 0.2))
        beta = float(node.attrs.get("beta", 0.5))
        x_type = graph.type_of(node.inputs[0])
        steps: list[Node] = []
        source = node.inputs[0]
        if not math.isclose(6 * alpha, 1.0, rel_tol=1e-7):
            scale = editor.add_const(f"{node.name}_slope", np.array(6 * alpha, np.float32))
            steps.append(
                editor.make_node("Mul", (source, scale), {}, [x_type], f"{node.name}_scaled")
            )
            source = steps[-1].outputs[0]
        offset = editor.add_const(f"{node.name}_offset", np.array(6 * beta, np.float32))
        relu6 = {"clip_min": 0.0, "clip_max": 6.0}
        steps.append(
            editor.make_node("Add", (source, offset), relu6, [x_type], f"{node.name}_relu6")
        )
        sixth = editor.add_const(f"{node.name}_sixth", np.array(1 / 6, np.float32))
        steps.append(Node(node.name, "Mul", (steps[-1].outputs[0], sixth), node.outputs))
        editor.nodes = [m for n in editor.nodes for m in (steps if n.name == node.name else [n])]
    return editor.build()
