"""Hostile or extreme files, built in code: shared by the hardening tests and the hostile-input
battery (tools/hostile_battery.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgenn.codegen.tflite import FileOp, FileTensor, Lowered, serialize
from edgenn.ir import DType, QParams


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


def tiny_onnx(path: Path, node: onnx.NodeProto, shape: list[int], inits: list) -> Path:  # type: ignore[type-arg]
    h = onnx.helper
    graph = h.make_graph(
        [node],
        "bomb",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        inits,
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def bad_inputs(folder: Path) -> dict[str, Path]:
    """Hostile array files: pickled objects in an .npz, a broken zip, a header claiming 256 TB, a
    zip bomb (1 GB of zeros in a few MB), no samples, negative labels, random bytes as .tflite."""
    import io
    import struct
    import zipfile

    files = {}
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(folder / "objects.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    files["objects"] = folder / "objects.npz"
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    files["broken"] = folder / "broken.npz"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 64), }"
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header) + 1) + header.encode() + b"\n"
    (folder / "huge.npy").write_bytes(raw)
    files["huge"] = folder / "huge.npy"
    with zipfile.ZipFile(folder / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4194304, 64), }"
            member.write(
                b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header) + 1) + header.encode() + b"\n"
            )
            zeros = bytes(1 << 24)
            for _ in range(64):
                member.write(zeros)
    files["bomb"] = folder / "bomb.npz"
    np.save(folder / "empty.npy", np.zeros((0, 64), np.float32))
    files["empty"] = folder / "empty.npy"
    np.savez(folder / "negative.npz", x=np.zeros((4, 64), np.float32), y=-np.ones(4, np.int64))
    files["negative"] = folder / "negative.npz"
    return files


def external_data_model(folder: Path, offset: str, location: str = "w.bin") -> Path:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    path = tiny_onnx(
        folder / "m.onnx", onnx.helper.make_node("MatMul", ["x", "w"], ["y"]), [1, 4], [w]
    )
    model = onnx.load(str(path))
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    for key, value in (("location", location), ("offset", offset)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    (folder / "w.bin").write_bytes(np.ones((4, 3), np.float32).tobytes())
    onnx.save(model, str(path))
    return path


def two_input_model(path: Path) -> Path:
    h = onnx.helper
    rng = np.random.default_rng(0)
    wa = numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "wa")
    wb = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "wb")
    nodes = [
        h.make_node("MatMul", ["a", "wa"], ["pa"]),
        h.make_node("MatMul", ["b", "wb"], ["pb"]),
        h.make_node("Add", ["pa", "pb"], ["s"]),
        h.make_node("Relu", ["s"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "two_inputs",
        [
            h.make_tensor_value_info("a", onnx.TensorProto.FLOAT, ["N", 6]),
            h.make_tensor_value_info("b", onnx.TensorProto.FLOAT, ["N", 3]),
        ],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])],
        [wa, wb],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def conv_file(channels: int = 4, scales: int = 4, stride: int = 1, side: int = 8) -> bytes:
    """One CONV_2D 3x3 from 2 channels to `channels`, its weights with `scales` per-channel scales."""
    lowered = Lowered("conv", inputs=["x"], outputs=["y"])
    t = lowered.tensors
    out_side = (side - 3) // stride + 1
    t["x"] = FileTensor("x", (1, side, side, 2), DType.INT8, per_tensor(0.05))
    w = np.random.default_rng(0).integers(-127, 128, (channels, 3, 3, 2)).astype(np.int8)
    w_qp = QParams((0.01,) * scales, (0,) * scales, 0)
    t["w"] = FileTensor("w", w.shape, DType.INT8, w_qp, w)
    t["b"] = FileTensor(
        "b", (channels,), DType.INT32, per_tensor(5e-4), np.zeros(channels, np.int32)
    )
    t["y"] = FileTensor("y", (1, out_side, out_side, channels), DType.INT8, per_tensor(0.1))
    options = {
        "padding": "VALID",
        "stride_h": stride,
        "stride_w": stride,
        "dilation_h_factor": 1,
        "dilation_w_factor": 1,
        "fused_activation_function": "NONE",
    }
    lowered.ops.append(FileOp("CONV_2D", ["x", "w", "b"], ["y"], ("Conv2DOptions", options)))
    return serialize(lowered)


def scalar_file(builtin: str) -> bytes:
    """MEAN or CONCATENATION of a scalar (rank-0) tensor."""
    lowered = Lowered("scalar", inputs=["x"], outputs=["y"])
    t = lowered.tensors
    t["x"] = FileTensor("x", (), DType.INT8, per_tensor(0.1))
    t["y"] = FileTensor("y", (), DType.INT8, per_tensor(0.1))
    if builtin == "MEAN":
        t["axes"] = FileTensor("axes", (1,), DType.INT32, None, np.zeros(1, np.int32))
        op = FileOp("MEAN", ["x", "axes"], ["y"], ("ReducerOptions", {"keep_dims": False}))
    else:
        options = ("ConcatenationOptions", {"axis": 0, "fused_activation_function": "NONE"})
        op = FileOp("CONCATENATION", ["x", "x"], ["y"], options)
    lowered.ops.append(op)
    return serialize(lowered)


def huge_tensor_file(side: int = 100_000) -> bytes:
    """A RELU whose tensors claim side x side elements (10 GB), in a file of a few hundred bytes."""
    lowered = Lowered("huge", inputs=["x"], outputs=["y"])
    for name in ("x", "y"):
        lowered.tensors[name] = FileTensor(name, (1, side, side), DType.INT8, per_tensor(0.1))
    lowered.ops.append(FileOp("RELU", ["x"], ["y"]))
    return serialize(lowered)


def set_is_consistent(folder: Path) -> None:
    """What is in the folder is what its report.json says was written, and no staging is left."""
    import json

    report = json.loads((folder / "report.json").read_text())
    assert (folder / "model.edgenn").is_file()
    assert (folder / "model.tflite").is_file() == ("tflite_file_bytes" in report)
    assert (folder / "c").is_dir() == ("c" in report)
    if "c" in report:
        assert sorted(p.name for p in (folder / "c").iterdir()) == report["c"]["files"]
    leftovers = [
        p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".edgenn.lock"
    ]
    assert leftovers == []
