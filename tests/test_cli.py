"""The command line as a user runs it: inspect (table and JSON), run, --version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import MODELS, relative_error

import edgenn

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgenn", *args], capture_output=True, text=True, timeout=120
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and edgenn.__version__ in result.stdout


@pytest.mark.parametrize("name", BUNDLED)
def test_inspect_table_and_json_agree(name: str) -> None:
    table = run_cli("inspect", str(MODELS / f"{name}.onnx"))
    assert table.returncode == 0, table.stderr
    info = json.loads(run_cli("inspect", "--json", str(MODELS / f"{name}.onnx")).stdout)
    totals = info["totals"]
    assert totals["macs"] == sum(layer["macs"] for layer in info["layers"]) > 0
    assert f"{totals['macs']:,} MACs" in table.stdout
    for layer in info["layers"]:
        assert layer["name"] in table.stdout


def test_inspect_digits_cnn_counts() -> None:
    """Hand count: conv 1->16 (8x8, 3x3): 9,216 MACs; 16->32: 294,912; 32->32 at 4x4: 147,456; dense 32->10: 320."""
    info = json.loads(run_cli("inspect", "--json", str(MODELS / "digits_cnn.onnx")).stdout)
    assert [layer["macs"] for layer in info["layers"] if layer["macs"]] == [
        9216,
        294912,
        147456,
        320,
    ]
    assert (
        info["totals"]["params"] == 16 * 9 + 16 + 32 * 16 * 9 + 32 + 32 * 32 * 9 + 32 + 32 * 10 + 10
    )
    raw = json.loads(run_cli("inspect", "--json", "--raw", str(MODELS / "digits_cnn.onnx")).stdout)
    assert "BatchNormalization" in [layer["op"] for layer in raw["layers"]]


def test_run_writes_onnxruntime_equal_output(tmp_path: Path) -> None:
    x = np.load(MODELS / "digits_cnn_test.npz")["x"][:7]
    np.save(tmp_path / "x.npy", x)
    result = run_cli(
        "run",
        str(MODELS / "digits_cnn.onnx"),
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "y.npy"),
    )
    assert result.returncode == 0, result.stderr
    session = ort.InferenceSession(
        str(MODELS / "digits_cnn.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"input": x})[0]
    assert relative_error(np.load(tmp_path / "y.npy"), expected) <= 1e-4


def test_run_accepts_npz_test_set(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        str(MODELS / "mnist1d_cnn.onnx"),
        "--input",
        str(MODELS / "mnist1d_cnn_test.npz"),
        "--output",
        str(tmp_path / "y.npy"),
    )
    assert result.returncode == 0, result.stderr
    logits = np.load(tmp_path / "y.npy")
    assert logits.shape == (1000, 10)
    data = np.load(MODELS / "mnist1d_cnn_test.npz")
    session = ort.InferenceSession(
        str(MODELS / "mnist1d_cnn.onnx"), providers=["CPUExecutionProvider"]
    )
    accuracy = np.mean(session.run(None, {"input": data["x"]})[0].argmax(1) == data["y"])
    assert f"top-1 accuracy {accuracy:.4f} on 1000 labelled samples" in result.stdout


def test_unknown_option_is_usage_error() -> None:
    result = run_cli("inspect", "--frobnicate", str(MODELS / "digits_cnn.onnx"))
    assert result.returncode == 2 and "No such option" in result.stderr
