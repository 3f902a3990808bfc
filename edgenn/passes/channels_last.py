"""Layout conversion to channels-last (NHWC / NWC), the layout of the integer backends.

`to_channels_last` rewrites every 1-D/2-D spatial op (Conv, pools) to its channels-last form, transposing its
activation and weight inputs (OIHW -> OHWI is the same permutation as NCHW -> NHWC). Layout then flows
forward: elementwise ops follow their input's layout (constant operands are permuted at compile time), axis
ops (Concat, Pad, Softmax, BatchNorm, ReduceMean) remap their axes, and every other op gets its input
transposed back. Graph inputs and outputs keep their names, shapes and layouts.

`simplify_layout` then cleans up what the rewrite left (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgenn.ir import Graph, GraphEditor, Node, Value
from edgenn.ops import Layout, spec_for

TO_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}
Perm = tuple[int, ...]


def inverse(perm: Perm) -> Perm:
    return tuple(int(i) for i in np.argsort(perm))


class _Rewrite:
    """Re-emits the graph node by node, tracking the layout (a permutation, or None) of every value."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.editor = GraphEditor(graph)
        self.editor.nodes = []
        self.layout: dict[str, Perm | None] = {}
        self.cache: dict[tuple[str, Perm], str] = {}

    def is_const(self, name: str) -> bool:
        return self.editor.values[name].is_const

    def emit(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: dict[str, Any],
        name: str,
        outputs: Sequence[str] = (),
    ) -> list[str]:
        """Append a node, inferring its output types; outputs get fresh names unless given."""
        in_types = [self.editor.values[i].type if i else None for i in inputs]
        node = Node(name, op, tuple(inputs), (), attrs)
        types = spec_for(op).infer_checked(node, in_types)
        outputs = list(outputs) or [
            self.editor.fresh_name(f"{name}_out{i}") for i in range(len(types))
        ]
        for out, out_type in zip(outputs, types):
            self.editor.values[out] = Value(out, out_type)
        self.editor.nodes.append(Node(name, op, tuple(inputs), tuple(outputs), attrs))
        return outputs

    def transposed(self, name: str, perm: Perm) -> str:
        """`name` transposed by `perm`: one shared Transpose node per value and permutation."""
        key = (name, perm)
        if key not in self.cache:
            if self.is_const(name):
                data = self.editor.values[name].data
                assert data is not None
                self.cache[key] = self.editor.add_const(
                    f"{name}_t", np.transpose(data, perm), derived_from=(name, perm)
                )
            else:
                node_name = self.editor.fresh_name(f"{name}_transpose")
                self.cache[key] = self.emit("Transpose", [name], {"perm": perm}, node_name)[0]
                self.layout[self.cache[key]] = None
        return self.cache[key]

    def in_layout(self, name: str, perm: Perm | None) -> str:
        """The value `name` stored in layout `perm` (None: the original layout)."""
        have = self.layout.get(name)
        if have == perm:
            return name
        if have is not None:
            name = self.transposed(name, inverse(have))
        return name if perm is None else self.transposed(name, perm)

    def broadcast_const(self, name: str, perm: Perm) -> str:
        """A constant operand of an elementwise op, raised to the op's rank, then permuted."""
        data = self.editor.values[name].data
        assert data is not None
        full = data.reshape((1,) * (len(perm) - data.ndim) + data.shape)
        hint = self.editor.hints.get(name)
        per_tensor = (
            hint is not None and hint.axis is None
        )  # a per-axis one would need the lead too
        return self.editor.add_const(
            f"{name}_t", np.transpose(full, perm), derived_from=(name, perm) if per_tensor else None
        )


def _follow_perm(rw: _Rewrite, node: Node) -> Perm | None:
    """The permuted layout an elementwise/axis op can keep, or None when it must use the original one."""
    spec = spec_for(node.op)
    acts = [i for i in node.inputs if i and not rw.is_const(i)]
    # inputs in the original layout are transposed to the permuted one (e.g. a residual Add reading the
    # graph input, whose transpose the first conv already made): one transpose either way, and the op's
    # output stays channels-last for what follows
    perms = {rw.layout.get(i) for i in acts} - {None}
    if len(perms) != 1:
        return None
    perm = perms.pop()
    if spec.output_layout is None and rw.graph.type_of(node.outputs[0]).rank != len(perm):
        return None
    if any(rw.graph.type_of(i).rank != len(perm) for i in acts):
        return None
    if spec.permute_attrs is not None and spec.permute_attrs(spec.attrs_of(node), perm) is None:
        return None
    return perm


def _convert(rw: _Rewrite, node: Node) -> tuple[list[str], Perm | None]:
    """The node's inputs in the layout it will run in, and that layout (None: original)."""
    spec = spec_for(node.op, node.name)
    rank = rw.graph.type_of(node.inputs[0]).rank
    if (
        spec.layout == Layout.SPATIAL
        and rank in TO_LAST
        and not spec.attrs_of(node).get("channels_last")
    ):
        perm = TO_LAST[rank]
        same_rank = [i and rw.graph.type_of(i).rank == rank for i in node.inputs]
        return [
            rw.in_layout(i, perm) if keep else i for i, keep in zip(node.inputs, same_rank)
        ], perm
    if spec.layout in (Layout.ELEMENTWISE, Layout.AXES):
        perm = _follow_perm(rw, node)
        if perm is not None:
            # constants broadcast against the data (elementwise) or of its rank (Concat) move with it;
            # per-channel parameter vectors (BatchNormalization) follow the permuted axis attribute
            return [
                ""
                if not i
                else rw.broadcast_const(i, perm)
                if rw.is_const(i)
                and (spec.layout == Layout.ELEMENTWISE or rw.graph.type_of(i).rank == len(perm))
                else i
                if rw.is_const(i)
                else rw.in_layout(i, perm)
                for i in node.inputs
            ], perm
    return [rw.in_layout(i, None) if i and not rw.is_const(i) else i for i in node.inputs], None


def to_channels_last(graph: Graph) -> Graph:
    rw = _Rewrite(graph)
    for node in graph.nodes:
        spec = spec_for(node.op, node.name)
        inputs, perm = _convert(rw, node)
        attrs = dict(node.attrs)
        out_perm = perm
        if perm is not None:
            if spec.permute_attrs is not None:
                attrs = dict(spec.permute_attrs(spec.attrs_of(node), perm) or attrs)
            if spec.output_layout is not None:
                out_perm = spec.output_layout(spec.attrs_of(node), perm)
        # graph outputs keep their layout: a permuted one is written privately, then transposed back
        outputs = [
            rw.editor.fresh_name(f"{o}_channels_last") if o in graph.outputs and out_perm else o
            for o in node.outputs
        ]
        rw.emit(node.op, inputs, attrs, node.name, outputs)
        for original, out in zip(node.outputs, outputs):
            rw.layout[out] = out_perm
            if out != original and out_perm is not None:
                rw.emit(
                    "Transpose",
                    [out],
                    {"perm": inverse(out_perm)},
                    rw.editor.fresh_name(f"{original}_transpose"),
                    [original],
                )
    return rw.editor.build()


RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def keeps_memory_order(shape: Sequence[int], perm: Perm) -> bool:
    """True when transposing by `perm` moves only size-1 dimensions: the bytes stay in the same order."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _flatten_source(graph: Graph, node: Node) -> tuple[Node, np.ndarray] | None:
    """For Flatten(Transpose(x)) (or the same as a Reshape) read only by constant-weight FullyConnected nodes: the Transpose and the
    index map `src` with flatten(transpose(x))[j] == flatten(x)[src[j]]."""
    producer = graph.producers().get(node.inputs[0])
    if producer is None or producer.op != "Transpose" or producer.attrs["perm"][0] != 0:
        return None
    out_shape = graph.type_of(node.outputs[0]).shape
    if (
        node.op not in ("Flatten", "Reshape")
        or len(out_shape) != 2
        or out_shape[0] != graph.batch_size()
    ):
        return None  # only a flatten that keeps the batch: [N, ...] -> [N, K]
    readers = graph.consumers().get(node.outputs[0], [])
    if (
        node.outputs[0] in graph.outputs
        or not readers
        or any(
            r.op != "FullyConnected"
            or r.inputs[0] != node.outputs[0]
            or graph.const(r.inputs[1]) is None
            for r in readers
        )
    ):
        return None
    sample_shape = graph.type_of(producer.inputs[0]).shape[1:]
    inner = tuple(p - 1 for p in producer.attrs["perm"][1:])
    src = np.transpose(np.arange(int(np.prod(sample_shape))).reshape(sample_shape), inner).reshape(
        -1
    )
    return producer, src


def _simplify_once(graph: Graph) -> Graph | None:
    """Apply the first applicable rewrite; None when there is none."""
    producers = graph.producers()
    editor = GraphEditor(graph)
    for node in graph.nodes:
        source = producers.get(node.inputs[0]) if node.inputs else None
        if node.op == "Transpose" and source is not None and source.op == "Transpose":
            # transpose(transpose(x, p1), p2) == transpose(x, q) with q[i] = p1[p2[i]]
            p1, p2 = source.attrs["perm"], node.attrs["perm"]
            perm = tuple(p1[i] for i in p2)
            editor.replace_node(
                Node(node.name, "Transpose", source.inputs, node.outputs, {"perm": perm})
            )
            return editor.build()
        if node.op == "Transpose" and keeps_memory_order(
            graph.type_of(node.inputs[0]).shape, node.attrs["perm"]
        ):
            shape = graph.type_of(node.outputs[0]).shape
            editor.replace_node(
                Node(node.name, "Reshape", node.inputs, node.outputs, {"shape": shape})
            )
            return editor.build()
        if node.op in RESHAPES and source is not None and source.op in RESHAPES:
            shape = graph.type_of(node.outputs[0]).shape
            editor.replace_node(
                Node(node.name, "Reshape", source.inputs, node.outputs, {"shape": shape})
            )
            return editor.build()
        found = _flatten_source(graph, node)
        if found is not None:
            transpose, src = found
            editor.replace_node(
                Node(node.name, "Flatten", transpose.inputs, node.outputs, {"axis": 1})
            )
            for reader in graph.consumers()[node.outputs[0]]:
                w = graph.const(reader.inputs[1])
                assert w is not None
                moved = np.empty_like(w)
                moved[:, src] = w  # column j of W multiplied t[j] == x[src[j]]
                # columns move, output channels (axis 0) stay: a weight hint carries over
                w_name = editor.add_const(
                    f"{reader.name}_weights_cl", moved, derived_from=(reader.inputs[1], (0, 1))
                )
                editor.replace_node(
                    Node(
                        reader.name,
                        reader.op,
                        (reader.inputs[0], w_name, *reader.inputs[2:]),
                        reader.outputs,
                        dict(reader.attrs),
                    )
                )
            return editor.build()
    return None


def simplify_layout(graph: Graph) -> Graph:
    """Clean up after the layout change, to a fixed point:
        Transpose(Transpose(x, p1), p2)  -> Transpose(x, p1[p2])
        Transpose moving only size-1 dims -> Reshape
        reshape-like(reshape-like(x))     -> Reshape(x)
        Flatten(Transpose(x)) -> FullyConnected(W)  ->  Flatten(x) -> FullyConnected(W with columns permuted)
    then drops identity Transposes/Reshapes and the nodes nothing reads any more."""
    from edgenn.passes.remove_dead import remove_dead_nodes
    from edgenn.passes.remove_identity import remove_identity

    while True:
        graph = remove_identity(remove_dead_nodes(graph))
        changed = _simplify_once(graph)
        if changed is None:
            return graph
        graph = changed
