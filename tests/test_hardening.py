"""Hostile or extreme fixed-point files: every integer kernel's ranges are checked when the program is
built, whatever the file's origin (.tflite, .edgenn, ONNX, QDQ), naming the layer; what passes runs
as TensorFlow Lite Micro runs it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tflite", reason="the tflite extra is not installed")

from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize  # noqa: E402
from edgenn.errors import QuantizationError  # noqa: E402
from edgenn.frontend.tflite import read_tflite  # noqa: E402
from edgenn.ir import DType, QParams  # noqa: E402
from edgenn.runtime import Runtime  # noqa: E402


def per_tensor(scale: float, zero_point: int = 0) -> QParams:
    return QParams((scale,), (zero_point,))


def dense_file(inputs: int, weight: int, s_in: float, s_w: float, s_out: float) -> bytes:
    """One FULLY_CONNECTED layer [1, inputs] -> [1, 1], every weight equal to `weight`."""
    lowered = Lowered("fc", inputs=["x"], outputs=["y"])
    t = lowered.tensors
    t["x"] = FileTensor("x", (1, inputs), DType.INT8, per_tensor(s_in))
    t["w"] = FileTensor(
        "w", (1, inputs), DType.INT8, per_tensor(s_w), np.full((1, inputs), weight, np.int8)
    )
    t["b"] = FileTensor("b", (1,), DType.INT32, per_tensor(s_in * s_w), np.zeros(1, np.int32))
    t["y"] = FileTensor("y", (1, 1), DType.INT8, per_tensor(s_out))
    options = ("FullyConnectedOptions", {"fused_activation_function": "NONE"})
    lowered.ops.append(FileOp("FULLY_CONNECTED", ["x", "w", "b"], ["y"], options))
    return serialize(lowered)


def average_pool_file(side: int, dtype: DType = DType.INT8) -> bytes:
    """One AVERAGE_POOL_2D over a whole side x side map (a global average)."""
    lowered = Lowered("pool", inputs=["x"], outputs=["y"])
    lowered.tensors["x"] = FileTensor("x", (1, side, side, 1), dtype, per_tensor(0.1))
    lowered.tensors["y"] = FileTensor("y", (1, 1, 1, 1), dtype, per_tensor(0.1))
    options = {
        "padding": "VALID",
        "stride_h": 1,
        "stride_w": 1,
        "filter_height": side,
        "filter_width": side,
        "fused_activation_function": "NONE",
    }
    lowered.ops.append(FileOp("AVERAGE_POOL_2D", ["x"], ["y"], ("Pool2DOptions", options)))
    return serialize(lowered)


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
