"""Fuzzing with a fixed seed and budget in CI (EDGENN_FUZZ_EXAMPLES=N runs longer locally): structural
mutations of ONNX graphs (attributes, initializer shapes and types, edges, input shapes) and byte
mutations of .edgenn and .tflite files, random input arrays. The property: an edgenn error (one line, exit 2 in
the CLI), or a model that runs, and then the runtime's integers equal the independent numpy spec's and
the generated C's (built with AddressSanitizer + UBSan). Never another
exception; never an unbounded allocation (the memory limit is lowered to 64 MiB here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from builders import STACKS
from conftest import HANG_LIMIT
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from int8_spec import run_spec
from onnx import numpy_helper
from test_codegen_c import c_outputs, needs_cc

from edgenn.errors import EdgennError
from edgenn.frontend.onnx import import_model
from edgenn.limits import memory_limit
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph
from edgenn.runtime import Runtime

EXAMPLES = int(os.environ.get("EDGENN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="EDGENN_FUZZ_EXAMPLES" not in os.environ,  # CI: the same mutants every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ODD_INTS = [-(2**31), -7, -1, 0, 1, 2, 3, 7, 64, 1000, 2**31 - 1]
BASES = {name: build() for name, build in STACKS.items()}


Pick = Callable[[Sequence[Any]], Any]  # chooses one of the options (hypothesis, or a seeded rng)


def mutate(pick: Pick) -> tuple[str, onnx.ModelProto]:
    """A base model with 1-3 structural mutations, every choice made by `pick`."""
    name = pick(sorted(BASES))
    model = onnx.ModelProto()
    model.CopyFrom(BASES[name])
    graph = model.graph
    for _ in range(pick([1, 2, 3])):
        kind = pick(["attr", "ints", "init_shape", "init_type", "edge", "input"])
        if kind in ("attr", "ints"):
            nodes = [n for n in graph.node if n.attribute]
            if not nodes:
                continue
            attr = pick(list(pick(nodes).attribute))
            if attr.type == onnx.AttributeProto.INT:
                attr.i = pick(ODD_INTS)
            elif attr.type == onnx.AttributeProto.INTS and attr.ints:
                attr.ints[pick(range(len(attr.ints)))] = pick(ODD_INTS)
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = pick([0.0, -1.0, 1e-30, 1e30, float("nan")])
        elif kind == "init_shape" and graph.initializer:
            init = pick(list(graph.initializer))
            dims = [pick(range(1, 7)) for _ in range(pick(range(5)))]
            data = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(data, init.name))
        elif kind == "init_type" and graph.initializer:
            init = pick(list(graph.initializer))
            dtype = pick([np.float16, np.float64, np.int64, np.int8, np.bool_])
            data = numpy_helper.to_array(init).astype(dtype)
            init.CopyFrom(numpy_helper.from_array(data, init.name))
        elif kind == "edge" and len(graph.node) > 1:
            node = pick(list(graph.node))
            names = [graph.input[0].name, *(o for n in graph.node for o in n.output)]
            names += [i.name for i in graph.initializer]
            if node.input:
                node.input[pick(range(len(node.input)))] = pick(names)
        elif kind == "input":
            dims = graph.input[0].type.tensor_type.shape.dim
            if len(dims) > 1:
                dims[pick(range(1, len(dims)))].dim_value = pick([1, 2, 3, 7, 17, 10**6])
    return name, model


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, onnx.ModelProto]:
    return mutate(lambda options: draw(st.sampled_from(list(options))))


def convert_mutant(name: str, model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    """The mutant through import, optimization, calibration, quantization and the runtime: (fixed
    graph, int8 inputs, outputs), or the EdgennError that refused it."""
    graph = optimize(import_model(model, name=name))
    shape = graph.type_of(graph.inputs[0]).shape[1:]
    x = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
    fixed = quantize_graph(graph, calibrate(graph, x))
    xq = quantize_array(x[:3], fixed.type_of(fixed.inputs[0]).qparams)
    return fixed, xq, Runtime(fixed).run(xq)


@FUZZ
@given(mutants())
def test_mutated_onnx_graphs_give_edgenn_errors_or_spec_exact_models(case: tuple) -> None:
    name, model = case
    with memory_limit(64 << 20):
        try:
            fixed, xq, ours = convert_mutant(name, model)
        except EdgennError as err:
            event(f"refused: {type(err).__name__}")
            return
    event("accepted")
    assert isinstance(ours, np.ndarray)
    want = run_spec(fixed, xq)
    assert np.array_equal(ours.reshape(want.shape), want)
    c_equals_runtime(fixed, xq, ours)


def c_equals_runtime(fixed, xq: np.ndarray, ours: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """An accepted mutant's generated C, built with AddressSanitizer + UBSan, gives the same bytes
    (or the C backend refuses the model by name)."""
    import tempfile

    if needs_cc.args[0]:
        return  # no C compiler here: the C tests say so visibly
    with tempfile.TemporaryDirectory(prefix="edgenn-fuzz-") as folder:
        try:
            got = c_outputs(fixed, xq, Path(folder))
        except EdgennError as err:
            if "no C kernel" in str(err):
                event("C refused")
                return
            raise
    event("C equal")
    assert np.array_equal(got, ours.reshape(len(xq), -1))


@pytest.fixture(scope="module")
def edgenn_file() -> bytes:
    from conftest import MODELS

    from edgenn.compile import convert
    from edgenn.serialize import to_bytes

    return to_bytes(convert(MODELS / "digits_cnn.onnx").fixed_graph)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_edgenn_files_give_edgenn_errors_or_run(edgenn_file: bytes, edits: list) -> None:
    from edgenn.serialize import from_bytes

    data = bytearray(edgenn_file)
    for position, value in edits:
        data[position % len(data)] = value
    with memory_limit(64 << 20):
        try:
            graph = from_bytes(bytes(data))
            t = graph.type_of(graph.inputs[0])
            Runtime(graph).run(np.zeros((1, *t.shape[1:]), t.dtype.numpy))
            event("accepted")
        except EdgennError as err:
            event(f"refused: {type(err).__name__}")


TFLITE_BASES = ["residual_int8", "cnn_per_tensor", "mlp_16x8"]  # int8 per-channel/-tensor, 16x8
TFLM_SAYS = """
import sys
import numpy as np
from edgenn.interop import run_tflm
np.save(sys.argv[3], run_tflm(open(sys.argv[1], "rb").read(), np.load(sys.argv[2])))
"""


def tflm_output(model: bytes, x: np.ndarray, folder: Path) -> np.ndarray | None:
    """TFLM's output in a child process (TFLM itself is not hardened against corrupt files: a crash
    there is its refusal), or None when it refuses the file."""
    (folder / "m.tflite").write_bytes(model)
    np.save(folder / "x.npy", x)
    args = [str(folder / name) for name in ("m.tflite", "x.npy", "y.npy")]
    done = subprocess.run(
        [sys.executable, "-c", TFLM_SAYS, *args], capture_output=True, timeout=HANG_LIMIT
    )
    return np.load(folder / "y.npy") if done.returncode == 0 else None


@FUZZ
@given(
    st.sampled_from(TFLITE_BASES),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_tflite_files_give_edgenn_errors_or_tflm_outputs(base: str, edits: list) -> None:
    """Byte edits anywhere in a converter-made file: refused by name, or run to TFLM's outputs
    wherever TFLM runs the mutant too."""
    import tempfile

    from conftest import ROOT

    from edgenn.frontend.tflite import read_tflite

    data = bytearray((ROOT / "tests" / "data" / "conformance" / f"{base}.tflite").read_bytes())
    for position, value in edits:
        data[position % len(data)] = value
    with memory_limit(64 << 20):
        try:
            runtime = Runtime(read_tflite(bytes(data), base))
            t = runtime.graph.type_of(runtime.graph.inputs[0])
            x = np.random.default_rng(0).integers(-128, 128, (2, *t.shape[1:]))
            x = x.astype(t.dtype.numpy)
            ours = runtime.run(x)
        except EdgennError as err:
            event(f"refused: {type(err).__name__}")
            return
    with tempfile.TemporaryDirectory(prefix="edgenn-fuzz-") as folder:
        want = tflm_output(bytes(data), x, Path(folder))
    if want is None:
        event("accepted; TFLM refuses")
        return
    event("accepted; equal to TFLM")
    assert np.array_equal(np.asarray(ours).reshape(want.shape), want)


@pytest.fixture(scope="module")
def mlp_runtime() -> Runtime:
    from conftest import MODELS

    from edgenn.compile import convert

    return Runtime(convert(MODELS / "digits_mlp.onnx").fixed_graph)


@FUZZ
@given(
    st.sampled_from(
        [np.float32, np.float64, np.float16, np.int8, np.int64, np.uint8, np.bool_, np.complex64]
    ),
    st.lists(st.integers(0, 70), min_size=0, max_size=3),
    st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e30, -3.0]),
)
def test_random_input_arrays_give_edgenn_errors_or_outputs(
    mlp_runtime: Runtime, dtype: type, shape: list[int], special: float
) -> None:
    """Inputs of any type and shape: the runtime quantizes and runs them or refuses them by name."""
    values = np.random.default_rng(len(shape)).uniform(-2, 2, shape or [1])
    if values.size:
        values.reshape(-1)[0] = special
    with np.errstate(all="ignore"):
        array = values.astype(dtype)
    try:
        out = mlp_runtime.run(*mlp_runtime.quantize(array))
    except EdgennError as err:
        event(f"refused: {type(err).__name__}")
        return
    event("accepted")
    assert isinstance(out, np.ndarray) and out.shape == (array.shape[0], 10)


CAPPED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # a blow-up is a MemoryError here
sys.path.insert(0, sys.argv[1])
import numpy as np
from test_fuzz import convert_mutant, mutate
from edgenn.errors import EdgennError
rng = np.random.default_rng(int(sys.argv[2]))
counts = {"refused": 0, "accepted": 0}
for _ in range(int(sys.argv[3])):
    try:
        convert_mutant(*mutate(lambda options: list(options)[rng.integers(len(options))]))
        counts["accepted"] += 1
    except EdgennError:
        counts["refused"] += 1
print(json.dumps(counts))
"""


def test_mutants_under_an_address_space_limit() -> None:
    """Seeded mutants in a process capped at 8 GiB of address space, with the default 1 GiB limit
    per allocation: no case exhausts memory (a MemoryError or a kill would fail the run)."""
    cases = max(200, EXAMPLES * 3)
    done = subprocess.run(
        [sys.executable, "-c", CAPPED, str(Path(__file__).parent), "11", str(cases)],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{cases} capped mutants: {counts}")
    assert sum(counts.values()) == cases
