"""ONNX models quantized elsewhere: onnxruntime's quantize_static in QDQ format (per tensor and per
channel, int8 and uint8 activations) and a quantization-aware-training style export (float weights
through QuantizeLinear). edgenn keeps the scales the file carries: the weights are the file's integers,
the result runs in TFLM with the same bits, and onnxruntime (whose QDQ arithmetic is float) agrees
within a LSB on nearly every element."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import MODELS
from onnx import numpy_helper

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from edgenn.compile import convert  # noqa: E402
from edgenn.errors import EdgennError, QuantizationError  # noqa: E402
from edgenn.frontend.onnx import load_onnx  # noqa: E402
from edgenn.quant.quantize import quantize_array  # noqa: E402
from edgenn.runtime import Runtime  # noqa: E402

CASES = [
    ("digits_mlp", True, "s8"),
    ("digits_mlp", True, "u8"),
    ("digits_mlp", False, "s8"),
    ("digits_mlp", False, "u8"),
    ("digits_cnn", True, "s8"),
    ("digits_cnn", False, "u8"),
    ("mnist1d_cnn", True, "u8"),
    ("mnist1d_cnn", False, "s8"),
]


def labelled_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(MODELS / f"{name}_test.npz")
    return data["x"].astype(np.float32), data["y"]


def calibration_reader(x: np.ndarray):  # type: ignore[no-untyped-def]
    """onnxruntime's calibration interface over the samples of x, one at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter(x)

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self.samples, None)
            return None if sample is None else {"input": sample[None]}

    return Reader()


@cache
def qdq_model(
    name: str, per_channel: bool, activations: str, folder: Path, weights: str = "s8"
) -> Path:
    """onnxruntime's static QDQ quantization of a bundled model (BatchNorm fused first, as its
    quant_pre_process does), calibrated on 100 test samples."""
    from onnxruntime.quantization import QuantFormat, QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x, _ = labelled_data(name)
    tag = f"{name}_{'pc' if per_channel else 'pt'}_{activations}_w{weights}"
    fused, out = folder / f"{tag}_fused.onnx", folder / f"{tag}_qdq.onnx"
    quant_pre_process(str(MODELS / f"{name}.onnx"), str(fused), skip_symbolic_shape=True)
    quantization.quantize_static(
        str(fused),
        str(out),
        calibration_reader(x[:100]),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8 if activations == "s8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,  # uint8: asymmetric
    )
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qdq")


def file_weights(path: Path) -> list[np.ndarray]:
    """The int8 weight initializers of a QDQ file (rank >= 2: conv filters and dense matrices)."""
    model = onnx.load(str(path))
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    return [a for a in arrays if a.dtype == np.int8 and a.ndim >= 2]


@pytest.mark.parametrize(
    ("name", "per_channel", "activations"),
    CASES,
    ids=[f"{n}-{'pc' if p else 'pt'}-{a}" for n, p, a in CASES],
)
def test_qdq_model_keeps_its_scales_and_matches_tflm_and_ort(
    name: str, per_channel: bool, activations: str, folder: Path
) -> None:
    from edgenn.codegen.tflite import to_tflite
    from edgenn.interop import run_tflm

    path = qdq_model(name, per_channel, activations, folder)
    converted = convert(path, calib=str(MODELS / f"{name}_test.npz"))
    fixed = converted.fixed_graph
    assert converted.qdq is not None and converted.qdq["calibrated_tensors"] == []
    # the weights are the file's integers (as multisets per layer: edgenn stores them channels-last)
    ours = sorted(
        tuple(np.sort(v.data.reshape(-1)))
        for v in fixed.values.values()
        if v.is_const and v.type.dtype.value == "int8" and v.data.ndim >= 2
    )
    theirs = sorted(tuple(np.sort(w.reshape(-1))) for w in file_weights(path))
    assert ours == theirs
    per_tensor_weights = [
        len(v.type.qparams.scale) == 1
        for v in fixed.values.values()
        if v.is_const and v.type.qparams is not None and v.data.ndim >= 2
    ]
    assert all(per_tensor_weights) == (not per_channel)
    # bit-exact with TFLM running the same graph as .tflite
    x, labels = labelled_data(name)
    in_qp = fixed.type_of(fixed.inputs[0]).qparams
    xq = quantize_array(x, in_qp)
    runtime = Runtime(fixed)
    got = runtime.run(xq).reshape(len(x), -1)
    tflm = run_tflm(to_tflite(fixed), xq[:100]).reshape(100, -1)
    assert np.array_equal(tflm, got[:100])
    # onnxruntime on the QDQ model: float arithmetic between the integers, so off by a LSB at times
    out_qp = fixed.type_of(fixed.outputs[0]).qparams
    # (graph optimizations off: fused, onnxruntime runs its own int8 kernels, whose u8 x s8
    # VPMADDUBSW pair sums saturate on CPUs without VNNI, so the reference would be off by more)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    reference = quantize_array(session.run(None, {"input": x})[0].reshape(len(x), -1), out_qp)
    lsb = np.abs(got.astype(np.int32) - reference)
    exact = float(np.mean(lsb == 0))
    print(
        f"{path.stem}: {lsb.size} elements, {int(np.sum(lsb == 0))} equal to onnxruntime, "
        f"{int(np.sum(lsb == 1))} off by 1 LSB, {int(np.sum(lsb > 1))} by more (max {int(lsb.max())})"
    )
    assert np.mean(lsb <= 1) >= 0.999 and exact >= 0.7
    agreement = np.mean(got.argmax(1) == reference.argmax(1))
    assert agreement >= 0.99


def fake_quant_weights(path: Path, out: Path) -> Path:
    """The QDQ file rewritten as a QAT export writes it: float weights into QuantizeLinear."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[node.input[0]])
        if q.dtype != np.int8:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = -1
        real = q.astype(np.float32) * scale.reshape(shape).astype(np.float32)
        float_name = f"{node.input[0]}_float"
        graph.initializer.append(numpy_helper.from_array(real, float_name))
        quantize = onnx.helper.make_node(
            "QuantizeLinear",
            [float_name, node.input[1], node.input[2]],
            [f"{node.input[0]}_fake"],
            axis=axis,
        )
        graph.node.insert(list(graph.node).index(node), quantize)
        node.input[0] = f"{node.input[0]}_fake"
    onnx.save(model, str(out))
    return out


def test_fake_quantized_weights_give_the_same_graph(folder: Path) -> None:
    from edgenn.serialize import to_bytes

    path = qdq_model("digits_mlp", True, "s8", folder)
    (folder / "qat").mkdir()
    qat = fake_quant_weights(path, folder / "qat" / path.name)  # the same name: the same graph name
    calib = str(MODELS / "digits_mlp_test.npz")
    assert to_bytes(convert(qat, calib=calib).fixed_graph) == to_bytes(
        convert(path, calib=calib).fixed_graph
    )


def test_asymmetric_weights_are_refused_by_name(folder: Path) -> None:
    path = qdq_model("digits_mlp", False, "u8", folder, weights="u8")
    with pytest.raises(QuantizationError, match="weights '.*' have non-zero zero points"):
        convert(path, calib=str(MODELS / "digits_mlp_test.npz"))


def test_unfused_batchnorm_is_refused_with_the_remedy(folder: Path) -> None:
    """Quantized without quant_pre_process, the digits CNN keeps its BatchNorm in float between a
    DequantizeLinear and the next QuantizeLinear; folding it would change the file's weights."""
    from onnxruntime.quantization import QuantFormat

    x, _ = labelled_data("digits_cnn")
    out = folder / "digits_cnn_unfused_qdq.onnx"
    quantization.quantize_static(
        str(MODELS / "digits_cnn.onnx"),
        str(out),
        calibration_reader(x[:20]),
        quant_format=QuantFormat.QDQ,
    )
    with pytest.raises(EdgennError, match="quant_pre_process"):
        convert(out, calib=str(MODELS / "digits_cnn_test.npz"))


def qdq_node_model(q_output_used: bool = False) -> onnx.ModelProto:
    h = onnx.helper
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])]
    if q_output_used:
        nodes.append(h.make_node("Relu", ["q"], ["y"]))
    else:
        nodes += [
            h.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
            h.make_node("Relu", ["d"], ["y"]),
        ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [scale, zero],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_quantize_output_read_by_another_op_is_refused() -> None:
    from edgenn.frontend.onnx import import_model

    with pytest.raises(EdgennError, match="reads 'q', a QuantizeLinear output"):
        import_model(qdq_node_model(q_output_used=True))


def test_qdq_pair_keeps_its_clamp_in_the_float_graph(tmp_path: Path) -> None:
    """The pair saturates at 127 * 0.05 = 6.35: the float reference clamps as onnxruntime does."""
    from edgenn.reference import run_reference

    path = tmp_path / "pair.onnx"
    onnx.save(qdq_node_model(), str(path))
    x = np.array([[-1.0, 0.5, 7.0, 100.0]], np.float32)
    ours = run_reference(load_onnx(path), x)["y"]
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    assert np.allclose(ours, [[0.0, 0.5, 6.35, 6.35]]) and np.allclose(
        theirs, [[0.0, 0.5, 6.35, 6.35]], atol=0.05
    )


def test_qdq_model_generated_c_equals_runtime(folder: Path, tmp_path: Path) -> None:
    from test_codegen_c import assert_same, c_outputs, needs_cc

    if needs_cc.args[0]:
        pytest.skip(needs_cc.kwargs["reason"])
    fixed = convert(
        qdq_model("digits_cnn", True, "s8", folder), calib=str(MODELS / "digits_cnn_test.npz")
    ).fixed_graph
    x, _ = labelled_data("digits_cnn")
    xq = quantize_array(x[:100], fixed.type_of(fixed.inputs[0]).qparams)
    assert_same(c_outputs(fixed, xq, tmp_path), Runtime(fixed).run(xq).reshape(100, -1))


def test_scale_count_unlike_the_channels_is_refused_by_name(tmp_path: Path) -> None:
    h = onnx.helper
    inits = [
        numpy_helper.from_array(np.ones((4, 3), np.int8), "w_q"),
        numpy_helper.from_array(np.full(3, 0.1, np.float32), "w_s"),  # 3 scales, 4 rows on axis 0
        numpy_helper.from_array(np.zeros(3, np.int8), "w_z"),
    ]
    nodes = [
        h.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
        h.make_node("MatMul", ["x", "w"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        inits,
    )
    path = tmp_path / "bad.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    with pytest.raises(
        EdgennError, match="3 scales along axis 0 of 'w_q', whose shape is \\(4, 3\\)"
    ):
        load_onnx(path)
