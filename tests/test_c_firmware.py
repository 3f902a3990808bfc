"""Generated C as firmware uses it: a C++ program (g++ -Wall -Wextra -Werror) links two different
models, each folder compiled whole, one with TFLM's double rounding and one with single rounding,
sharing one caller-owned arena; both match the Numba runtime bit for bit. Also: channels-last
(NHWC) inputs against the model's own layout, unique prefixes, and the CLI's C options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from builders import Stack
from test_codegen_c import fixed_model, needs_cc

from edgenn.codegen.c import c_identifier, generate_c
from edgenn.errors import InputError
from edgenn.frontend.onnx import import_model
from edgenn.passes import optimize
from edgenn.passes.io_layout import changed_io, channels_last_io
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph
from edgenn.runtime import Runtime
from edgenn.runtime.program import build_program

MAIN = """
#include <cstdio>
#include <cstring>
#include "cnn_model.h"
#include "mlp_model.h"
#include "inputs.h"

// one arena for both models: they never run at the same time
constexpr int kArena = CNN_ARENA_SIZE > MLP_ARENA_SIZE ? CNN_ARENA_SIZE : MLP_ARENA_SIZE;
alignas(CNN_ARENA_ALIGN) static int8_t shared_arena[kArena];

int main() {
    int8_t out[CNN_OUTPUT_SIZE > MLP_OUTPUT_SIZE ? CNN_OUTPUT_SIZE : MLP_OUTPUT_SIZE];
    for (int s = 0; s < SAMPLES; s++) {
        cnn_invoke(cnn_inputs[s], out, shared_arena);
        for (int i = 0; i < CNN_OUTPUT_SIZE; i++) std::printf("%d ", out[i]);
        std::printf("\\n");
        mlp_invoke(mlp_inputs[s], out, shared_arena);
        for (int i = 0; i < MLP_OUTPUT_SIZE; i++) std::printf("%d ", out[i]);
        std::printf("\\n");
    }
    return 0;
}
"""

needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


def c_array(name: str, rows: np.ndarray) -> str:
    body = ",\n".join("{" + ", ".join(map(str, r)) + "}" for r in rows.reshape(len(rows), -1))
    return f"static const int8_t {name}[][{rows[0].size}] = {{\n{body}\n}};\n"


def write_folder(folder: Path, files: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return sorted(folder.glob("*.c"))


def compile_c(sources: list[Path], folder: Path, out: Path) -> list[Path]:
    objects = []
    for source in sources:
        obj = out / f"{folder.name}_{source.stem}.o"
        flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{folder}"]
        subprocess.run(["gcc", *flags, "-c", str(source), "-o", str(obj)], check=True)
        objects.append(obj)
    return objects


@needs_cc
@needs_cxx
def test_two_models_link_into_one_cpp_program_with_a_shared_arena(tmp_path: Path) -> None:
    cnn, cnn_x = fixed_model("digits_cnn")
    mlp, mlp_x = fixed_model("digits_mlp")
    samples = 20
    cnn_c = generate_c(cnn, "digits_cnn", prefix="cnn", arena="caller")
    mlp_c = generate_c(mlp, "digits_mlp", prefix="mlp", arena="caller", rounding="single")
    objects = []
    for name, sources in (("cnn", cnn_c), ("mlp", mlp_c)):
        folder = tmp_path / name
        objects += compile_c(write_folder(folder, sources.files), folder, tmp_path)
    (tmp_path / "inputs.h").write_text(
        f"#define SAMPLES {samples}\n"
        + c_array("cnn_inputs", cnn_x[:samples])
        + c_array("mlp_inputs", mlp_x[:samples])
    )
    (tmp_path / "main.cpp").write_text(MAIN)
    program = tmp_path / "two_models"
    includes = [f"-I{tmp_path / 'cnn'}", f"-I{tmp_path / 'mlp'}", f"-I{tmp_path}"]
    cxx = ["g++", "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", *includes]
    subprocess.run(
        [*cxx, str(tmp_path / "main.cpp"), *map(str, objects), "-o", str(program)], check=True
    )
    lines = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout
    rows = [list(map(int, line.split())) for line in lines.splitlines()]
    want_cnn = Runtime(cnn).run(cnn_x[:samples]).reshape(samples, -1)
    want_mlp = Runtime(mlp, "single").run(mlp_x[:samples]).reshape(samples, -1)
    assert np.array_equal(np.array(rows[0::2]), want_cnn)
    assert np.array_equal(np.array(rows[1::2]), want_mlp)


def nchw_camera_model():  # type: ignore[no-untyped-def]
    """A 96x96x3 channels-first input (a camera frame), as the issue's arena figures use."""
    s = Stack((1, 3, 96, 96), seed=0)
    h = s.op("Relu", [s.conv("input", 3, 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])])
    h = s.op("Relu", [s.conv(h, 8, 16, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])])
    h = s.op("Flatten", [s.op("GlobalAveragePool", [h])])
    graph = optimize(import_model(s.model(s.gemm(h, 16, 4)), batch_size=1))
    x = np.random.default_rng(0).uniform(-1, 1, (6, 3, 96, 96)).astype(np.float32)
    fixed = quantize_graph(graph, calibrate(graph, x))
    return fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)


@needs_cc
def test_nhwc_input_matches_the_model_layout_without_its_transpose(tmp_path: Path) -> None:
    from test_codegen_c import c_outputs

    fixed, xq = nchw_camera_model()
    nhwc = channels_last_io(fixed)
    assert changed_io(fixed, nhwc) == {"input": nhwc.inputs[0]}
    assert nhwc.type_of(nhwc.inputs[0]).shape == (1, 96, 96, 3)
    before, after = build_program(fixed).plan.size, build_program(nhwc).plan.size
    print(f"arena for a 96x96x3 input: {before:,} B (NCHW), {after:,} B (NHWC)")
    assert before - after >= 96 * 96 * 3 // 3  # the transposed copy of the input is gone
    x_nhwc = np.ascontiguousarray(xq.transpose(0, 2, 3, 1))
    want = Runtime(fixed).run(xq).reshape(len(xq), -1)
    assert np.array_equal(Runtime(nhwc).run(x_nhwc).reshape(len(xq), -1), want)
    assert np.array_equal(c_outputs(nhwc, x_nhwc, tmp_path, extra=()), want)


def test_prefixes_are_unique_and_checked() -> None:
    names = ["model", "Model", "MODEL", "my model", "my_model", "a" * 60, "a" * 61, "1st"]
    prefixes = [c_identifier(n) for n in names]
    assert len(set(prefixes)) == len(names), prefixes
    assert all(len(p) <= 48 and p.isidentifier() and p == p.lower() for p in prefixes)
    assert c_identifier("digits_cnn") == "digits_cnn"  # a name that is one already stays
    fixed, _ = fixed_model("digits_mlp")
    for bad in ("Bad", "9lives", "edgenn_x", "a" * 49, "semi;colon"):
        with pytest.raises(InputError, match="C prefix"):
            generate_c(fixed, "m", prefix=bad)


def test_cli_c_options(tmp_path: Path) -> None:
    from conftest import MODELS, run_cli

    out = tmp_path / "out"
    done = run_cli(
        "convert", str(MODELS / "digits_cnn.onnx"), "-o", str(out), "--emit", "c",
        "--c-prefix", "tiny", "--c-arena", "caller", "--c-layout", "nhwc",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "prefix tiny" in done.stdout and "(caller)" in done.stdout
    header = (out / "c" / "tiny_model.h").read_text()
    assert "int tiny_invoke(const int8_t *input, int8_t *output, int8_t *arena);" in header
    assert 'extern "C"' in header
    refused = run_cli("convert", str(MODELS / "digits_cnn.onnx"), "-o", str(tmp_path / "x"), "--c-prefix", "t")  # fmt: skip
    assert refused.returncode == 2 and "apply to --emit c" in refused.stderr
    assert not (tmp_path / "x").exists()


def two_model_project(tmp_path: Path, samples: int = 8) -> tuple[Path, np.ndarray, np.ndarray]:
    """Both models' folders (caller arenas, prefixes cnn and mlp) beside main.cpp and its inputs;
    the expected outputs, one row per sample."""
    cnn, cnn_x = fixed_model("digits_cnn")
    mlp, mlp_x = fixed_model("digits_mlp")
    for name, fixed in (("cnn", cnn), ("mlp", mlp)):
        write_folder(tmp_path / name, generate_c(fixed, name, prefix=name, arena="caller").files)
    (tmp_path / "inputs.h").write_text(
        f"#define SAMPLES {samples}\n"
        + c_array("cnn_inputs", cnn_x[:samples])
        + c_array("mlp_inputs", mlp_x[:samples])
    )
    (tmp_path / "main.cpp").write_text(MAIN)
    want_cnn = Runtime(cnn).run(cnn_x[:samples]).reshape(samples, -1)
    want_mlp = Runtime(mlp).run(mlp_x[:samples]).reshape(samples, -1)
    return tmp_path, want_cnn, want_mlp


def check_program_output(program: Path, want_cnn: np.ndarray, want_mlp: np.ndarray) -> None:
    lines = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout
    rows = [list(map(int, line.split())) for line in lines.splitlines()]
    assert np.array_equal(np.array(rows[0::2]), want_cnn)
    assert np.array_equal(np.array(rows[1::2]), want_mlp)


CMAKE_PROJECT = """cmake_minimum_required(VERSION 3.13)
project(two_models LANGUAGES C CXX)
add_subdirectory(cnn)
add_subdirectory(mlp)
add_executable(two_models main.cpp)
target_include_directories(two_models PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_options(two_models PRIVATE -Wall -Wextra -Werror)
target_link_libraries(two_models PRIVATE cnn mlp)
"""


@needs_cxx
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_generated_cmake_files_build_a_two_model_program(tmp_path: Path) -> None:
    project, want_cnn, want_mlp = two_model_project(tmp_path / "project")
    (project / "CMakeLists.txt").write_text(CMAKE_PROJECT)
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(project), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)  # fmt: skip
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    check_program_output(build / "two_models", want_cnn, want_mlp)


MAKEFILE = """include cnn/cnn.mk
include mlp/mlp.mk
OBJS := $(patsubst %.c,%.o,$(CNN_SRCS) $(MLP_SRCS))
two_models: main.cpp $(OBJS)
\tg++ -std=c++11 -Wall -Wextra -Werror -Icnn -Imlp -I. main.cpp $(OBJS) -o $@
cnn/%.o: cnn/%.c
\tgcc $(CNN_CFLAGS) -O2 -Wall -Wextra -Werror -c $< -o $@
mlp/%.o: mlp/%.c
\tgcc $(MLP_CFLAGS) -O2 -Wall -Wextra -Werror -c $< -o $@
"""


@needs_cxx
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_generated_makefile_fragments_build_a_two_model_program(tmp_path: Path) -> None:
    project, want_cnn, want_mlp = two_model_project(tmp_path)
    (project / "Makefile").write_text(MAKEFILE)
    subprocess.run(["make", "-C", str(project), "two_models"], check=True, capture_output=True)
    check_program_output(project / "two_models", want_cnn, want_mlp)


@pytest.mark.parametrize("precision", ["int16", "auto"])
def test_c_with_16x8_precision(tmp_path: Path, precision: str) -> None:
    """Every layer the quantizer can promote to 16x8 has a C kernel: --emit c takes any precision."""
    from conftest import MODELS, run_cli

    out = tmp_path / "out"
    done = run_cli(
        "convert", str(MODELS / "digits_cnn.onnx"), "-o", str(out), "--emit", "c",
        "--precision", precision,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "c" / "digits_cnn_model.c").is_file()


@needs_cc
def test_every_16x8_c_kernel_on_a_residual_block(tmp_path: Path) -> None:
    """Conv, LeakyRelu, Add, pooling, dense and the int8/int16 boundaries, all 16x8, in C."""
    from test_codegen_c import c_outputs

    from edgenn.ops import kernel_for
    from edgenn.quant.quantize import wide_capable

    s = Stack((1, 4, 6, 6), seed=1)
    h = s.op("LeakyRelu", [s.conv("input", 4, 8, (3, 3), pads=[1, 1, 1, 1])], alpha=0.1)
    h = s.op("LeakyRelu", [s.op("Add", [h, s.op("Relu", [s.conv(h, 8, 8, (1, 1))])])], alpha=0.2)
    model = s.model(s.gemm(s.op("Flatten", [s.op("GlobalAveragePool", [h])]), 8, 3))
    graph = optimize(import_model(model, batch_size=1))
    x = np.random.default_rng(0).uniform(-1, 1, (12, 4, 6, 6)).astype(np.float32)
    fixed = quantize_graph(graph, calibrate(graph, x), wide_capable(graph))
    xq = quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)
    runtime = Runtime(fixed)
    used = {kernel_for(int(op)).name for op in runtime.program.rows[:, 0]}
    assert {"conv16", "leaky_relu16", "binary16", "pool16", "fc16", "requantize_wide"} <= used
    want = np.ascontiguousarray(runtime.run(xq)).reshape(len(xq), -1).view(np.int8)
    got = c_outputs(fixed, np.ascontiguousarray(xq).reshape(len(xq), -1).view(np.int8), tmp_path)
    assert np.array_equal(got, want)
