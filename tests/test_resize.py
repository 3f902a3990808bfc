"""Resize (nearest) inside a model: an upsampling decoder (conv, 2x resize, conv), as a segmentation
or detection head has it, through every backend: the runtime against the numpy spec, TFLM running
the written .tflite (int8 and 16x8), the .tflite read back, and gcc-compiled C. The op's own examples
are checked by the generic tests (onnxruntime, spec, TFLM, C)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import Stack
from int8_spec import run_spec
from test_codegen_c import assert_same, c_outputs, needs_cc, runtime_outputs
from test_quantization import quantized

from edgenn.errors import UnsupportedOpError
from edgenn.frontend.onnx import import_model
from edgenn.passes import optimize
from edgenn.quant.calibrate import calibrate
from edgenn.quant.quantize import quantize_array, quantize_graph, wide_capable
from edgenn.runtime import Runtime


def decoder(mode: str = "nearest", opset: int = 17, **attrs: object):  # type: ignore[no-untyped-def]
    s = Stack((1, 2, 6, 5), seed=3)
    h = s.op("Relu", [s.conv("input", 2, 4, (3, 3), pads=[1, 1, 1, 1])])
    scales = s.const(np.array([1, 1, 2, 2], np.float32), "scales")
    inputs = [h, "", scales]
    h = s.op("Resize", inputs, mode=mode, **attrs)
    return s.model(s.conv(h, 4, 3, (3, 3), pads=[1, 1, 1, 1]), opset)


def fixed_decoder(wide: bool = False):  # type: ignore[no-untyped-def]
    graph = optimize(import_model(decoder(), batch_size=1))
    x = np.random.default_rng(0).uniform(-1, 1, (24, 2, 6, 5)).astype(np.float32)
    wide_set = wide_capable(graph) if wide else frozenset()
    fixed = quantize_graph(graph, calibrate(graph, x), wide_set)
    return fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)


def test_decoder_runtime_matches_spec() -> None:
    graph = optimize(import_model(decoder(), batch_size=1))
    x = np.random.default_rng(1).uniform(-1, 1, (24, 2, 6, 5)).astype(np.float32)
    fixed, xq = quantized(graph, x)
    resize = [n for n in fixed.nodes if n.op == "Resize"]
    assert resize and resize[0].attrs.get("channels_last")  # runs between the convs in NHWC
    ours = Runtime(fixed).run(xq)
    assert np.array_equal(ours, run_spec(fixed, xq).reshape(ours.shape))


def test_decoder_bit_exact_on_tflm_and_read_back() -> None:
    pytest.importorskip(
        "tflite_micro", reason="tflite-micro (TensorFlow Lite Micro) is not installed"
    )
    from edgenn.codegen.tflite import to_tflite
    from edgenn.frontend.tflite import read_tflite
    from edgenn.interop import run_tflm

    for wide in (False, True):
        fixed, xq = fixed_decoder(wide)
        data = to_tflite(fixed)
        ours = Runtime(fixed).run(xq)
        assert np.array_equal(run_tflm(data, xq).reshape(ours.shape), ours), f"16x8: {wide}"
        back = read_tflite(data, "decoder")
        assert [n.op for n in back.nodes].count("Resize") == 1
        again = np.asarray(Runtime(back).run(xq))
        assert np.array_equal(again.reshape(ours.shape), ours), f"read back, 16x8: {wide}"


@needs_cc
def test_decoder_c_matches_runtime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fixed, xq = fixed_decoder()
    assert_same(c_outputs(fixed, xq, tmp_path), runtime_outputs(fixed, xq))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"mode": "linear"}, "mode 'linear'"),
        ({"coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize"),
        ({"coordinate_transformation_mode": "half_pixel_symmetric", "opset": 19}, "symmetric"),
    ],
    ids=["linear", "crop", "symmetric"],
)
def test_unsupported_forms_are_named(kwargs: dict, words: str) -> None:
    with pytest.raises(UnsupportedOpError, match=words):
        import_model(decoder(**kwargs))
