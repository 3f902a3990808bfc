"""Each pass keeps the float reference's outputs (1e-5 of the output range on random inputs) and does the
rewrite it promises; a property test runs random conv stacks through import, every pass and onnxruntime."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from builders import STACKS, Stack, build_conv_stack, conv_stacks
from conftest import MODELS, relative_error
from hypothesis import HealthCheck, given, settings

from edgenn.frontend.onnx import import_model, load_onnx
from edgenn.ir import Graph, GraphEditor, Node, Value
from edgenn.passes import FLOAT_PASSES, PIPELINE, run_pipeline
from edgenn.passes.channels_last import simplify_layout, to_channels_last
from edgenn.passes.fold_batchnorm import fold_batchnorm
from edgenn.passes.fold_constants import fold_constants
from edgenn.passes.fully_connected import fuse_matmul_add
from edgenn.passes.fuse_activation import fuse_activation
from edgenn.passes.fuse_hard_swish import fuse_hard_swish
from edgenn.passes.remove_dead import remove_dead_nodes
from edgenn.passes.remove_identity import remove_identity
from edgenn.reference import run_reference

TORCH_DIR = Path(__file__).parent / "data" / "torch"


def graphs() -> dict[str, Graph]:
    found = {f"stack_{k}": import_model(f()) for k, f in STACKS.items()}
    found |= {f"bundled_{p.stem}": load_onnx(p) for p in sorted(MODELS.glob("*.onnx"))}
    found |= {f"torch_{p.stem}": load_onnx(p) for p in sorted(TORCH_DIR.glob("*.onnx"))}
    return found


GRAPHS = graphs()


def assert_equivalent(before: Graph, after: Graph, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    feeds = {
        n: rng.uniform(-1, 1, (4, *before.type_of(n).shape[1:])).astype(np.float32)
        for n in before.inputs
    }
    want, got = run_reference(before, feeds), run_reference(after, feeds)
    assert list(want) == list(got)  # same output names, same order
    for name in want:
        assert got[name].shape == want[name].shape
        assert relative_error(got[name], want[name]) <= 1e-5, name


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def prefix_until(name: str) -> list:
    """The pipeline steps before the first step called `name` (so the pass sees what it will see)."""
    steps = []
    for step in PIPELINE:
        if step[0] == name:
            return steps
        steps.append(step)
    raise KeyError(name)


PASSES: dict[str, Callable[[Graph], Graph]] = {
    "fold_constants": fold_constants,
    "remove_identity": remove_identity,
    "fuse_matmul_add": fuse_matmul_add,
    "fold_batchnorm": fold_batchnorm,
    "fuse_activation": fuse_activation,
    "fuse_hard_swish": fuse_hard_swish,
    "remove_dead_nodes": remove_dead_nodes,
    "to_channels_last": to_channels_last,
    "simplify_layout": simplify_layout,
}


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_pass_keeps_outputs(pass_name: str, graph_name: str) -> None:
    graph = run_pipeline(GRAPHS[graph_name], prefix_until(pass_name))
    assert_equivalent(graph, run_pipeline(graph, [(pass_name, PASSES[pass_name])]))


def test_fold_batchnorm_removes_every_batchnorm_after_conv() -> None:
    graph = run_pipeline(GRAPHS["torch_cnn_batchnorm_opset17"], prefix_until("fold_batchnorm"))
    assert ops(graph).count("BatchNormalization") == 2
    assert "BatchNormalization" not in ops(fold_batchnorm(graph))


def test_fold_batchnorm_matches_hand_computation() -> None:
    # 1x1 conv, w=2, b=1; BN scale 3, bias 0.5, mean 1, var 3, eps 1 -> m = 3/2: w' = 3, b' = (1-1)*1.5+0.5
    s = Stack((1, 1, 2, 2))
    conv = s.op(
        "Conv",
        ["input", s.const(np.full((1, 1, 1, 1), 2, np.float32)), s.const(np.ones(1, np.float32))],
    )
    bn = s.op(
        "BatchNormalization",
        [conv, *(s.const(np.array([v], np.float32)) for v in (3, 0.5, 1, 3))],
        epsilon=1.0,
    )
    folded = fold_batchnorm(import_model(s.model(bn)))
    (node,) = folded.nodes
    assert folded.const(node.inputs[1]).ravel().tolist() == [3.0]
    assert folded.const(node.inputs[2]).tolist() == [0.5]


def test_fuse_matmul_add_makes_fully_connected() -> None:
    graph = GRAPHS["stack_mlp"]
    assert {"MatMul", "Gemm", "Add"} <= set(ops(graph))
    fused = fuse_matmul_add(graph)
    assert not {"MatMul", "Gemm", "Add"} & set(ops(fused))
    assert ops(fused).count("FullyConnected") == 3


def test_fuse_activation_folds_relu_and_relu6() -> None:
    graph = run_pipeline(GRAPHS["torch_cnn_batchnorm_opset17"], prefix_until("fuse_activation"))
    fused = fuse_activation(graph)
    assert "Relu" not in ops(fused) and "Clip" not in ops(fused)
    clips = sorted(
        (n.attrs["clip_min"], n.attrs["clip_max"]) for n in fused.nodes if n.op == "Conv"
    )
    assert clips == [(0.0, 6.0), (0.0, math.inf)]


def test_fuse_hard_swish_from_opset11_export() -> None:
    graph = run_pipeline(
        GRAPHS["torch_depthwise_separable_opset11"], prefix_until("fuse_hard_swish")
    )
    assert "HardSigmoid" in ops(graph)
    fused = fuse_hard_swish(graph)
    assert "HardSigmoid" not in ops(fused) and "HardSwish" in ops(fused)


def test_fuse_activation_into_residual_add() -> None:
    graph = run_pipeline(GRAPHS["stack_residual"], prefix_until("fuse_activation"))
    add = next(n for n in fuse_activation(graph).nodes if n.op == "Add")
    assert add.attrs["clip_min"] == 0.0


def test_remove_identity_drops_identity_and_dropout() -> None:
    graph = GRAPHS["stack_mlp"]
    assert "Dropout" in ops(graph)
    assert "Dropout" not in ops(remove_identity(graph))


def test_remove_identity_keeps_output_name() -> None:
    s = Stack((1, 3))
    out = s.op("Identity", [s.op("Relu", ["input"])])
    graph = import_model(s.model(out))
    cleaned = remove_identity(graph)
    assert ops(cleaned) == ["Relu"] and cleaned.outputs == (out,)
    assert_equivalent(graph, cleaned)


def test_remove_dead_nodes_drops_unused_branch() -> None:
    graph = GRAPHS["stack_mlp"]
    editor = GraphEditor(graph)
    editor.values["unused"] = Value("unused", graph.type_of(graph.inputs[0]))
    editor.nodes.append(Node("dead", "Tanh", (graph.inputs[0],), ("unused",)))
    with_dead = editor.build()
    assert "dead" in [n.name for n in with_dead.nodes]
    assert "dead" not in [n.name for n in remove_dead_nodes(with_dead).nodes]


def test_fold_constants_evaluates_constant_subgraph() -> None:
    graph = GRAPHS["stack_mlp"]
    editor = GraphEditor(graph)
    weights = next(n for n, v in graph.values.items() if v.is_const and v.type.rank == 2)
    editor.values["w_t"] = Value(
        "w_t", graph.type_of(weights).with_shape(graph.type_of(weights).shape[::-1])
    )
    editor.nodes.insert(0, Node("transpose_w", "Transpose", (weights,), ("w_t",), {"perm": (1, 0)}))
    editor.outputs = (*editor.outputs, "w_t")  # read by something, so the folded value stays
    folded = fold_constants(editor.build())
    assert "transpose_w" not in [n.name for n in folded.nodes]
    assert np.array_equal(folded.const("w_t"), graph.const(weights).T)


@pytest.mark.parametrize(
    "name", ["bundled_digits_cnn", "bundled_mnist1d_cnn", "torch_residual_opset17"]
)
def test_channels_last_leaves_no_transpose_inside(name: str) -> None:
    """After the layout passes a CNN runs NHWC end to end: at most the input's transpose remains."""
    graph = run_pipeline(GRAPHS[name], PIPELINE)
    assert all(n.attrs.get("channels_last") for n in graph.nodes if n.op in ("Conv", "MaxPool"))
    transposes = [n for n in graph.nodes if n.op == "Transpose"]
    assert all(n.inputs[0] in graph.inputs for n in transposes)
    assert_equivalent(GRAPHS[name], graph)


def test_residual_add_with_the_graph_input_stays_channels_last() -> None:
    """Add(conv(x), x): the Add reads the input's existing transpose instead of transposing the conv
    output back, so the spatial mean after it is a channels-last one."""
    s = Stack((1, 3, 6, 6), seed=5)
    y = s.op("Add", [s.conv(s.input.name, 3, 3, (3, 3), pads=[1, 1, 1, 1]), s.input.name])
    model = s.model(s.op("ReduceMean", [y], axes=[2, 3], keepdims=0))
    graph = import_model(model)
    optimized = run_pipeline(graph, PIPELINE)
    transposes = [n for n in optimized.nodes if n.op == "Transpose"]
    assert len(transposes) == 1 and transposes[0].inputs[0] in optimized.inputs
    mean = next(n for n in optimized.nodes if n.op == "ReduceMean")
    assert tuple(mean.attrs["axes"]) == (1, 2)
    assert_equivalent(graph, optimized)


# ---- property test: random conv stacks through import, all passes, against onnxruntime ----


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_stacks())
def test_random_conv_stacks(case: tuple) -> None:
    model = build_conv_stack(*case)
    graph = import_model(model)
    rng = np.random.default_rng(case[-1])
    x = rng.uniform(-1, 1, (3, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    assert relative_error(run_reference(graph, x)[graph.outputs[0]], expected) <= 1e-4
    for steps in (FLOAT_PASSES, PIPELINE):
        optimized = run_pipeline(graph, steps)
        assert (
            relative_error(
                run_reference(optimized, x)[graph.outputs[0]],
                run_reference(graph, x)[graph.outputs[0]],
            )
            <= 1e-5
        )


def _reads(graph: Graph, name: str) -> int:
    return sum(name in n.inputs for n in graph.nodes) + (name in graph.outputs)


def _fusable_activations(graph: Graph) -> int:
    """Relu/Clip nodes whose producer fuses activations and is read by nothing else."""
    from edgenn.ops import spec_for

    producers = {o: n for n in graph.nodes for o in n.outputs}
    return sum(
        1
        for n in graph.nodes
        if n.op in ("Relu", "Clip")
        and (p := producers.get(n.inputs[0])) is not None
        and spec_for(p.op).fuses_activation
        and _reads(graph, n.inputs[0]) == 1
    )


def _dead(graph: Graph) -> int:
    return sum(1 for n in graph.nodes if not any(_reads(graph, o) for o in n.outputs))


def _conv_after_batchnorm_inputs(graph: Graph) -> int:
    producers = {o: n for n in graph.nodes for o in n.outputs}
    return sum(
        1
        for n in graph.nodes
        if n.op == "BatchNormalization" and getattr(producers.get(n.inputs[0]), "op", "") == "Conv"
    )


# pass -> (how many places in a graph its rewrite applies to, that count after the pass must be 0)
APPLIES: dict[str, Callable[[Graph], int]] = {
    "remove_identity": lambda g: sum(n.op in ("Identity", "Dropout") for n in g.nodes),
    "fuse_matmul_add": lambda g: sum(n.op in ("MatMul", "Gemm") for n in g.nodes),
    "fold_batchnorm": _conv_after_batchnorm_inputs,
    "fuse_activation": _fusable_activations,
    "remove_dead_nodes": _dead,
    "to_channels_last": lambda g: sum(
        n.op == "Conv" and not n.attrs.get("channels_last") for n in g.nodes
    ),
}


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
@pytest.mark.parametrize("pass_name", sorted(APPLIES))
def test_pass_rewrites_every_place_it_applies_to(pass_name: str, graph_name: str) -> None:
    """Where the pass's pattern occurs, the pass removes every occurrence (and so changes the graph);
    where it does not, the graph comes out the same."""
    graph = run_pipeline(GRAPHS[graph_name], prefix_until(pass_name))
    after = run_pipeline(graph, [(pass_name, PASSES[pass_name])])
    count = APPLIES[pass_name]
    assert count(after) == 0, f"{count(after)} of {count(graph)} places left"
    if count(graph):
        assert ops(after) != ops(graph) or any(
            a.attrs != b.attrs for a, b in zip(after.nodes, graph.nodes)
        )
    else:
        assert ops(after) == ops(graph)
