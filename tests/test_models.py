"""The float reference against onnxruntime: bundled models over their whole test sets, and the common
layer stacks (MLP, CNN with BatchNorm, depthwise-separable CNN, 1-D CNN, residual block) built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from builders import STACKS
from conftest import MODELS, relative_error

from edgenn.frontend.onnx import import_model, load_onnx
from edgenn.passes import optimize
from edgenn.reference import run_reference

BUNDLED = sorted(p.stem for p in MODELS.glob("*.onnx"))
# float test accuracy each bundled model must keep (the README quotes the measured values)
MIN_ACCURACY = {"digits_mlp": 0.92, "digits_cnn": 0.97, "mnist1d_cnn": 0.89}


def ort_run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_models_are_bundled() -> None:
    assert set(BUNDLED) >= set(MIN_ACCURACY)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_matches_onnxruntime(name: str) -> None:
    data = np.load(MODELS / f"{name}_test.npz")
    x, y = data["x"], data["y"]
    graph = load_onnx(MODELS / f"{name}.onnx")
    got = run_reference(graph, x)[graph.outputs[0]]
    expected = ort_run((MODELS / f"{name}.onnx").read_bytes(), x)
    error = relative_error(got, expected)
    print(f"{name}: max |reference - onnxruntime| / output range = {error:.2e}")
    assert error <= 1e-4
    accuracy = float(np.mean(got.argmax(1) == y))
    assert accuracy == float(np.mean(expected.argmax(1) == y))
    assert accuracy >= MIN_ACCURACY[name]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_optimized_keeps_outputs(name: str) -> None:
    x = np.load(MODELS / f"{name}_test.npz")["x"]
    graph = load_onnx(MODELS / f"{name}.onnx")
    before = run_reference(graph, x)[graph.outputs[0]]
    after = run_reference(optimize(graph), x)[graph.outputs[0]]
    assert relative_error(after, before) <= 1e-5


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_layer_stack_matches_onnxruntime(stack: str, rng: np.random.Generator) -> None:
    model = STACKS[stack]()
    graph = import_model(model, batch_size=1)
    x = rng.uniform(-1, 1, (16, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    expected = ort_run(model.SerializeToString(), x)
    got = run_reference(graph, x)[graph.outputs[0]]
    assert relative_error(got, expected) <= 1e-4
    fused = run_reference(optimize(graph), x)[graph.outputs[0]]
    assert relative_error(fused, expected) <= 1e-4


TORCH_EXPORTS = sorted((MODELS.parent / "tests" / "data" / "torch").glob("*.onnx"))


@pytest.mark.parametrize("path", TORCH_EXPORTS, ids=[p.stem for p in TORCH_EXPORTS])
def test_torch_export_matches_onnxruntime(path: Path, rng: np.random.Generator) -> None:
    """Models written by torch.onnx.export (tools/export_torch_stacks.py), as users will bring them."""
    graph = load_onnx(path)
    x = rng.uniform(-1, 1, (8, *graph.type_of(graph.inputs[0]).shape[1:])).astype(np.float32)
    expected = ort_run(path.read_bytes(), x)
    assert relative_error(run_reference(graph, x)[graph.outputs[0]], expected) <= 1e-4
    assert relative_error(run_reference(optimize(graph), x)[graph.outputs[0]], expected) <= 1e-4
