"""Reading .tflite files back: the round trip keeps every bit, `edgenn verify` reports TFLM and LiteRT,
and corrupt or unsupported files give clean errors (a fuzz test mutates valid bytes)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgenn.errors import EdgennError, ModelFormatError, QuantizationError, UnsupportedOpError
from edgenn.frontend.onnx import load_onnx
from edgenn.ir import Graph
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph
from edgenn.runtime import Runtime

pytest.importorskip("tflite", reason="the tflite extra is not installed")
pytest.importorskip("tflite_micro", reason="tflite-micro (TensorFlow Lite Micro) is not installed")

from edgenn.codegen.tflite import to_tflite  # noqa: E402
from edgenn.frontend.tflite import read_tflite  # noqa: E402

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))


def fixed_model(name: str) -> tuple[Graph, np.ndarray]:
    x = np.load(MODELS / f"{name}_test.npz")["x"]
    graph = optimize(load_onnx(MODELS / f"{name}.onnx"))
    fixed = quantize_graph(graph, calibrate(graph, x))
    return fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)


@pytest.fixture(scope="module")
def cnn_file() -> bytes:
    return to_tflite(fixed_model("digits_cnn")[0])


@pytest.mark.parametrize("name", BUNDLED)
def test_round_trip_keeps_every_bit(name: str) -> None:
    fixed, xq = fixed_model(name)
    data = to_tflite(fixed)
    back = read_tflite(data, name)
    assert np.array_equal(Runtime(back).run(xq), Runtime(fixed).run(xq))
    assert to_tflite(back) == to_tflite(
        read_tflite(to_tflite(back), name)
    )  # stable after one round


def test_verify_reports_zero_differences_on_tflm(tmp_path: Path, cnn_file: bytes) -> None:
    (tmp_path / "m.tflite").write_bytes(cnn_file)
    result = run_cli(
        "verify",
        str(tmp_path / "m.tflite"),
        "--data",
        str(MODELS / "digits_cnn_test.npz"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    import json

    rows = {row["backend"]: row for row in json.loads(result.stdout)["backends"]}
    assert (
        rows["TFLM (tflite-micro)"]["differing"] == 0
        and rows["TFLM (tflite-micro)"]["elements"] == 5000
    )
    assert (
        rows["LiteRT default kernels"]["max_lsb"] <= 1
        and rows["LiteRT reference kernels"]["max_lsb"] <= 1
    )


def test_run_and_eval_take_tflite(tmp_path: Path, cnn_file: bytes) -> None:
    (tmp_path / "m.tflite").write_bytes(cnn_file)
    result = run_cli(
        "eval", str(tmp_path / "m.tflite"), "--data", str(MODELS / "digits_cnn_test.npz")
    )
    assert result.returncode == 0 and "int8 accuracy 0.97" in result.stdout, result.stderr
    result = run_cli(
        "run",
        str(tmp_path / "m.tflite"),
        "-i",
        str(MODELS / "digits_cnn_test.npz"),
        "-o",
        str(tmp_path / "y.npy"),
        "--backend",
        "int8",
    )
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "y.npy").shape == (500, 10)


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def find_tensor_shape(data: bytes, shape: tuple[int, ...]) -> int:
    """The byte offset of a tensor's shape vector (length prefix followed by int32 dims)."""
    needle = np.array([len(shape), *shape], "<i4").tobytes()
    position = data.find(needle)
    assert position > 0
    return position + 4


@pytest.mark.parametrize(
    "case", ["not_tflite", "wrong_identifier", "truncated", "shape_vs_buffer", "float_model"]
)
def test_bad_files_give_clean_errors(case: str, cnn_file: bytes) -> None:
    if case == "not_tflite":
        data, error, message = (
            b"just some text, not a model",
            ModelFormatError,
            "not a TFLite model",
        )
    elif case == "wrong_identifier":
        data, error, message = (
            patched(cnn_file, 4, b"TFL2"),
            ModelFormatError,
            "file identifier b'TFL2'",
        )
    elif case == "truncated":
        data, error, message = (
            cnn_file[: len(cnn_file) // 3],
            ModelFormatError,
            "corrupt|outside|refers",
        )
    elif case == "shape_vs_buffer":  # the 3x3x16x32 filter claims 4 rows of kernel
        offset = find_tensor_shape(cnn_file, (32, 3, 3, 16))
        data, error, message = (
            patched(cnn_file, offset + 4, np.int32(4).tobytes()),
            ModelFormatError,
            "needs 6144 bytes",
        )
    else:
        data, error, message = (
            float_model_bytes(),
            QuantizationError,
            "float32; edgenn runs int8 and int16 \\(16x8\\) models",
        )
    with pytest.raises(error, match=message):
        read_tflite(data, "m")


def float_model_bytes() -> bytes:
    from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
    from edgenn.ir import DType

    lowered = Lowered("float", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, 4), DType.FLOAT32)
    lowered.tensors["y"] = FileTensor("y", (1, 4), DType.FLOAT32)
    lowered.ops.append(FileOp("RELU", ["x"], ["y"]))
    return serialize(lowered)


def test_unsupported_builtin_is_named() -> None:
    from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
    from edgenn.ir import DType, QParams

    qp = QParams((0.1,), (0,))
    lowered = Lowered("m", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, 4), DType.INT8, qp)
    lowered.tensors["y"] = FileTensor("y", (1, 4), DType.INT8, qp)
    lowered.ops.append(FileOp("SQUARE", ["x"], ["y"]))
    with pytest.raises(UnsupportedOpError, match="operator 0 is SQUARE, which edgenn does not run"):
        read_tflite(serialize(lowered), "m")


@functools.cache
def valid_file() -> bytes:
    return to_tflite(fixed_model("digits_cnn")[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzzed_files_never_crash(edits: list[tuple[int, int]]) -> None:
    """Byte edits anywhere in a valid file: reading (and running what reads) gives only edgenn errors."""
    data = bytearray(valid_file())
    for position, value in edits:
        data[position % len(data)] = value
    try:
        graph = read_tflite(bytes(data), "fuzzed")
    except EdgennError:
        return
    assert graph.nodes  # it read something whole: then it must also run
    t = graph.type_of(graph.inputs[0])
    try:
        Runtime(graph).run(np.zeros((1, *t.shape[1:]), np.int8))
    except EdgennError:
        pass


THIRD_PARTY = sorted((Path(__file__).parent / "data" / "tflite").glob("*.tflite"))


@pytest.mark.parametrize("path", THIRD_PARTY, ids=[p.stem for p in THIRD_PARTY])
def test_tensorflow_converter_files_bit_exact_with_tflm(path: Path) -> None:
    """Files made by TensorFlow's TFLiteConverter (tools/make_tflite_fixtures.py) run on edgenn's
    runtime with TFLM's bits: Keras Flatten's SHAPE chains, MEAN, depthwise multipliers included."""
    from edgenn.frontend.tflite import load_tflite
    from edgenn.interop import run_tflm

    graph = load_tflite(path)
    if path.stem == "tf_digits_cnn":
        data = np.load(MODELS / "digits_cnn_test.npz")
        x = quantize_array(data["x"].transpose(0, 2, 3, 1), graph.type_of(graph.inputs[0]).qparams)
    else:
        x = np.load(path.with_name(f"{path.stem}_inputs.npy"))
    ours = Runtime(graph).run(x)
    assert np.array_equal(run_tflm(path.read_bytes(), x).reshape(ours.shape), ours)
    if path.stem == "tf_digits_cnn":
        assert np.mean(ours.argmax(1) == data["y"]) >= 0.97


def test_export_no_larger_than_tensorflow_converter() -> None:
    ours = to_tflite(fixed_model("digits_cnn")[0])
    theirs = (Path(__file__).parent / "data" / "tflite" / "tf_digits_cnn.tflite").read_bytes()
    print(f"digits_cnn .tflite: edgenn {len(ours)} B, TFLiteConverter {len(theirs)} B")
    assert len(ours) <= len(theirs)
