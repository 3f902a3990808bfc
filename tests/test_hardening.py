"""Hostile or extreme fixed-point files: every integer kernel's ranges are checked when the program is
built, whatever the file's origin (.tflite, .edgenn, ONNX, QDQ), naming the layer; what passes runs
as TensorFlow Lite Micro runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

pytest.importorskip("tflite", reason="the tflite extra is not installed")

from conftest import HANG_LIMIT  # noqa: E402
from hostile import (  # noqa: E402
    average_pool_file,
    bad_inputs,
    dense_file,
    external_data_model,
    per_tensor,
    set_is_consistent,
    tiny_onnx,
    two_input_model,
)

from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize  # noqa: E402
from edgenn.errors import QuantizationError  # noqa: E402
from edgenn.frontend.tflite import read_tflite  # noqa: E402
from edgenn.ir import DType, QParams  # noqa: E402
from edgenn.runtime import Runtime  # noqa: E402


def test_dense_layer_whose_sums_wrap_is_refused_by_name() -> None:
    """140,000 inputs times weights of 127: sums up to 4.5e9, past int32 (the ONNX path refused the
    same layer already; a .tflite now is too, before any arena is allocated)."""
    graph = read_tflite(dense_file(140_000, 127, 0.01, 0.01, 1.0), "fc")
    with pytest.raises(QuantizationError, match="worst-case accumulator .* exceeds int32"):
        Runtime(graph)


def test_dense_layer_just_within_int32_runs_as_tflm() -> None:
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    from edgenn.interop import run_tflm

    data = dense_file(60_000, 127, 0.01, 0.01, 20.0)  # 255 * 127 * 60,000 < 2^31
    ours = Runtime(read_tflite(data, "fc"))
    x = np.random.default_rng(0).integers(-128, 128, (4, 60_000)).astype(np.int8)
    x[0] = 127  # the largest sum
    assert np.array_equal(run_tflm(data, x).reshape(4, 1), ours.run(x).reshape(4, 1))


@pytest.mark.parametrize(
    ("side", "dtype"), [(2910, DType.INT8), (182, DType.INT16)], ids=["int8", "int16"]
)
def test_average_pool_whose_sum_can_wrap_is_refused(side: int, dtype: DType) -> None:
    """8.4 M int8 taps (or 33 k int16 ones) can sum past int32."""
    graph = read_tflite(average_pool_file(side, dtype), "pool")
    with pytest.raises(QuantizationError, match="can exceed int32"):
        Runtime(graph)


def test_extreme_rescaling_is_refused_and_tiny_one_flushes_to_zero() -> None:
    """A multiplier of 1e58 (a shift of 193) cannot be applied: refused by name. One of 1e-25 is
    flushed to 0 as TFLite's QuantizeMultiplier does, so every output is the zero point."""
    huge = read_tflite(dense_file(16, 1, 1e15, 1e15, 1e-28), "fc")
    with pytest.raises(QuantizationError, match="fully_connected_0.*out of the kernels' range"):
        Runtime(huge)
    tiny = Runtime(read_tflite(dense_file(16, 127, 1e-10, 1e-10, 1e5), "fc"))
    x = np.full((2, 16), 127, np.int8)
    assert np.array_equal(tiny.run(x), np.zeros((2, 1), np.int8))


# ---- memory: sizes are checked before anything is allocated ----


def test_small_files_asking_for_gigabytes_are_refused_by_name(tmp_path: Path) -> None:
    from test_cli import run_cli

    pads = numpy_helper.from_array(np.array([0, 10**9, 0, 10**9], np.int64), "p")
    pad = tiny_onnx(
        tmp_path / "pad.onnx", onnx.helper.make_node("Pad", ["x", "p"], ["y"]), [1, 4], [pads]
    )
    w = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    conv_node = onnx.helper.make_node(
        "Conv", ["x", "w"], ["y"], pads=[30000] * 4, strides=[30000] * 2
    )
    conv = tiny_onnx(tmp_path / "conv.onnx", conv_node, [1, 1, 8, 8], [w])
    for path, words in (
        (pad, "node 'Pad_0' (Pad): output"),
        (conv, "node 'Conv_0' (Conv): the padded input"),
    ):
        assert path.stat().st_size < 400
        result = run_cli("convert", str(path), "-o", str(tmp_path / "out"), "--calib", "random")
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "above the 1,073,741,824-byte limit" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_max_memory_sets_the_limit() -> None:
    from conftest import MODELS
    from test_cli import run_cli

    model = str(MODELS / "digits_cnn.onnx")
    small = run_cli("--max-memory", "1K", "inspect", model)
    assert small.returncode == 2 and "above the 1,024-byte limit" in small.stderr
    assert run_cli("--max-memory", "1G", "inspect", model).returncode == 0
    bad = run_cli("--max-memory", "lots", "inspect", model)
    assert bad.returncode == 2 and "--max-memory takes a size" in bad.stderr


# ---- numbers without an integer form ----


@pytest.mark.parametrize("bad", [np.nan, np.inf, 3e38], ids=["nan", "inf", "huge"])
def test_weights_without_an_int8_form_are_refused_naming_the_tensor(
    bad: float, tmp_path: Path
) -> None:
    from test_cli import run_cli

    weights = np.ones((3, 4), np.float32)
    weights[1, 2] = bad
    w = numpy_helper.from_array(weights, "dense_weights")
    path = tiny_onnx(
        tmp_path / "m.onnx",
        onnx.helper.make_node("MatMul", ["x", "dense_weights"], ["y"]),
        [1, 3],
        [w],
    )
    result = run_cli("convert", str(path), "-o", str(tmp_path / "out"), "--calib", "random")
    assert result.returncode == 2, result.stderr
    if np.isnan(bad):  # never meant: refused at import, naming the initializer
        assert "initializer 'dense_weights' holds 1 NaN value(s)" in result.stderr
    else:  # Inf may be meant by a float model (a bound, a mask): refused when quantized
        assert "node 'MatMul_0'" in result.stderr and "cannot be quantized" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (np.array([[np.nan] * 64], np.float32), "NaN or Inf"),
        (np.array([[1j] * 64], np.complex64), "dtype complex64"),
        (np.array([["a"] * 64]), "dtype <U1"),
    ],
    ids=["nan", "complex", "text"],
)
def test_run_refuses_inputs_without_an_integer_form(
    values: np.ndarray, words: str, tmp_path: Path
) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    model = tmp_path / "m.edgenn"
    assert (
        run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "c")).returncode
        == 0
    )
    (tmp_path / "c" / "model.edgenn").rename(model)
    np.save(tmp_path / "x.npy", values)
    result = run_cli(
        "run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")
    )
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert not (tmp_path / "y.npy").exists()


# ---- target profiles ----


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('dsp = "false"', "dsp"),
        ("ram_bytes = inf", "ram_bytes"),
        ("ram_bytes = -5", "ram_bytes"),
        ('kind = "toaster"', "kind"),
    ],
)
def test_profile_fields_are_typed(line: str, field: str, tmp_path: Path) -> None:
    from edgenn.errors import InputError
    from edgenn.sim.targets import load_target, profiles_dir

    text = (profiles_dir() / "host.toml").read_text()
    key = line.split(" =")[0]
    kept = [row for row in text.splitlines() if not row.startswith(f"{key} =")]
    kept.insert(1, line)  # top-level keys come before the first [table]
    profile = tmp_path / "bad.toml"
    profile.write_text("\n".join(kept))
    with pytest.raises(InputError, match=f"field '{field}'"):
        load_target(str(profile))


def test_profile_cflags_must_be_a_list(tmp_path: Path) -> None:
    from edgenn.errors import InputError
    from edgenn.sim.targets import load_target, profiles_dir

    lines = (profiles_dir() / "host.toml").read_text().splitlines()
    lines = ['cflags = "-O2 -Wall"' if row.startswith("cflags") else row for row in lines]
    profile = tmp_path / "bad.toml"
    profile.write_text("\n".join(lines))
    with pytest.raises(InputError, match="field 'build.cflags' must be a list of strings"):
        load_target(str(profile))


def test_footprint_checks_the_fit_before_compiling(tmp_path: Path) -> None:
    """A board too small for the model is refused from the plan: the profile's compiler (which does not
    exist here) is never called."""
    from conftest import MODELS
    from test_cli import run_cli

    from edgenn.sim.targets import profiles_dir

    text = (profiles_dir() / "cortex-m4-qemu.toml").read_text()
    text = text.replace("ram_bytes = 4194304", "ram_bytes = 1024").replace(
        'cc = "arm-none-eabi-gcc"', 'cc = "no-such-compiler"'
    )
    profile = tmp_path / "tiny.toml"
    profile.write_text(text)
    result = run_cli("footprint", str(MODELS / "digits_cnn.onnx"), "--target", str(profile))
    assert result.returncode == 2
    assert "arena 3,072 B exceeds cortex-m4-qemu's RAM 1,024 B" in result.stderr
    assert "no-such-compiler" not in result.stderr


# ---- output sets: the previous one or the new one, whole ----


def test_a_new_set_replaces_the_old_one_whole(tmp_path: Path) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    out, model = tmp_path / "out", str(MODELS / "digits_mlp.onnx")
    assert (
        run_cli("convert", model, "-o", str(out), "--emit", "c", "--emit", "tflite").returncode == 0
    )
    set_is_consistent(out)
    assert run_cli("convert", model, "-o", str(out)).returncode == 0
    set_is_consistent(out)  # the old c/ and model.tflite are gone with the report that named them
    assert not (out / "c").exists() and not (out / "model.tflite").exists()


@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0])
def test_sigterm_leaves_a_whole_set_and_no_staging(delay: float, tmp_path: Path) -> None:
    """Whenever the signal lands, the folder holds the previous set or the new one, never a mix."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import MODELS
    from test_cli import run_cli

    out, model = tmp_path / "out", str(MODELS / "digits_cnn.onnx")
    assert run_cli("convert", model, "-o", str(out), "--emit", "c").returncode == 0
    command = [sys.executable, "-m", "edgenn", "convert", model, "-o", str(out), "--emit", "tflite"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=HANG_LIMIT)
    # 143: edgenn's handler ran; -15: the signal came before it was installed (still importing)
    assert process.returncode in (0, 143, -signal.SIGTERM), err
    set_is_consistent(out)


def test_concurrent_converts_into_one_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import MODELS

    out, model = tmp_path / "out", str(MODELS / "digits_mlp.onnx")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "edgenn", "convert", model, "-o", str(out), *emit],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for emit in ([], ["--emit", "c"], ["--emit", "tflite"], ["--emit", "c", "--emit", "tflite"])
    ]
    for run in runs:
        _, err = run.communicate(timeout=HANG_LIMIT)
        assert run.returncode == 0, err
    set_is_consistent(out)


# ---- bad data files and arguments: one line, exit 2 ----


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("objects", "holds Python objects"),
        ("broken", "not a readable .npy/.npz file"),
        ("huge", "above the 1,073,741,824-byte limit"),
        ("bomb", "above the 1,073,741,824-byte limit"),
        ("empty", "holds no samples"),
        ("negative", "must be class indices"),
    ],
)
def test_hostile_data_files_are_refused_in_one_line(case: str, words: str, tmp_path: Path) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    path = bad_inputs(tmp_path)[case]
    model = str(MODELS / "digits_mlp.onnx")
    out = tmp_path / "y.npy"
    result = run_cli("run", model, "-i", str(path), "-o", str(out), "--backend", "int8")
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--calib", "random", "--seed", "-1"), "Invalid value for '--seed'"),
        (("--calib", "random", "--calib-samples", "100000000000"), "random calibration samples"),
    ],
)
def test_bad_arguments_are_refused(args: tuple[str, ...], words: str, tmp_path: Path) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    result = run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "o"), *args)
    assert result.returncode == 2 and words in result.stderr, result.stderr


def test_random_bytes_named_tflite_are_called_a_bad_tflite(tmp_path: Path) -> None:
    from test_cli import run_cli

    path = tmp_path / "m.tflite"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    result = run_cli("inspect", str(path))
    assert result.returncode == 2 and "not a TFLite model" in result.stderr, result.stderr


def test_run_output_must_be_a_file_name(tmp_path: Path) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    data = str(MODELS / "digits_mlp_test.npz")
    result = run_cli("run", str(MODELS / "digits_mlp.onnx"), "-i", data, "-o", str(tmp_path))
    assert result.returncode == 2 and "give a file name" in result.stderr, result.stderr


# ---- odd ONNX files and output names ----


@pytest.mark.parametrize(
    ("offset", "location", "words"),
    [("abc", "w.bin", "are not integers"), ("0", "w\x00.bin", "holds a NUL byte")],
    ids=["offset", "nul"],
)
def test_bad_external_data_fields_are_named(
    offset: str, location: str, words: str, tmp_path: Path
) -> None:
    from edgenn.errors import ExternalDataError
    from edgenn.frontend.onnx import load_onnx

    with pytest.raises(ExternalDataError, match=words):
        load_onnx(external_data_model(tmp_path, offset, location))


def test_gather_index_out_of_range_is_refused_at_import(tmp_path: Path) -> None:
    from edgenn.errors import ShapeError
    from edgenn.frontend.onnx import load_onnx

    i = numpy_helper.from_array(np.array([7], np.int64), "i")
    node = onnx.helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    with pytest.raises(ShapeError, match="out of range for axis 1 of size 4"):
        load_onnx(tiny_onnx(tmp_path / "g.onnx", node, [1, 4], [i]))


def test_output_names_never_clash_with_npz_or_become_paths(tmp_path: Path) -> None:
    from test_cli import run_cli

    h = onnx.helper
    names = ["allow_pickle", "file", "../../x"]
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], [n]) for n in names],
        "names",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names],
    )
    model = tmp_path / "names.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(model))
    np.save(tmp_path / "x.npy", np.arange(8, dtype=np.float32).reshape(2, 4) - 4)
    result = run_cli(
        "run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")
    )
    assert result.returncode == 0, result.stderr
    import zipfile

    members = zipfile.ZipFile(tmp_path / "y.npz").namelist()
    assert sorted(members) == ["_.._x.npy", "allow_pickle.npy", "file.npy"]
    with np.load(tmp_path / "y.npz") as data:
        assert np.array_equal(data["file"], np.maximum(np.arange(8).reshape(2, 4) - 4, 0))


def test_an_output_listed_twice_is_refused(tmp_path: Path) -> None:
    from edgenn.errors import GraphError
    from edgenn.frontend.onnx import import_model

    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["y"])],
        "twice",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)] * 2,
    )
    with pytest.raises(GraphError, match="graph output 'y' is listed 2 times"):
        import_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))


def test_empty_output_path_is_refused(tmp_path: Path) -> None:
    from conftest import MODELS
    from test_cli import run_cli

    result = run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", "")
    assert result.returncode == 2 and "give a path" in result.stderr


def test_zero_points_outside_their_type_are_refused() -> None:
    from edgenn.errors import GraphError

    lowered = Lowered("m", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, 4), DType.INT8, per_tensor(0.1, 300))
    lowered.tensors["y"] = FileTensor("y", (1, 4), DType.INT8, per_tensor(0.1))
    lowered.ops.append(FileOp("RELU", ["x"], ["y"]))
    with pytest.raises(GraphError, match="zero points outside its type"):
        read_tflite(serialize(lowered), "m")


@pytest.mark.parametrize(
    "body",
    [
        b'{"format": 1, "name": "m", "values": [], "nodes": {}, "inputs": [], "outputs": []}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["lists_for_objects", "deep_nesting"],
)
def test_malformed_edgenn_headers_are_format_errors(body: bytes) -> None:
    import struct

    from edgenn.errors import ModelFormatError
    from edgenn.serialize import MAGIC, from_bytes

    with pytest.raises(ModelFormatError, match="corrupt edgenn model"):
        from_bytes(MAGIC + struct.pack("<Q", len(body)) + body)


def test_tflite_pad_without_quantization_is_named() -> None:
    lowered = Lowered("m", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, 4), DType.INT8)
    lowered.tensors["p"] = FileTensor("p", (2, 2), DType.INT32, None, np.ones((2, 2), np.int32))
    lowered.tensors["y"] = FileTensor("y", (3, 6), DType.INT8, per_tensor(0.1))
    lowered.ops.append(FileOp("PAD", ["x", "p"], ["y"]))
    with pytest.raises(QuantizationError, match="reads 'x', which is not quantized"):
        read_tflite(serialize(lowered), "m")


def test_huge_finite_inputs_saturate_instead_of_wrapping() -> None:
    from edgenn.quant.quantize import quantize_array

    qp = QParams((0.01,), (-5,))
    got = quantize_array(np.array([1e30, -1e30, 3e38, 0.5], np.float32), qp)
    assert got.tolist() == [127, -128, 127, 45]


def test_bias_that_int32_cannot_hold_is_refused_not_clipped(tmp_path: Path) -> None:
    """Weights of 1e-12 give a bias scale near 1e-14: a bias of 1.0 would need 1e14 as int32."""
    from edgenn.compile import convert

    w = numpy_helper.from_array(np.full((3, 2), 1e-12, np.float32), "w")
    b = numpy_helper.from_array(np.ones(2, np.float32), "b")
    node = onnx.helper.make_node("Gemm", ["x", "w", "b"], ["y"])
    path = tiny_onnx(tmp_path / "m.onnx", node, [1, 3], [w, b])
    with pytest.raises(QuantizationError, match="node 'Gemm_0'.*does not fit int32"):
        convert(path, calib="random")


# ---- models with several inputs calibrate ----


def test_a_two_input_model_calibrates_from_an_npz_keyed_by_input(tmp_path: Path) -> None:
    """Calibration data as one array per input name; the result runs as TFLM runs it and the report
    counts the samples."""
    import json

    from test_cli import run_cli

    model = two_input_model(tmp_path / "two.onnx")
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (64, 6)).astype(np.float32)
    b = rng.uniform(-1, 1, (64, 3)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", a=a, b=b)
    out = tmp_path / "out"
    result = run_cli(
        "convert",
        str(model),
        "-o",
        str(out),
        "--calib",
        str(tmp_path / "calib.npz"),
        "--emit",
        "tflite",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "report.json").read_text())["calibration_samples"] == 64
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    from edgenn.interop import run_tflm
    from edgenn.serialize import load_graph

    runtime = Runtime(load_graph(out / "model.edgenn"))
    aq, bq = runtime.quantize(a[:8], b[:8])
    ours = runtime.run(aq, bq)
    theirs = run_tflm((out / "model.tflite").read_bytes(), [aq, bq])
    assert np.array_equal(theirs.reshape(ours.shape), ours)
    random = run_cli("convert", str(model), "-o", str(tmp_path / "r"), "--calib", "random")
    assert random.returncode == 0, random.stderr
    np.savez(tmp_path / "one.npz", a=a)
    missing = run_cli(
        "convert", str(model), "-o", str(tmp_path / "m"), "--calib", str(tmp_path / "one.npz")
    )
    assert missing.returncode == 2 and "has no array 'b'" in missing.stderr, missing.stderr


@pytest.mark.parametrize("builtin", ["MEAN", "CONCATENATION"])
def test_tflite_axis_of_a_scalar_is_named(builtin: str) -> None:
    from hostile import scalar_file

    from edgenn.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match=f"{builtin.lower()}_0 has axis 0, outside a rank-0"):
        read_tflite(scalar_file(builtin), "m")


@pytest.mark.parametrize("delay", [0.4, 0.8, 1.5])
def test_ctrl_c_while_starting_exits_quietly(delay: float, tmp_path: Path) -> None:
    """SIGINT while the CLI's modules load (onnx and numba load later, on first use): one line and
    exit 130, never a KeyboardInterrupt traceback (exit 0: the convert was done before the signal)."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import MODELS

    child = subprocess.Popen(
        [sys.executable, "-m", "edgenn", "convert", str(MODELS / "digits_mlp.onnx"), "-o", "out"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # -SIGINT: seen once in CI at 1.5 s (mid-calibration), with no traceback; not yet understood
    assert child.returncode in (130, 0, -signal.SIGINT), err
    if (tmp_path / "out").exists():
        set_is_consistent(tmp_path / "out")  # whatever was there is a whole set
    if delay < 0.5:  # after Python starts, well before the convert can finish
        assert child.returncode == 130 and "aborted" in err, err


def test_import_edgenn_loads_neither_onnx_nor_numba() -> None:
    import subprocess
    import sys

    probe = "import sys, edgenn; print(sorted({'onnx', 'numba'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("verify", "m.tflite", "--random", "2", "--seed", "-1"), "Invalid value for '--seed'"),
        (("bench", "m.onnx", "--seconds", "-1"), "Invalid value for '--seconds'"),
        (
            ("eval", "m.onnx", "--data", "d.npz", "--max-drop", "-1"),
            "Invalid value for '--max-drop'",
        ),
        (
            ("convert", "m.onnx", "-o", "o", "--percentile", "200"),
            "Invalid value for '--percentile'",
        ),
    ],
)
def test_out_of_range_options_are_usage_errors(args: tuple[str, ...], words: str) -> None:
    from click.testing import CliRunner

    from edgenn.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2 and words in result.output, result.output


def test_cheap_checks_come_before_calibration(tmp_path: Path) -> None:
    """A bad output folder, target, input or label set is refused before any calibration starts."""
    from conftest import MODELS
    from test_cli import run_cli

    model, data = str(MODELS / "digits_mlp.onnx"), MODELS / "digits_mlp_test.npz"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    x, y = np.load(data)["x"], np.load(data)["y"]
    np.save(tmp_path / "narrow.npy", x[:4, :63])
    nan = x[:4].copy()
    nan[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.savez(tmp_path / "few.npz", x=x, y=y[:10])
    np.savez(tmp_path / "wide.npz", x=x, y=np.stack([y, y], 1))
    cases = [
        (("convert", model, "-o", str(blocker / "sub")), "lies under the file"),
        (("convert", model, "-o", str(blocker)), "is a file; give a folder"),
        (("convert", model, "-o", str(tmp_path / "o"), "--emit", "c", "--target", "nosuch"), "unknown target"),
        (("run", model, "-i", str(tmp_path / "narrow.npy"), "-o", str(tmp_path / "y.npy"),
          "--backend", "int8"), "has shape [4, 63]; expected [N, 64]"),
        (("run", model, "-i", str(tmp_path / "nan.npy"), "-o", str(tmp_path / "y.npy"),
          "--backend", "int8"), "holds 1 NaN or Inf value(s) (first at index (2, 5))"),
        (("eval", model, "--data", str(tmp_path / "few.npz")), "10 labels for"),
        (("eval", model, "--data", str(tmp_path / "wide.npz")), "one class index per sample"),
    ]  # fmt: skip
    for args, words in cases:
        result = run_cli(*args)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert "calibrating" not in result.stderr, args


def test_run_flat_checks_widths_in_the_compiled_entry() -> None:
    """The fast path copies whole input rows into the arena: a narrower array would be read past its
    end, so the compiled entry compares widths and batch sizes before running."""
    from conftest import MODELS

    from edgenn.compile import convert
    from edgenn.errors import InputError

    runtime = Runtime(convert(MODELS / "digits_mlp.onnx").fixed_graph)
    good_in, good_out = np.zeros((3, 64), np.int8), np.zeros((3, 10), np.int8)
    assert runtime.run_flat(good_in, good_out) is good_out
    for x, out in (
        (np.zeros((3, 63), np.int8), good_out),
        (good_in, np.zeros((3, 9), np.int8)),
        (good_in, np.zeros((2, 10), np.int8)),
        (np.zeros((3, 128), np.int8)[:, ::2], np.zeros((3, 11), np.int8)),  # strided, then width
    ):
        with pytest.raises(InputError, match=r"run_flat takes \[N, 64\] in and \[N, 10\] out"):
            runtime.run_flat(x, out)


def test_variable_tensors_are_refused_by_name() -> None:
    """Found by the .tflite fuzzer: one byte marked the weights as variable tensors, which TFLM zeroes
    (state, not constants) while edgenn read their buffers; edgenn runs no state tensors yet."""
    from conftest import ROOT

    from edgenn.errors import UnsupportedOpError

    data = bytearray((ROOT / "tests/data/conformance/cnn_per_tensor.tflite").read_bytes())
    data[5440] = 1  # the is_variable field of the vtable the weight tensors share
    with pytest.raises(UnsupportedOpError, match="is a variable \\(state\\) tensor"):
        read_tflite(bytes(data), "cnn")
