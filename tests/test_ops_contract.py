"""Every registered op, through its own examples: ONNX import, shape inference and the float reference
agree with onnxruntime. New ops are covered by adding examples to their OpSpec, not by editing this file."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from builders import single_op_model
from conftest import relative_error

from edgenn.frontend.onnx import import_model
from edgenn.ops import REGISTRY, OpExample
from edgenn.reference import run_reference

EXAMPLES = [ex for spec in REGISTRY.values() for ex in spec.examples()]
NO_EXAMPLES_NEEDED = {
    "FullyConnected": "produced by passes, not imported; covered by tests/test_passes.py"
}


def test_every_importable_op_has_examples() -> None:
    """Ops made only by passes or the quantizer (FullyConnected, Requantize) are tested there."""
    assert [name for name, spec in REGISTRY.items() if spec.from_onnx and not spec.examples()] == []


def feeds_for(example: OpExample, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-3, 3, shape).astype(np.float32) for shape in example.input_shapes]


@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.name for ex in EXAMPLES])
def test_op_matches_onnxruntime(example: OpExample, rng: np.random.Generator) -> None:
    model = single_op_model(example)
    feeds = feeds_for(example, rng)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), feeds)})[0]
    graph = import_model(model, batch_size=example.input_shapes[0][0])
    got = run_reference(graph, feeds)[graph.outputs[0]]
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    assert graph.type_of(graph.outputs[0]).shape == expected.shape  # inferred == computed
    assert relative_error(got, expected) <= 1e-5
