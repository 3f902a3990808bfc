"""The command line as a user runs it: inspect (table and JSON), run, --version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import MODELS, relative_error, run_cli

import edgenn
from edgenn import ops

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))


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


# ---- int8: convert, eval, run --backend int8, bench ----


def test_convert_writes_model_and_report(tmp_path: Path) -> None:
    result = run_cli("convert", str(MODELS / "digits_cnn.onnx"), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["evaluation"]["int8_accuracy"] >= report["evaluation"]["float_accuracy"] - 0.003
    assert report["arena_bytes"] > 0 and report["weight_bytes"] > 0
    assert [row["op"] for row in report["layers"]][:2] == ["Conv", "Conv"]
    assert all(row["sqnr_db"] > 20 for row in report["layers"])
    assert (tmp_path / "out" / "model.edgenn").stat().st_size == report["model_file_bytes"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.edgenn", "report.json"]


def test_convert_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert (
            run_cli(
                "convert", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / name)
            ).returncode
            == 0
        )
    for file in ("model.edgenn", "report.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_eval_json_reports_fractions(tmp_path: Path) -> None:
    result = run_cli(
        "eval",
        str(MODELS / "mnist1d_cnn.onnx"),
        "--data",
        str(MODELS / "mnist1d_cnn_test.npz"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (
        0.85 <= info["float_accuracy"] <= 1
        and abs(info["float_accuracy"] - info["int8_accuracy"]) <= 0.005
    )


def test_run_int8_matches_runtime(tmp_path: Path) -> None:
    from edgenn.quant.quantize import quantize_array
    from edgenn.runtime import Runtime
    from edgenn.serialize import load_graph

    assert run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path)).returncode == 0
    x = np.load(MODELS / "digits_mlp_test.npz")["x"][:9]
    np.save(tmp_path / "x.npy", x)
    result = run_cli(
        "run",
        str(tmp_path / "model.edgenn"),
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
        "--backend",
        "int8",
    )
    assert result.returncode == 0, result.stderr
    fixed = load_graph(tmp_path / "model.edgenn")
    want = Runtime(fixed).run(quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams))
    got = np.load(tmp_path / "y.npy")
    assert got.dtype == np.int8 and np.array_equal(got, want)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--calib", "{tmp}/bad.npy"], r"calibration data has shape \(3, 5\); expected \[N, 64\]"),
        (["--calib", "{tmp}/missing.npz"], "no such file"),
        (["--observer", "nope"], "Invalid value for '--observer'"),
    ],
)
def test_convert_bad_calibration(tmp_path: Path, args: list[str], message: str) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_convert_without_calibration_data_says_what_to_give(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    copy.write_bytes((MODELS / "digits_mlp.onnx").read_bytes())
    result = run_cli("convert", str(copy), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "--calib" in result.stderr


def test_bench_times_a_tflite_file_beside_litert_in_rounds() -> None:
    """A .tflite made elsewhere is timed beside LiteRT running that file: ratios of medians with their
    per-round spread, the CPU, each kernel's path and the batch mode; --no-cold skips the fresh
    process."""
    path = MODELS.parent / "tests" / "data" / "mlperf_tiny" / "ad01_int8.tflite"
    result = run_cli("bench", str(path), "--seconds", "0.1", "--rounds", "2", "--no-cold", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert set(info["backends"]) == {"edgenn", "litert"}
    assert info["rounds"] == 2 and len(info["backends"]["edgenn"]["rounds"]["latency_us"]) == 2
    low, high = info["latency_spread_vs_litert"]
    assert 0 < low <= high and info["latency_ratio_vs_litert"] > 0
    dense = ops.KERNELS["fully_connected"]
    assert info["edgenn_kernels"]["fully_connected"] in {"generic"} | {
        v.feature for v in dense.variants
    }
    assert info["edgenn_batch_mode"].startswith("layer by layer")
    assert info["cpu"] and "first_result_seconds" not in info


def test_bench_refuses_float_edged_tflite_and_misshapen_data() -> None:
    data = MODELS.parent / "tests" / "data"
    floats = run_cli("bench", str(data / "conformance" / "mlp_float_io.tflite"), "--no-cold")
    assert (
        floats.returncode == 2 and "float32" in floats.stderr and "Traceback" not in floats.stderr
    )
    kws = str(data / "mlperf_tiny" / "kws_ref_model.tflite")
    shape = run_cli("bench", kws, "--data", str(MODELS / "digits_cnn_test.npz"), "--no-cold")
    assert shape.returncode == 2 and "49x10x1" in shape.stderr and "Traceback" not in shape.stderr


def test_bench_json_has_the_promised_keys() -> None:
    result = run_cli("bench", str(MODELS / "digits_mlp.onnx"), "--seconds", "0.05", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    for backend in ("edgenn", "ort_float", "ort_int8_qdq", "litert"):
        assert info["backends"][backend]["latency_us"] > 0
        assert info["backends"][backend]["throughput_sps"] > 0
    # the same int8 model on both: LiteRT may differ by an LSB, rarely enough to move a prediction
    assert (
        abs(info["backends"]["edgenn"]["accuracy"] - info["backends"]["litert"]["accuracy"])
        <= 0.004
    )
    assert info["latency_ratio_vs_litert"] > 0 and info["throughput_ratio_vs_ort_int8"] > 0
    assert info["first_result_seconds"]["warm_jit_cache"] > 0


def test_inspect_takes_fixed_point_files(tmp_path: Path) -> None:
    assert (
        run_cli(
            "convert", str(MODELS / "digits_cnn.onnx"), "-o", str(tmp_path), "--emit", "tflite"
        ).returncode
        == 0
    )
    for name in ("model.edgenn", "model.tflite"):
        result = run_cli("inspect", "--json", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        layers = json.loads(result.stdout)["layers"]
        convs = [layer for layer in layers if layer["op"] == "Conv"]
        assert [c["macs"] for c in convs] == [9216, 294912, 147456] and {
            c["dtype"] for c in convs
        } == {"int8"}
