"""Int8 quantization and the Numba runtime: fixed-point helpers against exact arithmetic, the runtime
against the independent numpy spec (tests/int8_spec.py) bit for bit, accuracy targets, bad input."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from builders import (
    build_conv_stack,
    build_mixed_graph,
    conv_stacks,
    int8_examples,
    mixed_graphs,
    mixed_precision,
    single_op_model,
)
from conftest import MODELS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from int8_spec import multiplier, requantize, run_spec
from onnx.shape_inference import InferenceError

from edgenn.errors import InputError, QuantizationError, ShapeError
from edgenn.frontend.onnx import import_model, load_onnx
from edgenn.ir import Graph
from edgenn.ops.dot import requantize_channels
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.fixed_point import (
    exp_on_negative_values,
    fixed_logistic,
    fixed_tanh,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from edgenn.quant.quantize import quantize_array, quantize_graph
from edgenn.reference import run_reference
from edgenn.runtime import Runtime

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))
TORCH = sorted((Path(__file__).parent / "data" / "torch").glob("*.onnx"))
MAX_DROP = {"digits_cnn": 0.003}  # accuracy points the int8 model may lose; 0.005 for the others


def round_half_away(value: Fraction) -> int:
    return int(math.copysign(math.floor(abs(value) + Fraction(1, 2)), value))


# ---- fixed-point arithmetic ----


@given(st.floats(1e-9, 1e4))
def test_quantize_multiplier_is_accurate_and_matches_spec(real: float) -> None:
    q, shift = quantize_multiplier(real)
    assert 2**30 <= q < 2**31
    assert (
        abs(Fraction(q) * Fraction(2) ** (shift - 31) - Fraction(real))
        <= Fraction(real) * Fraction(2) ** -30
    )
    assert (q, shift) == multiplier(real)


@given(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
@example(1, -(2**30))  # an exact negative tie: rounds up to 0
def test_srdhm_is_rounded_doubling_high_product(a: int, b: int) -> None:
    """gemmlowp's nudge makes SRDHM round half up (toward +inf), for negative products too."""
    want = 2**31 - 1 if a == b == -(2**31) else math.floor(Fraction(a * b, 2**31) + Fraction(1, 2))
    assert saturating_rounding_doubling_high_mul(a, b) == want


@given(st.integers(-(2**31), 2**31 - 1), st.integers(0, 31))
def test_rounding_divide_by_pot_rounds_half_away(x: int, e: int) -> None:
    assert rounding_divide_by_pot(x, e) == round_half_away(Fraction(x, 2**e))


@given(st.integers(-(2**20), 2**20), st.floats(1e-6, 0.99))
def test_mbqm_within_one_lsb_of_exact_and_equal_to_spec(x: int, real: float) -> None:
    q, shift = quantize_multiplier(real)
    exact = Fraction(x) * q * Fraction(2) ** (shift - 31)
    double = multiply_by_quantized_multiplier(x, q, shift, 0)
    single = multiply_by_quantized_multiplier(x, q, shift, 1)
    assert abs(double - exact) <= 1
    assert single == math.floor(exact + Fraction(1, 2))  # one rounding, ties up
    assert double == int(requantize(np.array([x]), q, shift)[0])
    assert single == int(requantize(np.array([x]), q, shift, single=True)[0])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**30), 2**30 - 1),  # accumulator
            st.integers(-(2**30), 2**30 - 1),  # bias
            st.integers(0, 2**31 - 1),  # multiplier
            st.integers(-31, 6),  # shift, positive ones included
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(-128, 127),
    st.sampled_from([(-128, 127), (-128, 0), (0, 127), (-3, 3)]),
)
# left shifts leaving int32 (wrapping, as TFLite computes), and a sum far out of range (adding the
# zero point must not wrap)
@example([(2**30 - 1, 2**30 - 1, 2**31 - 1, 1)] * 9, 5, (-128, 127))
@example([(-(2**30), -(2**30), 2**31 - 1, 0)] * 8 + [(7, 0, 2**30, 0)], -128, (-128, 127))
def test_runtime_requantize_equals_spec(
    channels: list[tuple[int, int, int, int]], zp: int, bounds: tuple[int, int]
) -> None:
    """The runtime's requantization (vector lanes plus a scalar tail) equals the spec on every value,
    including left shifts whose products leave int32 and saturated outputs."""
    acc, bias, q, shift = (np.array(column, np.int64) for column in zip(*channels))
    lo, hi = bounds
    out = np.zeros(len(acc), np.int8)
    requantize_channels(acc.astype(np.int32), bias.astype(np.int32), q, shift, 0, zp, lo, hi, out)
    want = np.clip(requantize(acc + bias, q, shift) + zp, lo, hi)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("value", [-7.9, -3.0, -1.0, -0.26, -0.1, -0.001, 0.0])
def test_fixed_point_exp_logistic_tanh_are_accurate(value: float) -> None:
    assert abs(exp_on_negative_values(int(value * 2**26), 5) / 2**31 - math.exp(value)) < 2e-6
    for v in (value, -value):
        raw = int(v * 2**27)
        assert abs(fixed_logistic(raw, 4) / 2**31 - 1 / (1 + math.exp(-v))) < 2e-6
        assert abs(fixed_tanh(raw, 4) / 2**31 - math.tanh(v)) < 4e-6


# ---- the runtime against the independent spec ----


def quantized(graph: Graph, data: np.ndarray) -> tuple[Graph, np.ndarray]:
    fixed = quantize_graph(graph, calibrate(graph, data))
    qp = fixed.type_of(fixed.inputs[0]).qparams
    assert qp is not None
    return fixed, quantize_array(data, qp)


def assert_runtime_matches_spec(fixed: Graph, xq: np.ndarray) -> None:
    for rounding in ("double", "single"):
        got = Runtime(fixed, rounding).run(xq)
        want = run_spec(fixed, xq, single=rounding == "single")
        assert got.dtype == want.dtype and got.shape == want.shape
        assert int(np.count_nonzero(got != want)) == 0, rounding


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_runtime_matches_spec(name: str) -> None:
    data = np.load(MODELS / f"{name}_test.npz")
    fixed, xq = quantized(optimize(load_onnx(MODELS / f"{name}.onnx")), data["x"])
    assert_runtime_matches_spec(fixed, xq)


@pytest.mark.parametrize("path", TORCH, ids=[p.stem for p in TORCH])
def test_torch_export_runtime_matches_spec(path: Path, rng: np.random.Generator) -> None:
    graph = optimize(load_onnx(path))
    x = rng.uniform(-1, 1, (64, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    assert_runtime_matches_spec(*quantized(graph, x))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs())
def test_random_mixed_graphs_match_spec(case: tuple) -> None:
    graph = optimize(import_model(build_mixed_graph(*case)))
    x = np.random.default_rng(case[-1]).uniform(
        -1, 1, (16, *graph.type_of(graph.inputs[0]).shape[1:])
    )
    assert_runtime_matches_spec(*quantized(graph, x.astype(np.float32)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_stacks())
def test_random_conv_stacks_match_spec(case: tuple) -> None:
    graph = optimize(import_model(build_conv_stack(*case)))
    x = np.random.default_rng(case[-1]).uniform(
        -1, 1, (16, *graph.type_of(graph.inputs[0]).shape[1:])
    )
    assert_runtime_matches_spec(*quantized(graph, x.astype(np.float32)))


# ---- 16x8: int16 activations against the spec's int16 kernels ----


def wide_softmax(fixed: Graph) -> bool:
    """An int16 Softmax, which the spec leaves to TFLM."""
    return any(
        n.op == "Softmax" and fixed.type_of(n.inputs[0]).dtype.value == "int16" for n in fixed.nodes
    )


@pytest.mark.parametrize("name", BUNDLED)
def test_int16_model_runtime_matches_spec(name: str) -> None:
    from edgenn.quant.quantize import wide_capable

    x = np.load(MODELS / f"{name}_test.npz")["x"][:300]
    graph = optimize(load_onnx(MODELS / f"{name}.onnx"))
    fixed = quantize_graph(graph, calibrate(graph, x), wide_capable(graph))
    assert any(v.type.dtype.value == "int16" for v in fixed.values.values())
    assert_runtime_matches_spec(fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_graphs(), st.integers(0, 2**16))
def test_random_mixed_precision_graphs_match_spec(case: tuple, mask: int) -> None:
    """A random subset of layers promoted to 16x8, the int8/int16 boundaries included."""
    from hypothesis import reject

    fixed, xq = mixed_precision(case, mask, 16)
    if wide_softmax(fixed):
        reject()
    assert_runtime_matches_spec(fixed, xq)


# ---- accuracy, batching ----


def quantized_example(example, rng: np.random.Generator, samples: int) -> tuple[Graph, np.ndarray]:  # type: ignore[no-untyped-def]
    """An op example as a one-sample int8 model and quantized inputs; skips (with the reason) the
    examples that do not make one."""
    if len(example.input_shapes) != 1:
        pytest.skip("several runtime inputs: covered by the random graphs")
    x = rng.uniform(-3, 3, (samples, *example.input_shapes[0][1:])).astype(np.float32)
    try:
        graph = optimize(import_model(single_op_model(example), batch_size=1))
        fixed, xq = quantized(graph, x)
        Runtime(fixed)  # the kernels' own refusals
    except QuantizationError as err:
        pytest.skip(f"no int8 kernel for this case: {err}")
    except (ShapeError, InferenceError) as err:
        pytest.skip(f"the example's constants do not fit batch 1: {err}")
    if fixed.type_of(fixed.outputs[0]).shape[0] != 1:
        pytest.skip("the op moves the batch axis: not a per-sample model")
    return fixed, xq


@pytest.mark.parametrize("example", int8_examples(), ids=lambda ex: ex.name)
def test_op_example_runtime_matches_spec(example, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """Every op's own examples (strides, dilations, padding, odd sizes: each kernel path)."""
    assert_runtime_matches_spec(*quantized_example(example, rng, 16))


@pytest.mark.parametrize("name", BUNDLED)
def test_int8_accuracy_within_target(name: str) -> None:
    data = np.load(MODELS / f"{name}_test.npz")
    graph = optimize(load_onnx(MODELS / f"{name}.onnx"))
    fixed = quantize_graph(graph, calibrate(graph, data["x"]))
    float_acc = np.mean(run_reference(graph, data["x"])[graph.outputs[0]].argmax(1) == data["y"])
    int8_acc = np.mean(Runtime(fixed).run_float(data["x"]).argmax(1) == data["y"])
    print(f"{name}: float {float_acc:.4f} int8 {int8_acc:.4f}")
    assert float_acc - int8_acc <= MAX_DROP.get(name, 0.005) + 1e-9


def test_batch_equals_single_samples() -> None:
    data = np.load(MODELS / "digits_cnn_test.npz")["x"][:20]
    fixed, xq = quantized(optimize(load_onnx(MODELS / "digits_cnn.onnx")), data)
    runtime = Runtime(fixed)
    batch = runtime.run(xq).copy()
    singles = np.concatenate([runtime.run(xq[i : i + 1]).copy() for i in range(len(xq))])
    assert np.array_equal(batch, singles)
    # the fast path on views of wider buffers: rows apart (unit-stride rows) and elements apart
    want = batch.reshape(len(xq), -1)
    flat = xq.reshape(len(xq), -1)
    for step in (1, 2):
        x = np.zeros((len(xq), 2 * flat.shape[1]), np.int8)[:, : step * flat.shape[1] : step]
        out = np.zeros((len(xq), 2 * want.shape[1]), np.int8)[:, : step * want.shape[1] : step]
        x[...] = flat
        assert np.array_equal(runtime.run_flat(x, out), want)


def test_trace_ends_with_the_output() -> None:
    data = np.load(MODELS / "digits_mlp_test.npz")["x"][:1]
    fixed, xq = quantized(optimize(load_onnx(MODELS / "digits_mlp.onnx")), data)
    runtime = Runtime(fixed)
    assert np.array_equal(runtime.trace(xq)[fixed.outputs[0]], runtime.run(xq))


# ---- bad input ----


@pytest.fixture(scope="module")
def cnn() -> Graph:
    return optimize(load_onnx(MODELS / "digits_cnn.onnx"))


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((5, 1, 8, 7), np.float32), r"shape \(5, 1, 8, 7\); expected \[N, 1, 8, 8\]"),
        (
            np.zeros((0, 1, 8, 8), np.float32),
            r"is empty; expected at least one sample shaped \[N, 1, 8, 8\]",
        ),
        (np.full((3, 1, 8, 8), np.nan, np.float32), "NaN or Inf"),
        (np.array([["a"]]), "dtype <U1; expected numbers shaped"),
    ],
)
def test_bad_calibration_data(cnn: Graph, data: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        calibrate(cnn, data)


def test_constant_activation_quantizes_without_division_by_zero(cnn: Graph) -> None:
    zeros = np.zeros((4, 1, 8, 8), np.float32)
    fixed = quantize_graph(cnn, calibrate(cnn, zeros))  # every range is [0, 0] or nearly
    out = Runtime(fixed).run_float(zeros)
    assert np.all(np.isfinite(out))


def test_accumulator_overflow_names_the_layer() -> None:
    from builders import Stack

    s = Stack((1, 70000))
    fc = s.op(
        "Gemm",
        ["input", s.const(np.ones((2, 70000), np.float32)), s.const(np.zeros(2, np.float32))],
        transB=1,
    )
    graph = optimize(import_model(s.model(fc)))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 70000)).astype(np.float32)
    with pytest.raises(QuantizationError, match="node 'Gemm_1' .*accumulator .* exceeds int32"):
        quantize_graph(graph, calibrate(graph, x))


def test_op_without_int8_kernel_is_named() -> None:
    from builders import Stack

    s = Stack((1, 4))
    out = s.op("Div", ["input", s.const(np.full((1, 4), 2.0, np.float32))])
    graph = optimize(import_model(s.model(out)))
    with pytest.raises(QuantizationError, match="node 'Div_1': op 'Div' has no int8 kernel"):
        quantize_graph(graph, calibrate(graph, np.ones((2, 4), np.float32)))


def test_runtime_rejects_wrong_input(cnn: Graph) -> None:
    fixed, _ = quantized(cnn, np.load(MODELS / "digits_cnn_test.npz")["x"][:8])
    with pytest.raises(InputError, match=r"expected int8\[N, 1, 8, 8\]"):
        Runtime(fixed).run(np.zeros((1, 1, 8, 8), np.float32))


# ---- observers ----


@pytest.mark.parametrize("observer", ["percentile", "mse"])
def test_observers_narrow_the_minmax_range(cnn: Graph, observer: str) -> None:
    x = np.load(MODELS / "digits_cnn_test.npz")["x"]
    wide = calibrate(cnn, x)
    narrow = calibrate(cnn, x, observer=observer, percentile=99.9)
    assert set(wide) == set(narrow)
    for name, (lo, hi) in narrow.items():
        assert wide[name][0] - 1e-6 <= lo <= 0.0 <= hi <= wide[name][1] + 1e-6
    assert any(narrow[n][1] < wide[n][1] for n in wide)


# ---- precision: int16 (16x8) and auto ----


def test_precision_int16_runs_every_computing_layer_wide() -> None:
    from edgenn.compile import convert

    converted = convert(MODELS / "digits_cnn.onnx", precision="int16")
    wide = converted.precision["int16_layers"]
    assert len(wide) == 4  # three convolutions and the dense layer
    producers = converted.fixed_graph.producers()
    for node in converted.fixed_graph.nodes:
        if node.name in wide:
            assert converted.fixed_graph.type_of(node.outputs[0]).dtype.value == "int16"
    out = converted.fixed_graph.outputs[0]
    assert (
        converted.fixed_graph.type_of(out).dtype.value == "int8"
        and producers[out].op == "Requantize"
    )


@pytest.mark.parametrize("max_drop", [0.0, 10.0])
def test_auto_precision_stops_within_budget(max_drop: float) -> None:
    from edgenn.compile import convert

    report = convert(MODELS / "mnist1d_cnn.onnx", precision="auto", max_drop=max_drop).precision
    steps = report["steps"]
    assert report["mode"] == "auto" and steps[0]["int16_layers"] == 0
    if max_drop >= steps[0]["drop_pp"]:
        assert report["int16_layers"] == [] and len(steps) == 1  # int8 already meets the budget
    else:  # promotions continue until the budget holds or every layer is int16
        assert len(steps) > 1
        assert steps[-1]["drop_pp"] <= max_drop or steps[-1]["int16_layers"] == 4
    assert report["within_budget"] == (min(s["drop_pp"] for s in steps) <= max_drop)


def test_auto_precision_needs_labels(tmp_path: Path) -> None:
    from edgenn.compile import convert

    copy = tmp_path / "m.onnx"
    copy.write_bytes((MODELS / "digits_mlp.onnx").read_bytes())
    with pytest.raises(InputError, match="--precision auto needs labelled data"):
        convert(copy, calib="random", precision="auto")
