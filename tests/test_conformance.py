"""Conformance on files edgenn did not make: the MLPerf Tiny reference models (tests/data/mlperf_tiny/)
and TensorFlow converter files under its other settings (tests/data/conformance/, made by
tools/make_tflite_fixtures.py). Each runs bit for bit as TensorFlow Lite Micro runs it on the Numba
runtime (twice, the same both times), on host C under AddressSanitizer + UBSan and on a Cortex-M4 in
QEMU; a file edgenn cannot run is refused with the operator or layer named."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tflite", reason="the tflite extra is not installed")
pytest.importorskip("tflite_micro", reason="tflite-micro (TensorFlow Lite Micro) is not installed")

from test_codegen_c import assert_same, c_outputs, needs_arm, needs_cc  # noqa: E402

from edgenn.errors import EdgennError  # noqa: E402
from edgenn.frontend.tflite import load_tflite  # noqa: E402
from edgenn.interop import run_tflm  # noqa: E402
from edgenn.ir import DType, Graph  # noqa: E402
from edgenn.quant.quantize import quantize_array  # noqa: E402
from edgenn.runtime import Runtime  # noqa: E402

DATA = Path(__file__).parent / "data"
MLPERF = sorted((DATA / "mlperf_tiny").glob("*.tflite"))
CONVERTER = sorted((DATA / "conformance").glob("*.tflite"))
# what edgenn refuses, and the words that must name why
REFUSED = {
    "lstm_int8": "operator 0 is UNIDIRECTIONAL_SEQUENCE_LSTM",
}
RUNS = [p for p in (*MLPERF, *CONVERTER) if p.stem not in REFUSED]
SAMPLES = 20


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@cache
def case(path: Path) -> tuple[Graph, np.ndarray, np.ndarray]:
    """The file's graph, its inputs as the file takes them, and TFLM's outputs for them."""
    graph = load_tflite(path)
    given = path.with_name(f"{path.stem}_inputs.npy")
    if given.exists():
        x = np.load(given)
    else:  # seeded random inputs over the whole integer range
        t = graph.type_of(graph.inputs[0])
        info = np.iinfo(t.dtype.numpy)
        rng = np.random.default_rng(7)
        x = rng.integers(info.min, info.max + 1, (SAMPLES, *t.shape[1:])).astype(t.dtype.numpy)
    return graph, x, run_tflm(path.read_bytes(), x)


def integer_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float inputs (a file with QUANTIZE at its edge) in the graph's own integer type."""
    if x.dtype != np.float32:
        return x
    qp = graph.type_of(graph.inputs[0]).qparams
    assert qp is not None
    return quantize_array(x, qp)


@pytest.mark.parametrize("path", RUNS, ids=ids(RUNS))
def test_runtime_equals_tflm_and_repeats(path: Path) -> None:
    graph, x, want = case(path)
    runtime = Runtime(graph)
    run = runtime.run_float if x.dtype == np.float32 else runtime.run
    first, second = run(x), run(x)
    assert isinstance(first, np.ndarray) and isinstance(second, np.ndarray)
    assert first.dtype == want.dtype
    differing = int(np.count_nonzero(first != want.reshape(first.shape)))
    print(f"{path.stem}: {differing} of {first.size} output elements differ from TFLM")
    assert differing == 0
    assert np.array_equal(first, second)


def test_conformance_covers_the_converter_settings() -> None:
    """The per-tensor weights the MLPerf files carry, and the converter's other settings, are all here."""
    kinds = {p.stem for p in RUNS}
    assert {"residual_per_tensor", "cnn_per_tensor", "mlp_dense_per_tensor"} <= kinds
    assert {"residual_float_io", "mlp_float_io", "mlp_16x8", "residual_logits_16x8"} <= kinds
    assert len(MLPERF) == 5
    graph = load_tflite(DATA / "mlperf_tiny" / "ad01_int8.tflite")
    per_tensor_fc = [n for n in graph.nodes if n.op == "FullyConnected"]
    assert per_tensor_fc and all(
        len(graph.type_of(n.inputs[1]).qparams.scale) == 1  # type: ignore[union-attr]
        for n in per_tensor_fc
    )
    wide = load_tflite(DATA / "conformance" / "mlp_16x8.tflite")
    assert graph.type_of(graph.inputs[0]).dtype == DType.INT8
    assert wide.type_of(wide.inputs[0]).dtype == DType.INT16


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_files_are_refused_by_name(name: str) -> None:
    path = DATA / "conformance" / f"{name}.tflite"
    with pytest.raises(EdgennError, match=re.escape(REFUSED[name])):
        Runtime(load_tflite(path))


C_RUNS = [p for p in RUNS if load_tflite(p).type_of(load_tflite(p).inputs[0]).dtype == DType.INT8]


@needs_cc
@pytest.mark.parametrize("path", C_RUNS, ids=ids(C_RUNS))
def test_host_c_with_sanitizers_equals_tflm(path: Path, tmp_path: Path) -> None:
    graph, x, want = case(path)
    xq = integer_inputs(graph, x)
    got = c_outputs(graph, xq, tmp_path, name=path.stem)
    assert_same(got, Runtime(graph).run(xq).reshape(len(xq), -1))  # type: ignore[union-attr]
    if x.dtype != np.float32:
        assert_same(got, want.reshape(len(xq), -1))


@needs_arm
@pytest.mark.parametrize("path", MLPERF, ids=ids(MLPERF))
def test_cortex_m4_c_equals_tflm_on_a_sample(path: Path, tmp_path: Path) -> None:
    graph, x, want = case(path)
    got = c_outputs(graph, x[:2], tmp_path, "cortex-m4-qemu", extra=(), name=path.stem)
    assert_same(got, want[:2].reshape(2, -1))


# ---- the commands a user checks a third-party file with ----


def test_run_takes_a_tflite_file_without_backend(tmp_path: Path) -> None:
    from test_cli import run_cli

    path = DATA / "mlperf_tiny" / "kws_ref_model.tflite"
    _, x, want = case(path)
    np.save(tmp_path / "x.npy", x)
    result = run_cli("run", str(path), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "y.npy"), want.reshape(len(x), -1))


@needs_cc
@pytest.mark.parametrize("name", ["mlperf_tiny/ad01_int8", "conformance/residual_float_io"])
def test_verify_random_with_c_column(name: str) -> None:
    from test_cli import run_cli

    result = run_cli(
        "verify", str(DATA / f"{name}.tflite"), "--random", "4", "--c", "host", "--json"
    )
    assert result.returncode == 0, result.stderr
    rows = {row["backend"]: row for row in json.loads(result.stdout)["backends"]}
    assert rows["TFLM (tflite-micro)"]["differing"] == 0
    assert rows["generated C (host)"]["differing"] == 0
    assert rows["generated C (host)"]["elements"] == rows["TFLM (tflite-micro)"]["elements"] > 0


def test_verify_without_inputs_is_refused() -> None:
    from test_cli import run_cli

    result = run_cli("verify", str(DATA / "mlperf_tiny" / "ad01_int8.tflite"))
    assert result.returncode == 2
    assert "--data FILE or --random N" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["digits_cnn", "mnist1d_cnn"])
def test_edgenn_16x8_files_read_back_bit_exact(name: str) -> None:
    """edgenn's own 16x8 export reads back and runs as TFLM runs it (asymmetric padding is written as
    an int16 PADV2, which had no kernel)."""
    from conftest import MODELS

    from edgenn.codegen.tflite import to_tflite
    from edgenn.compile import convert
    from edgenn.frontend.tflite import read_tflite

    data = to_tflite(convert(MODELS / f"{name}.onnx", precision="int16").fixed_graph)
    graph = read_tflite(data, name)
    wide_pads = [
        n for n in graph.nodes if n.op == "Pad" and graph.type_of(n.outputs[0]).dtype == DType.INT16
    ]
    assert bool(wide_pads) == (name == "mnist1d_cnn")  # its asymmetric 1-D padding: an int16 PADV2
    x = np.load(MODELS / f"{name}_test.npz")["x"][:50]
    t = graph.type_of(graph.inputs[0])
    assert t.qparams is not None
    xq = quantize_array(x, t.qparams)
    ours = Runtime(graph).run(xq)
    assert np.array_equal(run_tflm(data, xq).reshape(ours.shape), ours)


@pytest.mark.parametrize("builtin", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", [2.0**-12, 2.0**-11, 3e-4, 1 / 3000, 0.01, 2.0**-20])
def test_int16_logistic_and_tanh_equal_tflm_on_every_input(builtin: str, scale: float) -> None:
    """16x8 LOGISTIC / TANH (TFLM interpolates a sigmoid table) over all 65,536 int16 inputs, at
    power-of-two input scales (a bare shift) and others (a Q15 multiplier)."""
    from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
    from edgenn.frontend.tflite import read_tflite
    from edgenn.ir import QParams

    lowered = Lowered("m", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, 65536), DType.INT16, QParams((scale,), (0,)))
    lowered.tensors["y"] = FileTensor("y", (1, 65536), DType.INT16, QParams((2.0**-15,), (0,)))
    lowered.ops.append(FileOp(builtin, ["x"], ["y"]))
    data = serialize(lowered)
    x = np.arange(-32768, 32768, dtype=np.int16).reshape(1, -1)
    ours = Runtime(read_tflite(data, "m")).run(x)
    assert len(np.unique(ours)) > 100  # the curve, not a constant
    assert np.array_equal(run_tflm(data, x).reshape(ours.shape), ours)


@pytest.mark.parametrize("depth", [2, 10, 100])
@pytest.mark.parametrize("scale", [1e-4, 1e-3, 0.01, 2.0**-10])
def test_int16_softmax_equals_tflm(depth: int, scale: float) -> None:
    """16x8 SOFTMAX (TFLM's exp and 1/(1+x) tables, built in float32 at Prepare) on 512 rows: half
    spread over the whole int16 range, half within a few hundred steps of each other."""
    from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
    from edgenn.frontend.tflite import read_tflite
    from edgenn.ir import QParams

    rows = 512
    lowered = Lowered("m", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, rows, depth), DType.INT16, QParams((scale,), (0,)))
    lowered.tensors["y"] = FileTensor(
        "y", (1, rows, depth), DType.INT16, QParams((2.0**-15,), (0,))
    )
    lowered.ops.append(FileOp("SOFTMAX", ["x"], ["y"], ("SoftmaxOptions", {"beta": 1.0})))
    data = serialize(lowered)
    rng = np.random.default_rng(depth)
    wide = rng.integers(-32768, 32768, (rows // 2, depth))
    near = rng.integers(-300, 300, (rows // 2, depth)) + rng.integers(-30000, 30000, (rows // 2, 1))
    x = np.concatenate([wide, near]).astype(np.int16).reshape(1, rows, depth)
    ours = Runtime(read_tflite(data, "m")).run(x)
    assert len(np.unique(ours)) > 100  # a spread of probabilities, not a constant
    assert np.array_equal(run_tflm(data, x).reshape(ours.shape), ours)


@pytest.mark.parametrize("builtin", ["MUL", "ADD", "SUB"])
def test_int16_binary_ops_equal_tflm(builtin: str) -> None:
    """16x8 MUL / ADD / SUB of two activations with broadcasting, random int16 values."""
    from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
    from edgenn.frontend.tflite import read_tflite
    from edgenn.ir import QParams

    lowered = Lowered("m", inputs=["a", "b"], outputs=["y"])
    lowered.tensors["a"] = FileTensor("a", (1, 6, 5, 8), DType.INT16, QParams((3e-4,), (0,)))
    lowered.tensors["b"] = FileTensor("b", (1, 1, 1, 8), DType.INT16, QParams((7e-5,), (0,)))
    lowered.tensors["y"] = FileTensor("y", (1, 6, 5, 8), DType.INT16, QParams((2e-4,), (0,)))
    options = {"fused_activation_function": "NONE"}
    kind = {"MUL": "MulOptions", "ADD": "AddOptions", "SUB": "SubOptions"}[builtin]
    lowered.ops.append(FileOp(builtin, ["a", "b"], ["y"], (kind, options)))
    data = serialize(lowered)
    rng = np.random.default_rng(3)
    a = rng.integers(-32768, 32768, (8, 6, 5, 8)).astype(np.int16)
    b = rng.integers(-32768, 32768, (8, 1, 1, 8)).astype(np.int16)
    ours = Runtime(read_tflite(data, "m")).run(a, b)
    assert isinstance(ours, np.ndarray) and len(np.unique(ours)) > 100
    assert np.array_equal(run_tflm(data, [a, b]).reshape(ours.shape), ours)
