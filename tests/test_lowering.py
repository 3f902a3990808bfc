"""Ops TFLite has no builtin for, lowered to ones it has: HardSigmoid (squeeze-and-excitation gates,
MobileNetV3) as TensorFlow's converter writes Keras' hard_sigmoid, Mul / Add+RELU6 / Mul."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h

from edgenn.compile import convert
from edgenn.frontend.onnx import load_onnx
from edgenn.passes import optimize
from edgenn.quant.quantize import quantize_array
from edgenn.reference import run_reference
from edgenn.runtime import Runtime

ort = pytest.importorskip("onnxruntime")


def se_block(path: Path, alpha: float) -> Path:
    """Conv + ReLU, then a squeeze-and-excitation gate HardSigmoid(conv(GAP(x))) times x, then a
    HardSigmoid with ONNX's default parameters on the product."""
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    nodes = [
        h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("GlobalAveragePool", ["r1"], ["g"]),
        h.make_node("Conv", ["g", "w2", "b2"], ["c2"]),
        h.make_node("HardSigmoid", ["c2"], ["gate"], alpha=alpha, beta=0.5),
        h.make_node("Mul", ["r1", "gate"], ["se"]),
        h.make_node("HardSigmoid", ["se"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "se_block",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])],
        [init("w1", (8, 3, 3, 3)), init("b1", (8,)), init("w2", (8, 8, 1, 1)), init("b2", (8,))],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("alpha", [1 / 6, 0.2], ids=["keras", "onnx_default"])
def test_hard_sigmoid_lowers_to_tflite_ops_bit_exact_with_tflm(
    alpha: float, tmp_path: Path
) -> None:
    pytest.importorskip(
        "tflite_micro", reason="tflite-micro (TensorFlow Lite Micro) is not installed"
    )
    from edgenn.codegen.tflite import to_tflite
    from edgenn.interop import run_tflm

    path = se_block(tmp_path / "se.onnx", alpha)
    x = np.random.default_rng(1).uniform(-1, 1, (64, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    lowered = optimize(load_onnx(path))
    assert "HardSigmoid" not in {n.op for n in lowered.nodes}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[
        0
    ]
    assert np.allclose(run_reference(lowered, x)["y"], want, atol=1e-6)
    fixed = convert(path, calib=str(tmp_path / "x.npy")).fixed_graph
    xq = quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)
    ours = Runtime(fixed).run(xq)
    assert np.array_equal(run_tflm(to_tflite(fixed), xq).reshape(ours.shape), ours)
    real = Runtime(fixed).run_float(x)
    assert np.abs(real - want).max() <= 2.5 / 255  # a couple of output steps on [0, 1]
