"""ONNX's own backend node tests (generated from the onnx package's test cases, no files needed) for
every op edgenn imports: the float reference must give ONNX's expected outputs at the case's
tolerance. A case edgenn cannot run must be refused with an edgenn error (never a crash), and only
where EXCLUDES names the reason; a case that starts to pass while excluded fails, so the list stays
true.

ONNX lets some parameters (Reshape's shape, Clip's bounds, Resize's scales...) be run-time inputs;
edgenn, like TFLite converters, needs them constant, so those inputs are turned into initializers
holding the case's values before import."""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgenn.errors import EdgennError
from edgenn.frontend.onnx import import_model
from edgenn.ops import ONNX_OPS
from edgenn.reference import run_reference

# op -> the input positions that are parameters (constant in any model edgenn takes)
PARAMETER_INPUTS = {
    "Clip": {1, 2},
    "Dropout": {1, 2},
    "Pad": {1, 2, 3},
    "ReduceMean": {1},
    "Reshape": {1},
    "Resize": {1, 2, 3},
    "Slice": {1, 2, 3, 4},
    "Squeeze": {1},
    "Unsqueeze": {1},
}

# (case name pattern, why edgenn refuses it): every excluded case must still be refused cleanly
EXCLUDES = [
    (r"test_(add|sub|mul|div)_uint(16|32|64)$", "unsigned integer tensors above 8 bits"),
    (
        r"test_cast.*(BFLOAT16|FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|E8M0)",
        "8-bit, 4-bit and 2-bit float/int types",
    ),
    (r"test_castlike_.*_expanded$", "CastLike's expansion feeds an empty 'like' tensor"),
    (r"test_.*pool_3d_", "3-D pooling (1-D and 2-D only)"),
    (r"test_averagepool_2d_ceil_last_window_starts_on_pad", "ceil_mode with count_include_pad"),
    (r"test_batchnorm_.*training_mode", "training-mode BatchNormalization"),
    (r"test_dropout_default_mask", "Dropout's mask output"),
    (r"test_training_dropout", "training-mode Dropout"),
    (r"test_maxpool_with_argmax", "MaxPool's indices output and storage_order"),
    (r"test_(edge|reflect|wrap)_pad$", "Pad modes other than constant"),
    (r"test_identity_(opt|sequence)$", "optional and sequence types"),
    (r"test_resize_.*(cubic|linear|crop_and_resize)", "Resize modes other than nearest"),
    (r"test_resize_.*_not_(larger|smaller)$", "keep_aspect_ratio_policy other than stretch"),
    (r"test_shape_start_greater_than_end$", "empty tensors"),
    (r"test_reshape_allowzero_reordered$", "empty tensors"),
    (r"test_slice_start_out_of_bounds$", "empty tensors"),
    (r"test_reduce_mean_default_axes_keepdims", "ReduceMean with an empty run-time axes input"),
]


def as_array(value) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Case data come as arrays or as TensorProtos."""
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def excluded(name: str) -> str | None:
    return next((why for pattern, why in EXCLUDES if re.search(pattern, name)), None)


@functools.cache
def node_cases() -> list:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():  # the case generators divide by zero on purpose
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    return [
        c for c in cases if {n.op_type for n in c.model.graph.node} <= set(ONNX_OPS) and c.data_sets
    ]


CASES = node_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_node_case(case) -> None:  # type: ignore[no-untyped-def]
    inputs, expected = ([as_array(a) for a in arrays] for arrays in case.data_sets[0])
    model, feeds = constant_parameters(case.model, inputs)
    why = excluded(case.name)
    try:
        graph = import_model(model)
        got = run_reference(graph, [np.asarray(f) for f in feeds])
    except EdgennError as err:
        assert why is not None, f"refused without an EXCLUDES entry: {type(err).__name__}: {err}"
        pytest.skip(f"{why}: {err}")
    assert why is None, f"passes, but EXCLUDES says: {why} (remove the entry)"
    rtol, atol = max(case.rtol, 1e-5), max(case.atol, 1e-6)
    for name, want in zip(graph.outputs, expected):
        want = np.asarray(want)
        assert got[name].shape == want.shape, name
        # float16 and float64 tensors are computed in float32 (the precision models are given in)
        assert got[name].dtype.kind == want.dtype.kind, name
        assert np.allclose(got[name], want, rtol=rtol, atol=atol, equal_nan=True), name


def constant_parameters(model: onnx.ModelProto, feeds: list) -> tuple[onnx.ModelProto, list]:
    """The model with its parameter inputs as initializers holding the case's values, and the feeds
    of the inputs that remain."""
    graph = model.graph
    parameters = {
        name
        for node in graph.node
        for i, name in enumerate(node.input)
        if name and i in PARAMETER_INPUTS.get(node.op_type, ())
    }
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.input[:]
    kept = []
    for value, feed in zip(graph.input, feeds):
        if value.name in parameters:
            out.graph.initializer.append(numpy_helper.from_array(np.asarray(feed), value.name))
        else:
            out.graph.input.append(value)
            kept.append(feed)
    return out, kept
