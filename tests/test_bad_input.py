"""Bad input: each case gives a specific exception from the API, and from the CLI a one-line message on
stderr with exit status 2 and no traceback (unless --debug)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import Stack, save
from conftest import MODELS, run_cli
from onnx import TensorProto, helper, numpy_helper

from edgenn.errors import (
    EdgennError,
    ExternalDataError,
    GraphCycleError,
    InputError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
    UnsupportedOpsetError,
)
from edgenn.frontend.onnx import load_onnx
from edgenn.reference import run_reference

VALID = MODELS / "digits_mlp.onnx"


def not_onnx(tmp: Path) -> Path:
    path = tmp / "notes.onnx"
    path.write_text("these are my notes, not a model\n")
    return path


def truncated(tmp: Path) -> Path:
    path = tmp / "truncated.onnx"
    path.write_bytes(VALID.read_bytes()[: VALID.stat().st_size // 2])
    return path


def unsupported_op(tmp: Path) -> Path:
    s = Stack((1, 4))
    s.nodes.append(helper.make_node("Erf", ["input"], ["e"], name="my_erf"))
    return save(s.model("e"), tmp / "erf.onnx")


def old_opset(tmp: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    return save(model, tmp / "opset10.onnx")


def dim_model(tmp: Path, dim: int) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dim])],
    )
    return save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
        tmp / f"dim{dim}.onnx",
    )


def zero_dim(tmp: Path) -> Path:
    return dim_model(tmp, 0)


def negative_dim(tmp: Path) -> Path:
    return dim_model(tmp, -3)


def zero_dim_initializer(tmp: Path) -> Path:
    s = Stack((1, 4))
    w = s.const(np.zeros((4, 0), np.float32))
    return save(s.model(s.op("MatMul", ["input", w])), tmp / "zero_init.onnx")


def external_outside(tmp: Path) -> Path:
    (tmp / "secret.bin").write_bytes(np.ones(16, np.float32).tobytes())
    folder = tmp / "model"
    folder.mkdir()
    weights = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="../secret.bin")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weights],
    )
    path = folder / "traversal.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    )
    return path


def cycle(tmp: Path) -> Path:
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
        helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp / "cycle.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    )
    return path


CASES: dict[str, tuple[Callable[[Path], Path], type[EdgennError], str]] = {
    "not_onnx": (not_onnx, ModelFormatError, "not an ONNX model"),
    "truncated": (truncated, ModelFormatError, "truncated|not an ONNX model"),
    "unsupported_op": (
        unsupported_op,
        UnsupportedOpError,
        "node 'my_erf': op 'Erf' is not supported .*Conv",
    ),
    "old_opset": (old_opset, UnsupportedOpsetError, "opset 10 is older than 11"),
    "zero_dim": (
        zero_dim,
        ShapeError,
        "graph input 'x' has a zero or negative dimension 0 at axis 1",
    ),
    "negative_dim": (
        negative_dim,
        ShapeError,
        "graph input 'x' has a zero or negative dimension -3 at axis 1",
    ),
    "zero_dim_initializer": (
        zero_dim_initializer,
        ShapeError,
        "initializer 'w0': zero or negative dimension",
    ),
    "external_outside": (
        external_outside,
        ExternalDataError,
        "'../secret.bin' points outside the model's folder",
    ),
    "cycle": (cycle, GraphCycleError, "cycle: node 'add_a'"),
    "missing_file": (lambda tmp: tmp / "absent.onnx", ModelFormatError, "no such file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_raises_specific_error(case: str, tmp_path: Path) -> None:
    make, error, message = CASES[case]
    with pytest.raises(error, match=message):
        load_onnx(make(tmp_path))


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_one_line_exit_2(case: str, tmp_path: Path) -> None:
    make, _, message = CASES[case]
    result = run_cli("inspect", str(make(tmp_path)))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgenn: error: ")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_debug_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "inspect", str(not_onnx(tmp_path)))
    assert (
        result.returncode != 0
        and "Traceback" in result.stderr
        and "ModelFormatError" in result.stderr
    )


def test_every_truncation_is_a_clean_error(tmp_path: Path) -> None:
    data = VALID.read_bytes()
    path = tmp_path / "cut.onnx"
    for cut in np.linspace(1, len(data) - 1, 40).astype(int):
        path.write_bytes(data[:cut])
        with pytest.raises(EdgennError):
            load_onnx(path)


def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    """The legitimate case next to the refused one: data beside the model is read."""
    model = onnx.load(str(VALID))
    onnx.save_model(
        model,
        str(tmp_path / "m.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    x = np.load(MODELS / "digits_mlp_test.npz")["x"][:4]
    assert np.array_equal(
        run_reference(load_onnx(tmp_path / "m.onnx"), x)["logits"],
        run_reference(load_onnx(VALID), x)["logits"],
    )


def test_run_rejects_wrong_input_shape() -> None:
    graph = load_onnx(VALID)
    with pytest.raises(
        InputError, match=r"input 'input' has shape \(2, 63\); expected \('N', 64\)"
    ):
        run_reference(graph, np.zeros((2, 63), np.float32))


def test_cli_run_wrong_input_writes_nothing(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 63), np.float32))
    out = tmp_path / "y.npy"
    result = run_cli("run", str(VALID), "--input", str(tmp_path / "x.npy"), "--output", str(out))
    assert result.returncode == 2 and "expected ('N', 64)" in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "x.npy"]
