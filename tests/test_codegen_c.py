"""Generated C against the Numba runtime, bit for bit: host gcc (strict C99 warnings as errors, then
AddressSanitizer + UndefinedBehaviorSanitizer) over whole test sets, Cortex-M4 under QEMU (DSP and
portable paths), aarch64 under QEMU user mode. Plus hostile names, determinism, target checks."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from builders import Stack, build_mixed_graph, int8_examples, mixed_graphs, mixed_precision
from conftest import MODELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import run_cli
from test_quantization import quantized, quantized_example
from test_tflite_reader import fixed_model as reader_fixed_model

from edgenn.codegen.c import check_fits, generate_c
from edgenn.compile import convert
from edgenn.errors import FootprintError, UnsupportedOpError
from edgenn.frontend.onnx import import_model, load_onnx
from edgenn.ir import Graph
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph, wide_capable
from edgenn.runtime import Runtime
from edgenn.sim.targets import load_target
from edgenn.sim.toolchain import build_harness, missing_tools, run_harness

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))
TORCH = sorted((Path(__file__).parent / "data" / "torch").glob("*.onnx"))
TFLITE_FILES = sorted((Path(__file__).parent / "data" / "tflite").glob("*.tflite"))
SANITIZERS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")


def needs(target: str) -> pytest.MarkDecorator:
    missing = missing_tools(load_target(target))
    return pytest.mark.skipif(
        bool(missing), reason=f"{', '.join(missing)} not installed (see .ci/run for the apt line)"
    )


needs_cc = needs("host")
needs_arm = needs("cortex-m4-qemu")
needs_aarch64 = needs("raspberry-pi-4")


@cache
def fixed_model(name: str) -> tuple[Graph, np.ndarray]:
    """The bundled model quantized on its test set, and that set in int8 (shared by the tests here)."""
    return reader_fixed_model(name)


def c_outputs(
    graph: Graph,
    xq: np.ndarray,
    folder: Path,
    target: str = "host",
    extra: tuple[str, ...] = SANITIZERS,
    name: str = "model",
    dsp: bool = True,
) -> np.ndarray:
    profile = load_target(target)
    sources = generate_c(graph, name, dsp=dsp)
    program = build_harness(sources, xq, profile, folder, extra)
    return run_harness(program, profile, int(sources.program.output_sizes.sum())).outputs


def runtime_outputs(graph: Graph, xq: np.ndarray) -> np.ndarray:
    out = Runtime(graph).run(xq)
    assert isinstance(out, np.ndarray)
    return out.reshape(len(xq), -1)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert int(np.count_nonzero(got != want)) == 0


# ---- host gcc: whole test sets, strict warnings and sanitizers ----


@needs_cc
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_c_matches_runtime_on_host(name: str, tmp_path: Path) -> None:
    fixed, xq = fixed_model(name)
    want = runtime_outputs(fixed, xq)
    assert_same(c_outputs(fixed, xq, tmp_path / "strict", extra=()), want)
    assert_same(c_outputs(fixed, xq, tmp_path / "sanitized", name=name), want)


@needs_cc
@pytest.mark.parametrize("path", TORCH, ids=[p.stem for p in TORCH])
def test_torch_export_c_matches_runtime(
    path: Path, rng: np.random.Generator, tmp_path: Path
) -> None:
    graph = optimize(load_onnx(path))
    x = rng.uniform(-1, 1, (32, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    fixed, xq = quantized(graph, x)
    assert_same(c_outputs(fixed, xq, tmp_path), runtime_outputs(fixed, xq))


@needs_cc
@pytest.mark.parametrize("example", int8_examples(), ids=lambda ex: ex.name)
def test_op_example_c_matches_runtime(example, rng: np.random.Generator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fixed, xq = quantized_example(example, rng, 24)
    want = runtime_outputs(fixed, xq)
    assert_same(c_outputs(fixed, xq, tmp_path), want)


@needs_cc
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs())
def test_random_graphs_c_match_runtime(case: tuple) -> None:
    import tempfile

    graph = optimize(import_model(build_mixed_graph(*case)))
    x = np.random.default_rng(case[-1]).uniform(
        -1, 1, (12, *graph.type_of(graph.inputs[0]).shape[1:])
    )
    fixed, xq = quantized(graph, x.astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(c_outputs(fixed, xq, Path(tmp), extra=()), runtime_outputs(fixed, xq))


@needs_cc
def test_single_rounding_c_matches_runtime(tmp_path: Path) -> None:
    fixed, xq = fixed_model("digits_cnn")
    sources = generate_c(fixed, "digits_cnn", rounding="single")
    program = build_harness(sources, xq[:100], load_target("host"), tmp_path, SANITIZERS)
    got = run_harness(program, load_target("host"), 10).outputs
    want = Runtime(fixed, "single").run(xq[:100])
    assert_same(got, np.asarray(want).reshape(100, -1))


@needs_cc
@pytest.mark.parametrize("path", TFLITE_FILES, ids=[p.stem for p in TFLITE_FILES])
def test_c_from_tflite_made_elsewhere(path: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    """`convert MODEL.tflite --emit c`: the C of a TFLiteConverter file equals edgenn's runtime (which
    tests/test_tflite_reader.py proves equal to TFLM on the same files)."""
    out = tmp_path / "out"
    result = run_cli("convert", str(path), "-o", str(out), "--emit", "c")
    assert result.returncode == 0, result.stderr
    from edgenn.frontend.tflite import load_tflite

    graph = load_tflite(path)
    t = graph.type_of(graph.inputs[0])
    xq = rng.integers(-128, 128, (16, *t.shape[1:])).astype(np.int8)
    assert_same(
        c_outputs(graph, xq, tmp_path / "build", name=path.stem), runtime_outputs(graph, xq)
    )


# ---- emulated devices ----


@needs_arm
@pytest.mark.parametrize("dsp", [True, False], ids=["smlad", "portable"])
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_c_on_cortex_m4_qemu(name: str, dsp: bool, tmp_path: Path) -> None:
    fixed, xq = fixed_model(name)
    xq = xq[:: max(1, len(xq) // 40)]  # an even sample of the test set
    got = c_outputs(fixed, xq, tmp_path, "cortex-m4-qemu", extra=(), dsp=dsp)
    assert_same(got, runtime_outputs(fixed, xq))
    if dsp:  # the DSP path really is compiled in
        import subprocess

        dump = subprocess.run(
            ["arm-none-eabi-objdump", "-d", str(tmp_path / "harness.elf")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert re.search(r"\bsmlad\b", dump)


@needs_aarch64
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_c_on_aarch64_qemu(name: str, tmp_path: Path) -> None:
    fixed, xq = fixed_model(name)
    xq = xq[:: max(1, len(xq) // 100)]
    got = c_outputs(fixed, xq, tmp_path, "raspberry-pi-4", extra=())
    assert_same(got, runtime_outputs(fixed, xq))


# ---- names, determinism, footprint, bad input ----

HOSTILE = 'x*/ system("rm -rf /"); /*'


def hostile_graph() -> tuple[Graph, np.ndarray]:
    """Node names and the input tensor's name carry a comment break-out, a preprocessor line and a
    trigraph line splice."""
    s = Stack((1, 2, 6, 6), seed=3)
    y = s.conv(s.input.name, 2, 4, (3, 3), pads=[1, 1, 1, 1])
    y = s.op("Relu", [y])
    y = s.op("GlobalAveragePool", [y])
    y = s.op("Flatten", [y])
    model = s.model(y)
    tensor = HOSTILE + " input"
    model.graph.input[0].name = tensor
    for node in model.graph.node:
        node.name = HOSTILE + "\n#include </etc/passwd> ??/"
        node.input[:] = [tensor if name == "input" else name for name in node.input]
    graph = optimize(import_model(model))
    x = np.random.default_rng(0).uniform(-1, 1, (8, 2, 6, 6)).astype(np.float32)
    return quantized(graph, x)


@needs_cc
def test_hostile_names_become_harmless_code(tmp_path: Path) -> None:
    fixed, xq = hostile_graph()
    sources = generate_c(fixed, HOSTILE)
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", sources.name)
    for text in sources.files.values():
        assert "??/" not in text and not re.search(r"\\$", text, re.MULTILINE)  # no line splices
        comments = re.findall(r"/\*(.*?)\*/", text, re.DOTALL)
        assert all("/*" not in c for c in comments)  # each comment ends where it should
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
        assert "system(" not in code and "passwd" not in code
        for header in re.findall(r"#include\s+[<\"]([^>\"]*)", code):
            assert header in {"stdint.h", "string.h"} or header in sources.files
    assert_same(c_outputs(fixed, xq, tmp_path, name=HOSTILE), runtime_outputs(fixed, xq))


def test_generated_c_is_deterministic() -> None:
    fixed, _ = fixed_model("digits_cnn")
    first = generate_c(fixed, "digits_cnn").files
    again = generate_c(convert(MODELS / "digits_cnn.onnx").fixed_graph, "digits_cnn").files
    assert first == again
    assert set(first) == {
        "CMakeLists.txt",
        "digits_cnn.mk",
        "conv.c",
        "digits_cnn_model.c",
        "digits_cnn_model.h",
        "digits_cnn_weights.c",
        "edgenn_config.h",
        "edgenn_dot.h",
        "edgenn_kernels.h",
        "edgenn_registry.h",
        "fully_connected.c",
        "pool.c",
    }  # only the kernels the model uses
    header = first["digits_cnn_model.h"]
    # the plan's 3072 bytes, and room after them for the 3x3 convolutions' window pairs
    for macro in ("INPUT_SIZE 64", "OUTPUT_SIZE 10", "ARENA_SIZE 3360"):
        assert f"#define DIGITS_CNN_{macro}" in header
    assert "int digits_cnn_invoke(const int8_t *input, int8_t *output);" in header


def test_gather_scratch_overlaps_no_live_buffer() -> None:
    """Each GATHER step that copies its window pair gets 2 x stride arena bytes that no buffer alive
    at that step touches; 1x1 steps over every pixel read their windows in place (-1)."""
    from edgenn.ops.conv import CONV_GATHER, CONV_ROW

    fixed, _ = fixed_model("digits_cnn")
    sources = generate_c(fixed, "digits_cnn")
    program = sources.program
    rows = [
        (i, [int(v) for v in re.findall(r"-?\d+", body)])
        for i, body in re.findall(
            r"step_(\d+)\[\d*\] = \{([^}]*)\}", sources.files["digits_cnn_model.c"]
        )
    ]
    gathers = [(int(i), row) for i, row in rows if row[0] == CONV_GATHER.opcode]
    assert gathers, "digits_cnn has GATHER convolutions"
    for step, row in gathers:
        offset, size = row[CONV_ROW.scratch], 2 * row[CONV_ROW.stride]
        if offset < 0:
            assert (row[CONV_ROW.kh], row[CONV_ROW.kw]) == (1, 1)
            continue
        assert offset + size <= sources.arena_bytes
        for b in program.plan.buffers:
            start = program.plan.offsets[b.name]
            if b.first <= step <= b.last:
                assert offset >= start + b.size or start >= offset + size, (step, b.name)


@needs_cc
@pytest.mark.parametrize("kernel", [(2, 2), (3, 3)], ids=["K multiple of 4", "K padded"])
def test_first_layers_run_as_gather_in_c(kernel: tuple[int, int], tmp_path: Path) -> None:
    """A first layer (one input channel: the runtime's OUTER mode) runs in C as a GATHER conv: its
    weights as rows of whole words (in place when K is whole words, else appended), -zp * sum(w) in
    the bias; the outputs equal the runtime's."""
    from edgenn.ops.conv import CONV_GATHER, CONV_OUTER

    s = Stack((1, 1, 12, 10), seed=4)
    y = s.op("Relu", [s.conv("input", 1, 24, kernel, pads=[1, 1, 1, 1])])
    graph = optimize(import_model(s.model(s.op("Relu", [s.conv(y, 24, 8, (1, 1))]))))
    x = np.random.default_rng(4).uniform(-1, 1, (6, 1, 12, 10)).astype(np.float32)
    fixed, xq = quantized(graph, x)
    runtime = Runtime(fixed)
    assert CONV_OUTER.opcode in runtime.program.rows[:, 0]
    sources = generate_c(fixed, "first")
    rows = re.findall(r"step_\d+\[\d*\] = \{\s*(-?\d+),", sources.files["first_model.c"])
    assert str(CONV_OUTER.opcode) not in rows and str(CONV_GATHER.opcode) in rows
    k = kernel[0] * kernel[1]
    grown = 0 if k % 4 == 0 else 24 * -(-k // 4) * 4
    assert sources.program.weights.size == runtime.program.weights.size + grown
    assert_same(c_outputs(fixed, xq, tmp_path), runtime_outputs(fixed, xq))


def test_c_uses_the_runtime_arena_plan() -> None:
    fixed, _ = fixed_model("digits_mlp")
    sources = generate_c(fixed, "digits_mlp")
    runtime = Runtime(fixed)
    assert sources.program.plan.offsets == runtime.program.plan.offsets
    assert f"DIGITS_MLP_ARENA_SIZE {runtime.arena_bytes}" in sources.files["digits_mlp_model.h"]


@cache
def wide_model(name: str) -> tuple[Graph, np.ndarray]:
    """The bundled model with every layer that can be 16x8 promoted, and 48 test inputs."""
    x = np.load(MODELS / f"{name}_test.npz")["x"][:48]
    graph = optimize(load_onnx(MODELS / f"{name}.onnx"))
    fixed = quantize_graph(graph, calibrate(graph, x), wide_capable(graph))
    assert any(v.type.dtype.value == "int16" for v in fixed.values.values())
    return fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)


@needs_cc
@pytest.mark.parametrize("name", BUNDLED)
def test_16x8_model_c_matches_runtime_on_host(name: str, tmp_path: Path) -> None:
    fixed, xq = wide_model(name)
    assert_same(c_outputs(fixed, xq, tmp_path), runtime_outputs(fixed, xq))


@needs_arm
@pytest.mark.parametrize("name", BUNDLED)
def test_16x8_model_c_on_cortex_m4_qemu(name: str, tmp_path: Path) -> None:
    fixed, xq = wide_model(name)
    got = c_outputs(fixed, xq[::4], tmp_path, "cortex-m4-qemu", extra=())
    assert_same(got, runtime_outputs(fixed, xq[::4]))


@needs_cc
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs(), st.integers(0, 2**16))
def test_random_mixed_precision_c_matches_runtime(case: tuple, mask: int) -> None:
    """Random subsets of layers promoted to 16x8 (LeakyRelu, Add, pooling, the int8/int16
    boundaries...) in C, against the runtime."""
    import tempfile

    fixed, xq = mixed_precision(case, mask, 8)
    as_bytes = np.ascontiguousarray(xq).reshape(len(xq), -1).view(np.int8)
    want = np.ascontiguousarray(Runtime(fixed).run(xq)).reshape(len(xq), -1).view(np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(c_outputs(fixed, as_bytes, Path(tmp), extra=()), want)


CONFORMANCE = Path(__file__).parent / "data" / "conformance"


@needs_cc
@pytest.mark.parametrize("name", ["mlp_16x8", "residual_logits_16x8"])
def test_c_of_16x8_tflite_made_by_the_tensorflow_converter(name: str, tmp_path: Path) -> None:
    """16x8 files from TensorFlow's converter (int16 inputs and outputs) in C, against the runtime
    (which tests/test_conformance.py holds to TFLM)."""
    from edgenn.frontend.tflite import read_tflite

    graph = read_tflite((CONFORMANCE / f"{name}.tflite").read_bytes(), name)
    x = np.load(CONFORMANCE / f"{name}_inputs.npy")
    assert x.dtype == np.int16
    as_bytes = np.ascontiguousarray(x).reshape(len(x), -1).view(np.int8)
    want = np.ascontiguousarray(Runtime(graph).run(x)).reshape(len(x), -1).view(np.int8)
    assert_same(c_outputs(graph, as_bytes, tmp_path), want)


def test_16x8_layers_without_c_kernels_are_named() -> None:
    """16x8 Softmax, Logistic and Tanh (in files made elsewhere) have no C kernels yet."""
    from edgenn.frontend.tflite import read_tflite

    graph = read_tflite((CONFORMANCE / "depthwise_16x8.tflite").read_bytes(), "depthwise_16x8")
    with pytest.raises(UnsupportedOpError, match=r"no C kernel .*Tanh, 16x8.*Sigmoid, 16x8"):
        generate_c(graph, "mixed")


TINY_BOARD = """
name = "tiny"
flash_bytes = 8192
ram_bytes = 1024
[build]
cc = "gcc"
"""


def test_model_too_big_for_target_is_refused_before_writing(tmp_path: Path) -> None:
    profile = tmp_path / "tiny.toml"
    profile.write_text(TINY_BOARD)
    fixed, _ = fixed_model("digits_cnn")
    # the C arena: the plan's 3,072 bytes and the 3x3 convolutions' window pairs after them
    with pytest.raises(FootprintError, match=r"arena 3,360 B exceeds tiny's RAM 1,024 B .*largest"):
        check_fits(generate_c(fixed, "m"), fixed, load_target(str(profile)))
    out = tmp_path / "out"
    args = ["convert", str(MODELS / "digits_cnn.onnx"), "-o", str(out), "--emit", "c"]
    result = run_cli(*args, "--target", str(profile))
    assert result.returncode == 2
    assert "flash 8,192 B" in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("edgenn")]) == 1
    assert not out.exists()
    forced = run_cli(*args, "--target", str(profile), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "c" / "digits_cnn_model.c").is_file()


@needs_arm
def test_footprint_meets_targets_on_cortex_m4() -> None:
    """RAM (arena + measured stack) at most 0.7x TFLM's arena; flash within weights + 12 KB."""
    from edgenn.sim.footprint import measure_footprint

    fixed, _ = fixed_model("digits_cnn")
    report = measure_footprint(fixed, "digits_cnn", load_target("cortex-m4-qemu"))
    assert report["stack_bytes"] is not None and 0 < report["stack_bytes"] < 4096
    assert report["ram_bytes"] <= 0.7 * report["tflm_arena"]["total"]
    assert report["flash_bytes"] <= report["weights_bytes"] + 12 * 1024
    counts = report["instructions_per_inference"]
    assert counts["default"] < counts["portable"]  # SMLAD pays off (exact counts, not timings)
