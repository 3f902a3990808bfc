"""Every kernel path this CPU can run (the generic kernels and each CPU feature's variants) gives the
spec's integers on random single layers: convolutions in each mode (GATHER read in place or gathered,
OUTER first layers, depthwise with multipliers), 1-D and 2-D, strides, dilations, paddings, channel
counts on both sides of the vector blocks, and dense layers of odd widths; in both rounding modes.
Also a binary op in place over its input, against the spec."""

from __future__ import annotations

import numpy as np
import pytest
from builders import Stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from int8_spec import run_spec
from test_quantization import quantized

from edgenn import ops
from edgenn.frontend.onnx import import_model
from edgenn.passes import optimize
from edgenn.runtime import Runtime
from edgenn.runtime.interpreter import host_features
from edgenn.runtime.plan import overlapping

CHANNELS = [1, 2, 3, 4, 5, 8, 15, 16, 17, 24, 32, 33, 64, 72]


def cpu_paths() -> list[frozenset[str]]:
    """The generic path, then each variant feature this machine has."""
    variants = {v.feature for k in ops.KERNELS.values() for v in k.variants}
    return [frozenset()] + [frozenset({f}) for f in sorted(variants & host_features())]


def assert_every_path_matches_spec(graph, samples: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(seed).uniform(-1, 1, (samples, *graph.type_of(graph.inputs[0]).shape[1:]))  # fmt: skip
    fixed, xq = quantized(graph, x.astype(np.float32))
    for rounding in ("double", "single"):
        want = run_spec(fixed, xq, single=rounding == "single")
        for path in cpu_paths():
            got = Runtime(fixed, rounding, cpu_features=path).run(xq)
            assert np.array_equal(np.asarray(got).reshape(want.shape), want), (rounding, path)


@st.composite
def conv_layers(draw: st.DrawFn) -> tuple:
    one_d = draw(st.booleans())
    depthwise = draw(st.booleans())
    c = draw(st.sampled_from(CHANNELS))
    multiplier = draw(st.sampled_from([1, 1, 2])) if depthwise else 1
    out = c * multiplier if depthwise else draw(st.sampled_from(CHANNELS))
    k = draw(st.integers(1, 5))
    kw = k if one_d else draw(st.integers(1, 5))
    dilation = draw(st.sampled_from([1, 1, 2]))
    span = (max(k, kw) - 1) * dilation + 1
    size = draw(st.integers(span, span + 9))
    return (
        one_d,
        c,
        out,
        c if depthwise else 1,
        (k,) if one_d else (k, kw),
        draw(st.integers(1, 3)),
        dilation,
        draw(st.integers(0, 2)),
        size,
        draw(st.integers(0, 999)),
    )


def conv_model(one_d, c, out, group, kernel, stride, dilation, pad, size, seed):  # type: ignore[no-untyped-def]
    r = len(kernel)
    pad = min(pad, min(kernel) - 1)  # ONNX pads below the kernel size
    s = Stack((1, c, *([size] * r)), seed=seed)
    y = s.conv(
        "input",
        c,
        out,
        kernel,
        group=group,
        strides=[stride] * r,
        dilations=[dilation] * r,
        pads=[pad] * (2 * r),
    )
    return s.model(s.op("Relu", [y]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_layers())
def test_every_conv_path_matches_the_spec(case: tuple) -> None:
    graph = optimize(import_model(conv_model(*case)))
    assert_every_path_matches_spec(graph, 3, case[-1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 700),
    st.sampled_from([1, 3, 8, 16, 17, 48, 64, 65, 128, 200]),
    st.integers(1, 9),
    st.integers(0, 999),
)
def test_every_dense_path_matches_the_spec(k: int, n: int, samples: int, seed: int) -> None:
    s = Stack((1, k), seed=seed)
    graph = optimize(import_model(s.model(s.gemm("input", k, n))))
    assert_every_path_matches_spec(graph, samples, seed)


def test_add_in_place_over_its_input_matches_the_spec() -> None:
    """A residual Add whose output the planner may place over an input: the vector path computes
    through the patch, and the result is the spec's."""
    s = Stack((1, 16, 20, 20), seed=3)
    a = s.op("Relu", [s.conv("input", 16, 16, (3, 3), pads=[1, 1, 1, 1])])
    b = s.op("Relu", [s.conv(a, 16, 16, (1, 1))])
    graph = optimize(import_model(s.model(s.op("Add", [a, b]))))
    assert_every_path_matches_spec(graph, 4, 3)


@pytest.mark.parametrize(
    "shape, out, kernel, pads",
    [
        ((1, 64, 9, 11), 64, (1, 1), 0),
        ((1, 16, 10, 12), 48, (3, 3), 1),
        ((1, 72, 70), 40, (3,), 1),
        ((1, 3, 14, 13), 32, (5, 5), 2),
    ],
    ids=["1x1 in place", "3x3 gathered, odd blocks", "1-D", "first layer"],
)
def test_layers_the_tiles_take_match_the_spec(shape, out, kernel, pads) -> None:  # type: ignore[no-untyped-def]
    """Layers big enough for the AMX variants' tiles (tiles_pay), each mode they serve: every path
    (the AMX one where this CPU has it) gives the spec's integers."""
    from edgenn.ops.conv import CONV_GATHER, CONV_OUTER, CONV_ROW, tiles_pay

    s = Stack(shape, seed=6)
    y = s.conv("input", shape[1], out, kernel, pads=[pads] * (2 * len(kernel)))
    graph = optimize(import_model(s.model(s.op("Relu", [y]))))
    fixed, _ = quantized(graph, np.zeros((1, *shape[1:]), np.float32) + 0.5)
    f = CONV_ROW
    rows = [
        r for r in Runtime(fixed).program.rows if r[0] in (CONV_GATHER.opcode, CONV_OUTER.opcode)
    ]

    def window(r):  # type: ignore[no-untyped-def]  # the kernel's bytes of one window
        if r[0] == CONV_GATHER.opcode:
            return r[f.stride]
        return -(-r[f.kh] * r[f.kw] * r[f.c] // 4) * 4

    assert rows and all(tiles_pay(window(r), r[f.oc], r[f.oh] * r[f.ow]) for r in rows)
    assert_every_path_matches_spec(graph, 2, 6)


@pytest.mark.parametrize(
    "shape, out, kernel, attrs",
    [
        ((1, 8, 7, 9), 8, (1, 1), {}),
        ((1, 16, 9, 10), 24, (3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 3, 12, 13), 8, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 5, 11, 12), 24, (2, 3), {"dilations": [1, 2]}),
        ((1, 8, 9, 23), 8, (3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
        ((1, 24, 30), 24, (5,), {"group": 24, "strides": [2], "pads": [2, 2]}),
        ((1, 8, 3, 150), 8, (3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
        ((1, 4, 2, 140), 8, (1, 3), {"group": 4, "strides": [1, 2]}),
        ((1, 16, 300), 16, (3,), {"group": 16, "pads": [1, 1]}),
    ],
    ids=[
        "1x1 eight channels",
        "a last single block",
        "odd first layer",
        "dilated width",
        "depthwise eights",
        "1-D depthwise strided",
        "depthwise rows of several spans",
        "depthwise multiplier, strided long rows",
        "1-D depthwise, several spans",
    ],  # fmt: skip
)
def test_layers_the_pair_cores_split_match_the_spec(shape, out, kernel, attrs) -> None:  # type: ignore[no-untyped-def]
    """Layers that take each split of the AVX2 pair and tap cores (eight windows of one channel
    block, two blocks then a single one, runs padded to even, gathered dilated windows, depthwise
    sets of eight pixels then four then one, output rows longer than one span): every path gives the spec's integers."""
    s = Stack(shape, seed=9)
    y = s.conv("input", shape[1], out, kernel, **attrs)
    graph = optimize(import_model(s.model(s.op("Relu", [y]))))
    assert_every_path_matches_spec(graph, 2, 9)


def test_dense_blocks_of_many_samples_match_the_spec() -> None:
    """A batch of more samples than one block of the AVX2 dense variant, with an odd K: every path
    gives the spec's integers."""
    s = Stack((1, 37), seed=4)
    graph = optimize(import_model(s.model(s.gemm("input", 37, 24))))
    assert_every_path_matches_spec(graph, 70, 4)


@pytest.mark.parametrize(
    "shape, kernel, group",
    [
        ((1, 16, 20, 20), (3, 3), 1),
        ((1, 8, 17, 23), (5, 3), 1),
        ((1, 32, 200), (5,), 1),
        ((1, 32, 12, 9), (3, 3), 32),
    ],
    ids=["3x3", "5x3", "1-D", "depthwise"],
)
def test_conv_written_over_its_input_matches_the_spec(shape, kernel, group) -> None:  # type: ignore[no-untyped-def]
    """A residual block: conv, conv, and the Add of the block's input. The second conv's input dies
    there, so its output goes over it, starting below it by the bytes its kernels write ahead of
    their reads: the plan is smaller than with the tensors apart, no live buffers share a byte, and
    every path gives the spec's integers."""
    c = shape[1]
    s = Stack(shape, seed=5)
    pads = [k // 2 for k in kernel] * 2
    a = s.op("Relu", [s.conv("input", c, c, kernel, pads=pads)])
    first = s.op("Relu", [s.conv(a, c, c, kernel, group=group, pads=pads)])
    second = s.op("Relu", [s.conv(first, c, c, kernel, pads=pads)])
    graph = optimize(import_model(s.model(s.op("Add", [a, second]))))
    x = np.random.default_rng(5).uniform(-1, 1, (2, *shape[1:])).astype(np.float32)
    fixed, _ = quantized(graph, x)
    program = Runtime(fixed).program
    over = [
        n
        for n in fixed.nodes
        if n.op == "Conv"
        and program.offsets[n.outputs[0]]
        < program.offsets[n.inputs[0]]
        < program.offsets[n.outputs[0]] + fixed.type_of(n.outputs[0]).nbytes
    ]
    assert over, "a conv writes over its dying input"
    assert overlapping(program.plan) == []
    conv = over[0]
    apart = sum(fixed.type_of(n).nbytes for n in (conv.inputs[0], conv.outputs[0], a))
    assert program.plan.size < apart
    assert_every_path_matches_spec(graph, 2, 5)


def test_dense_models_batch_layer_by_layer_with_the_same_integers() -> None:
    """A model of dense layers runs a large batch in blocks (one program whose leading dimension is
    the block): the outputs equal the spec's and the sample-by-sample run's, remainder included; a
    convolutional model keeps to sample by sample."""
    from conftest import MODELS
    from test_codegen_c import fixed_model

    from edgenn.frontend.tflite import load_tflite
    from edgenn.runtime.batched import BLOCK

    mlp, _ = fixed_model("digits_mlp")
    dense_tflite = load_tflite(
        MODELS.parent / "tests" / "data" / "mlperf_tiny" / "ad01_int8.tflite"
    )
    for fixed in (mlp, dense_tflite):
        t = fixed.type_of(fixed.inputs[0])
        xq = (
            np.random.default_rng(5)
            .integers(-128, 128, (2 * BLOCK + 5, *t.shape[1:]))
            .astype(np.int8)
        )
        runtime = Runtime(fixed)
        assert runtime.batch_mode.startswith("layer by layer")
        together = runtime.run(xq)
        one_by_one = np.concatenate([runtime.run(xq[i : i + 1]) for i in range(len(xq))])
        assert np.array_equal(together, one_by_one)
        assert np.array_equal(np.asarray(together).reshape(len(xq), -1), run_spec(fixed, xq).reshape(len(xq), -1))  # fmt: skip
    cnn, _ = fixed_model("digits_cnn")
    assert Runtime(cnn).batch_mode == "sample by sample through one arena"
