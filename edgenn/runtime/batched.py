"""Batches layer by layer: a model made only of layers that take any number of rows (dense layers and
row-wise softmax) runs a block of samples as one program whose leading dimension is the block, so each
dense layer multiplies a block of rows by its weights (the AVX512-VNNI dense kernel loads each weight
word once for four samples). Other models run sample by sample through one arena."""

from __future__ import annotations

from edgenn.ir import Graph, Value

BLOCK = 32  # samples per pass of the batched program (the AMX kernels take 32 rows at a time)
ROW_OPS = frozenset({"FullyConnected", "Softmax"})  # their kernels take the rows from the shape


def batchable(graph: Graph) -> bool:
    """Whether every node takes its rows from dim 0 and every activation is one sample there."""
    if not graph.nodes or any(n.op not in ROW_OPS for n in graph.nodes):
        return False
    activations = [v for v in graph.values.values() if not v.is_const]
    return all(v.type.rank == 2 and v.type.shape[0] == 1 for v in activations)


def with_batch(graph: Graph, block: int) -> Graph:
    """The same graph with every activation's leading dimension `block`."""
    values = {
        name: v if v.is_const else Value(name, v.type.with_shape((block, *v.type.shape[1:])))
        for name, v in graph.values.items()
    }
    return Graph(graph.name, graph.nodes, values, graph.inputs, graph.outputs, graph.quant_hints)
