"""The op registry drives the backends: every integer kernel is declared once (Numba function, row
layout by name, opcode from the registry, its C kernel) and every table derived from it is complete,
or an EXCLUDES entry says why not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS

from edgenn.errors import GraphError, QuantizationError
from edgenn.ops import KERNELS, REGISTRY, kernel_for, row_layout

C_EXCLUDES = {  # kernel -> why it has no C kernel yet
    name: "16x8 Logistic/Tanh and Softmax have no C kernels yet (their interpolated tables)"
    for name in ("logistic_tanh16", "softmax16")
}
TFLITE_EXCLUDES: dict[str, str] = {}  # IR op with an integer kernel -> why it has no TFLite form


def test_opcodes_are_given_by_the_registry_without_collisions() -> None:
    opcodes = sorted(k.opcode for k in KERNELS.values())
    assert opcodes == list(range(1, len(KERNELS) + 1))
    assert all(kernel_for(k.opcode) is k for k in KERNELS.values())


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_is_a_numba_function_with_a_named_row(name: str) -> None:
    kernel = KERNELS[name]
    assert hasattr(kernel.function, "py_func"), "kernels are @njit functions"
    assert kernel.layout._fields[0] == "op" and kernel.layout.op == 0
    assert list(kernel.layout) == list(range(len(kernel.layout)))
    assert kernel.prepared_fields == len(kernel.fields) - len(kernel.c_only)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_has_its_c_kernel_or_a_reason(name: str) -> None:
    from edgenn.codegen.c import KERNEL_DIR

    kernel = KERNELS[name]
    if kernel.c_function is None:
        assert name in C_EXCLUDES, f"kernel '{name}' has no C kernel and no EXCLUDES reason"
        return
    assert name not in C_EXCLUDES, f"kernel '{name}' has a C kernel: drop its EXCLUDES entry"
    source = KERNEL_DIR / str(kernel.c_source)
    assert source.is_file(), source
    assert f"void {kernel.c_function}(" in source.read_text()


def test_every_op_with_an_integer_kernel_maps_to_tflite_or_has_a_reason() -> None:
    from edgenn.codegen.tflite import LOWERINGS, VERSIONS
    from edgenn.frontend.tflite import OPERATORS

    integer_ops = {name for name, spec in REGISTRY.items() if spec.int8 is not None}
    missing = integer_ops - set(LOWERINGS) - set(TFLITE_EXCLUDES)
    assert not missing, f"no TFLite lowering and no EXCLUDES reason: {sorted(missing)}"
    unread = set(VERSIONS) - set(OPERATORS)  # what the writer emits, the reader takes back
    assert not unread, f"written but not read: {sorted(unread)}"


def test_rows_are_built_by_name_and_checked_against_their_layout() -> None:
    layout = row_layout("demo", "x y n")
    assert (layout.op, layout.x, layout.y, layout.n) == (0, 1, 2, 3)
    with pytest.raises(GraphError, match="names a field twice"):
        row_layout("twice", "x y x")
    conv = KERNELS["conv_gather"]
    with pytest.raises(GraphError, match=r"row fields \['zp_out'\] missing or unknown"):
        conv.row(**{f: 0 for f in conv.fields[: conv.prepared_fields] if f != "zp_out"})


def test_a_prepare_that_writes_another_count_than_declared_is_refused() -> None:
    from edgenn.ir import Node
    from edgenn.runtime.program import check_row

    kernel = KERNELS["fully_connected"]
    node = Node("fc", "FullyConnected", ("x", "w", "b"), ("y",))
    check_row([kernel.opcode, *range(kernel.prepared_fields)], node)
    n = kernel.prepared_fields + 1  # with the opcode
    with pytest.raises(
        QuantizationError, match=f"declares {n} row fields, its prepare wrote {n - 1}"
    ):
        check_row([kernel.opcode, *range(kernel.prepared_fields - 1)], node)


@pytest.mark.parametrize("model", ["digits_mlp", "digits_cnn", "mnist1d_cnn"])
def test_a_model_compiles_only_the_kernels_its_program_uses(model: str) -> None:
    from edgenn.compile import convert
    from edgenn.runtime import Runtime

    runtime = Runtime(convert(MODELS / f"{model}.onnx").fixed_graph)
    used = {kernel_for(int(op)).name for op in runtime.program.rows[:, 0]}
    source = Path(runtime._kernels.__file__).read_text()
    imported = {line.split(" as ")[1].removesuffix("_kernel") for line in source.splitlines()
                if line.startswith("from edgenn.ops.")}  # fmt: skip
    assert imported == used and len(used) < len(KERNELS)
    for opcode in {int(op) for op in runtime.program.rows[:, 0]}:
        kernel = kernel_for(opcode)
        rows = runtime.program.rows[runtime.program.rows[:, 0] == opcode]
        assert np.all(rows[:, kernel.prepared_fields + 1 :] == 0) or kernel.tail


@pytest.mark.parametrize("name", ["residual_int8", "residual_16x8"])
def test_a_tflite_mean_is_written_back_as_it_came(name: str) -> None:
    """Found by the registry test: the reader's Mean (any axes) had no TFLite lowering."""
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    from conftest import ROOT

    from edgenn.codegen.tflite import to_tflite
    from edgenn.frontend.tflite import read_tflite
    from edgenn.interop import run_tflm

    folder = ROOT / "tests" / "data" / "conformance"
    data = (folder / f"{name}.tflite").read_bytes()
    graph = read_tflite(data, name)
    assert any(n.op == "Mean" for n in graph.nodes)
    x = np.load(folder / f"{name}_inputs.npy")
    assert np.array_equal(run_tflm(to_tflite(graph), x), run_tflm(data, x))


def test_c_kernels_read_rows_by_field_name() -> None:
    """The C kernels index rows only through edgenn_registry.h, generated from the declared layouts."""
    import re

    from edgenn.codegen.c import KERNEL_DIR

    for source in sorted(KERNEL_DIR.glob("*.[ch]")):
        text = source.read_text()
        assert not re.search(r"\b(p|row)\[\d", text), f"{source.name} reads a row field by number"
        assert not re.search(r"\bp \+ \d", text), f"{source.name} offsets a row by number"
