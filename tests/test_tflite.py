"""The .tflite export: the same bits on TensorFlow Lite Micro as on edgenn's runtime (bundled models over
their whole test sets, torch-exported stacks, random graphs), LiteRT within one LSB, a well-formed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import build_mixed_graph, int8_examples, mixed_graphs, mixed_precision
from conftest import MODELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgenn.errors import QuantizationError, UnsupportedOpError
from edgenn.frontend.onnx import import_model, load_onnx
from edgenn.ir import Graph
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph
from edgenn.runtime import Runtime

tflite = pytest.importorskip("tflite", reason="the tflite extra is not installed")
pytest.importorskip("tflite_micro", reason="tflite-micro (TensorFlow Lite Micro) is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (LiteRT) is not installed")

from edgenn.codegen.tflite import to_tflite  # noqa: E402
from edgenn.interop import run_litert, run_tflm  # noqa: E402

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))
TORCH = sorted((Path(__file__).parent / "data" / "torch").glob("*.onnx"))


def fixed_point(graph: Graph, x: np.ndarray) -> tuple[Graph, np.ndarray]:
    fixed = quantize_graph(graph, calibrate(graph, x))
    qp = fixed.type_of(fixed.inputs[0]).qparams
    assert qp is not None
    return fixed, quantize_array(x, qp)


def differing(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return int(np.count_nonzero(diff)), int(diff.max(initial=0))


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_bit_exact_on_tflm(name: str) -> None:
    x = np.load(MODELS / f"{name}_test.npz")["x"]
    fixed, xq = fixed_point(optimize(load_onnx(MODELS / f"{name}.onnx")), x)
    model = to_tflite(fixed)
    ours = Runtime(fixed).run(xq)
    tflm = run_tflm(model, xq)
    litert = run_litert(model, xq)
    print(
        f"{name}: TFLM {differing(tflm, ours)}, LiteRT {differing(litert, ours)} (differing, max LSB)"
    )
    assert differing(tflm, ours) == (0, 0)
    assert differing(litert, ours)[1] <= 1


@pytest.mark.parametrize("path", TORCH, ids=[p.stem for p in TORCH])
def test_torch_export_bit_exact_on_tflm(path: Path, rng: np.random.Generator) -> None:
    graph = optimize(load_onnx(path))
    x = rng.uniform(-1, 1, (32, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    fixed, xq = fixed_point(graph, x)
    assert differing(run_tflm(to_tflite(fixed), xq), Runtime(fixed).run(xq)) == (0, 0)


@pytest.mark.parametrize("example", int8_examples(), ids=lambda ex: ex.name)
def test_op_example_bit_exact_on_tflm(example, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """Every op's own examples through the writer and TFLM: a new op's TFLite lowering is checked
    by declaring examples, as its kernel is (against the spec) and its C (against the runtime)."""
    from test_quantization import quantized_example

    fixed, xq = quantized_example(example, rng, 16)
    try:
        model = to_tflite(fixed)
    except (QuantizationError, UnsupportedOpError) as err:  # the writer's named refusal
        pytest.skip(f"TFLite has no form for this case: {err}")
    assert differing(run_tflm(model, xq), Runtime(fixed).run(xq)) == (0, 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs())
def test_random_graphs_bit_exact_on_tflm(case: tuple) -> None:
    graph = optimize(import_model(build_mixed_graph(*case)))
    x = np.random.default_rng(case[-1]).uniform(
        -1, 1, (8, *graph.type_of(graph.inputs[0]).shape[1:])
    )
    fixed, xq = fixed_point(graph, x.astype(np.float32))
    assert differing(run_tflm(to_tflite(fixed), xq), Runtime(fixed).run(xq)) == (0, 0)


def test_file_is_well_formed_and_deterministic() -> None:
    x = np.load(MODELS / "digits_cnn_test.npz")["x"]
    fixed, _ = fixed_point(optimize(load_onnx(MODELS / "digits_cnn.onnx")), x)
    data = to_tflite(fixed)
    assert data[4:8] == b"TFL3" and data == to_tflite(fixed)
    model = tflite.Model.GetRootAsModel(data, 0)
    assert model.Version() == 3 and model.SubgraphsLength() == 1
    graph = model.Subgraphs(0)
    ops = [
        model.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode()
        for i in range(graph.OperatorsLength())
    ]
    assert (
        ops.count(tflite.BuiltinOperator.CONV_2D) == 3
        and tflite.BuiltinOperator.FULLY_CONNECTED in ops
    )
    weights = sum(v.type.nbytes for v in fixed.values.values() if v.is_const)
    assert len(data) < weights + 8192  # the file is the weights plus a small header


def test_unmappable_fused_clamp_is_named() -> None:
    from builders import Stack

    s = Stack((1, 4))
    y = s.op(
        "Clip",
        [
            s.gemm("input", 4, 3),
            s.const(np.array(-0.5, np.float32)),
            s.const(np.array(0.5, np.float32)),
        ],
    )
    graph = optimize(import_model(s.model(y)))
    fixed, _ = fixed_point(
        graph, np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    )
    with pytest.raises(
        QuantizationError, match=r"node 'Gemm_1' \(FullyConnected\): a fused clamp to \(-0.5, 0.5\)"
    ):
        to_tflite(fixed)


def test_float_io_file_matches_run_float_on_tflm() -> None:
    """QUANTIZE/DEQUANTIZE at the file's ends compute exactly what Runtime.run_float does."""
    x = np.load(MODELS / "mnist1d_cnn_test.npz")["x"][:200]
    fixed, _ = fixed_point(optimize(load_onnx(MODELS / "mnist1d_cnn.onnx")), x)
    ours = Runtime(fixed).run_float(x)
    got = run_tflm(to_tflite(fixed, float_io=True), x.astype(np.float32))
    assert got.dtype == np.float32 and np.array_equal(got.reshape(ours.shape), ours)


# ---- 16x8: int16 activations, int8 weights ----


@pytest.mark.parametrize("name", BUNDLED)
def test_int16_model_bit_exact_on_tflm(name: str) -> None:
    from edgenn.quant.quantize import wide_capable

    x = np.load(MODELS / f"{name}_test.npz")["x"][:200]
    graph = optimize(load_onnx(MODELS / f"{name}.onnx"))
    fixed = quantize_graph(graph, calibrate(graph, x), wide_capable(graph))
    assert any(v.type.dtype.value == "int16" for v in fixed.values.values())
    xq = quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)
    ours = Runtime(fixed).run(xq)
    assert differing(run_tflm(to_tflite(fixed), xq).reshape(ours.shape), ours) == (0, 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs(), st.integers(0, 2**16))
def test_random_mixed_precision_bit_exact_on_tflm(case: tuple, mask: int) -> None:
    """A random subset of layers promoted to 16x8: the int8/int16 boundaries included."""
    fixed, xq = mixed_precision(case, mask, 8)
    ours = Runtime(fixed).run(xq)
    assert differing(run_tflm(to_tflite(fixed), xq).reshape(ours.shape), ours) == (0, 0)
