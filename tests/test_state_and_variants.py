"""What the runtime opens to kernels beyond today's ops: a persistent state region planned apart from
the arena (bytes that outlive a call, zeroed by `Runtime.reset_state`), and kernel variants by CPU
feature (every variant this machine can run gives the spec's integers).

No shipped op keeps state yet (spiking layers will), so the state test registers a small stateful
kernel of its own for its duration: a saturating running sum, y_t = clamp(y_(t-1) + x_t)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import edgenn.ops as ops
from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value
from edgenn.ops import Int8Spec, OpSpec, register, register_kernel, row_layout, same_type
from edgenn.runtime import Runtime
from edgenn.runtime.interpreter import host_features

RUNNING_SUM_ROW = row_layout("running_sum", "x y n state")


@njit(cache=False)
def running_sum(row, arena, weights, biases, mults, shifts, rounding, patch, acc, state):  # type: ignore[no-untyped-def]
    f = RUNNING_SUM_ROW
    x, y, n, s = row[f.x], row[f.y], row[f.n], row[f.state]
    for i in range(n):
        total = min(127, max(-128, np.int64(state[s + i]) + arena[x + i]))
        state[s + i] = total
        arena[y + i] = total


@pytest.fixture
def running_sum_op():  # type: ignore[no-untyped-def]
    """The op and its kernel in the registry for one test, then removed (opcodes stay dense)."""

    def prepare(node: Node, graph: Graph, b) -> list[int]:  # type: ignore[no-untyped-def]
        n = int(np.prod(b.shape(node.inputs[0])))
        return kernel.row(
            x=b.arena(node.inputs[0]), y=b.arena(node.outputs[0]), n=n, state=b.state(n)
        )

    register(
        OpSpec(
            "RunningSum",
            same_type,
            lambda inputs, attrs: [np.cumsum(inputs[0], axis=0)],
            int8=Int8Spec(prepare=prepare),
        )
    )
    kernel = register_kernel("running_sum", running_sum, RUNNING_SUM_ROW, state=True)
    yield
    del ops.REGISTRY["RunningSum"], ops.KERNELS["running_sum"]


def running_sum_graph(width: int) -> Graph:
    t = TensorType(DType.INT8, (1, width), QParams((0.1,), (0,)))
    values = {"x": Value("x", t), "y": Value("y", t)}
    return Graph("stream", (Node("sum", "RunningSum", ("x",), ("y",)),), values, ("x",), ("y",))


def test_state_persists_across_samples_and_calls_until_reset(running_sum_op) -> None:  # type: ignore[no-untyped-def]
    runtime = Runtime(running_sum_graph(5))
    assert runtime.state_bytes == 5 and runtime.program.state_offsets == {"sum": 0}
    steps = np.random.default_rng(0).integers(-40, 60, (6, 5)).astype(np.int8)
    want = np.zeros((6, 5), np.int64)
    for t in range(6):  # the spec: a saturating sum over the stream
        want[t] = np.clip((want[t - 1] if t else 0) + steps[t], -128, 127)
    assert np.array_equal(runtime.run(steps), want)  # one batch: six consecutive time steps
    runtime.reset_state()
    first = np.concatenate([runtime.run(steps[:2]), runtime.run(steps[2:])])  # two calls
    assert np.array_equal(first, want)
    assert np.array_equal(Runtime(running_sum_graph(5)).run(steps[:1]), want[:1])  # its own state
    runtime.reset_state()
    assert not runtime.state.any()


def test_stateless_models_have_no_state() -> None:
    from test_codegen_c import fixed_model

    fixed, _ = fixed_model("digits_cnn")
    runtime = Runtime(fixed)
    assert runtime.state_bytes == 0 and runtime.program.state_offsets == {}
    runtime.reset_state()  # harmless


def test_every_variant_this_cpu_runs_matches_the_spec() -> None:
    """Each kernel with variants, in each variant whose CPU feature this machine has (and in the
    generic path), on the bundled models and the op examples that use it, against the spec."""
    from builders import int8_examples
    from int8_spec import run_spec
    from test_codegen_c import fixed_model
    from test_quantization import quantized_example

    with_variants = {k.opcode: k for k in ops.KERNELS.values() if k.variants}
    if not with_variants:
        pytest.skip("no kernel declares CPU variants")
    features = host_features()
    choices = [frozenset()] + sorted(
        {frozenset({v.feature}) for k in with_variants.values() for v in k.variants}
        & {frozenset({f}) for f in features},
        key=sorted,
    )
    cases = [fixed_model(name) for name in ("digits_mlp", "digits_cnn", "mnist1d_cnn")]
    rng = np.random.default_rng(0)
    for example in int8_examples():
        try:
            cases.append(quantized_example(example, rng, 8))
        except pytest.skip.Exception:
            continue
    used = 0
    for fixed, xq in cases:
        runtime = Runtime(fixed, cpu_features=frozenset())
        if not with_variants.keys() & {int(op) for op in runtime.program.rows[:, 0]}:
            continue
        used += 1
        want = run_spec(fixed, xq)
        for choice in choices:
            got = Runtime(fixed, cpu_features=choice).run(xq)
            assert np.array_equal(np.asarray(got).reshape(want.shape), want), (fixed.name, choice)
    assert used, "no model uses a kernel with variants"
    print(f"variants checked: {sorted(map(sorted, choices))} on {used} models")


PRECOMPILE_CHILD = """
import sys
from edgenn.ops import KERNELS
from edgenn.runtime import Runtime
from edgenn.runtime.interpreter import host_features
from edgenn.serialize import load_graph

runtime = Runtime(load_graph(sys.argv[1]))
for op in sorted({int(op) for op in runtime.program.rows[:, 0]}):
    kernel = next(k for k in KERNELS.values() if k.opcode == op)
    stats = kernel.function_for(host_features())[1].stats
    # compiled by the precompile children: this process only loaded it from the cache
    print(kernel.name, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_cold_start_compiles_kernels_in_children(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With an empty cache, the kernels are compiled by child processes with the signature the
    dispatch calls them with, so the parent finds each one in the cache (a mismatch would compile
    it again here: a cache miss)."""
    import os
    import subprocess
    import sys

    from test_codegen_c import fixed_model

    from edgenn.runtime.precompile import workers
    from edgenn.serialize import save_graph

    if workers() < 2:
        pytest.skip("one CPU: kernels compile in the process itself")
    save_graph(fixed_model("digits_cnn")[0], tmp_path / "cnn.edgenn")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", PRECOMPILE_CHILD, str(tmp_path / "cnn.edgenn")],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiling kernels (first run only)" in done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert len(lines) >= 3
    for name, hits, misses in lines:
        assert (int(hits), int(misses)) == (1, 0), name
