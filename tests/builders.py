"""ONNX models built in code for the tests (onnx.helper only; no torch at test time)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgenn.ops import OpExample


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def finish(graph: onnx.GraphProto, opset: int = 17) -> onnx.ModelProto:
    """A model whose value types (outputs included) are filled by ONNX's own shape inference."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    for out in model.graph.output:
        out.CopyFrom(known[out.name])
    onnx.checker.check_model(model)
    return model


def single_op_model(example: OpExample) -> onnx.ModelProto:
    last = max([*example.constants, len(example.input_shapes) + len(example.constants) - 1])
    shapes = iter(example.input_shapes)
    names, inputs, inits = [], [], []
    for i in range(last + 1):
        shape = None if i in example.constants else next(shapes, None)
        if i in example.constants:
            name = f"c{i}"
            inits.append(numpy_helper.from_array(np.asarray(example.constants[i]), name))
        elif shape is not None:
            name = f"x{i}"
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        else:
            name = ""  # an omitted optional input before a given one
        names.append(name)
    node = helper.make_node(example.op_type, names, ["y"], name="node", **dict(example.attrs))
    graph = helper.make_graph(
        [node], example.name, inputs, [helper.make_empty_tensor_value_info("y")], inits
    )
    return finish(graph, example.opset)


class Stack:
    """A little graph writer for layer stacks: each call appends a node and returns its output name."""

    def __init__(self, input_shape: Sequence[int], seed: int = 0, batch: str | int = "N") -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info(
            "input", TensorProto.FLOAT, [batch, *input_shape[1:]]
        )
        self.count = 0

    def const(self, array: np.ndarray, hint: str = "w") -> str:
        name = f"{hint}{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weights(self, *shape: int, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type: str, inputs: Sequence[str], n_outputs: int = 1, **attrs: object) -> str:
        self.count += 1
        outputs = [f"{op_type.lower()}{self.count}_{i}" for i in range(n_outputs)]
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), outputs, name=f"{op_type}_{self.count}", **attrs
            )
        )
        return outputs[0]

    def conv(
        self, x: str, c_in: int, c_out: int, k: Sequence[int], group: int = 1, **attrs: object
    ) -> str:
        w = self.weights(c_out, c_in // group, *k)
        b = self.const((self.rng.standard_normal(c_out) * 0.1).astype(np.float32), "b")
        return self.op("Conv", [x, w, b], group=group, **attrs)

    def batchnorm(self, x: str, c: int) -> str:
        params = [
            self.rng.uniform(0.5, 1.5, c),
            self.rng.standard_normal(c) * 0.1,
            self.rng.standard_normal(c) * 0.1,
            self.rng.uniform(0.5, 2.0, c),
        ]
        return self.op(
            "BatchNormalization", [x, *(self.const(p.astype(np.float32), "bn") for p in params)]
        )

    def gemm(self, x: str, k: int, n: int) -> str:
        return self.op(
            "Gemm",
            [x, self.weights(n, k), self.const(np.zeros(n, np.float32) + 0.05, "b")],
            transB=1,
        )

    def matmul_add(self, x: str, k: int, n: int) -> str:
        y = self.op("MatMul", [x, self.weights(k, n)])
        return self.op(
            "Add", [y, self.const((self.rng.standard_normal(n) * 0.1).astype(np.float32), "b")]
        )

    def model(self, output: str, opset: int = 17) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "stack",
            [self.input],
            [helper.make_empty_tensor_value_info(output)],
            self.inits,
        )
        graph.output[0].name = output
        return finish(graph, opset)


def mlp() -> onnx.ModelProto:
    s = Stack((1, 64))
    h = s.op("Relu", [s.gemm("input", 64, 32)])
    h = s.op("Relu", [s.matmul_add(h, 32, 16)])
    h = s.op("Dropout", [h])
    return s.model(s.op("Softmax", [s.gemm(h, 16, 10)], axis=-1))


def cnn_batchnorm() -> onnx.ModelProto:
    s = Stack((1, 1, 8, 8), seed=1)
    h = s.op("Relu", [s.batchnorm(s.conv("input", 1, 8, (3, 3), pads=[1, 1, 1, 1]), 8)])
    h = s.op(
        "Clip",
        [
            s.batchnorm(s.conv(h, 8, 16, (3, 3), pads=[1, 1, 1, 1]), 16),
            s.const(np.array(0.0, np.float32), "lo"),
            s.const(np.array(6.0, np.float32), "hi"),
        ],
    )
    h = s.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = s.op("GlobalAveragePool", [s.op("Relu", [s.conv(h, 16, 16, (3, 3), pads=[1, 1, 1, 1])])])
    return s.model(s.gemm(s.op("Flatten", [h]), 16, 10))


def depthwise_separable() -> onnx.ModelProto:
    s = Stack((1, 3, 12, 12), seed=2)
    h = s.op(
        "Relu", [s.batchnorm(s.conv("input", 3, 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]), 8)]
    )
    for c_in, c_out in ((8, 16), (16, 16)):
        h = s.op(
            "Relu",
            [s.batchnorm(s.conv(h, c_in, c_in, (3, 3), group=c_in, pads=[1, 1, 1, 1]), c_in)],
        )
        h = s.op("HardSwish", [s.batchnorm(s.conv(h, c_in, c_out, (1, 1)), c_out)])
    h = s.op("ReduceMean", [h], axes=[2, 3], keepdims=1)
    return s.model(
        s.gemm(s.op("Flatten", [h]), 16, 5), opset=14
    )  # HardSwish needs 14; ReduceMean axes attr <18


def cnn_1d() -> onnx.ModelProto:
    s = Stack((1, 1, 40), seed=3)
    h = s.op("Relu", [s.conv("input", 1, 8, (5,), pads=[2, 2])])
    h = s.op("LeakyRelu", [s.conv(h, 8, 8, (3,), strides=[2], pads=[1, 1])], alpha=0.1)
    h = s.op("AveragePool", [h], kernel_shape=[2], strides=[2])
    return s.model(s.gemm(s.op("Flatten", [h]), 80, 10))


def residual() -> onnx.ModelProto:
    s = Stack((1, 4, 8, 8), seed=4)
    stem = s.op("Relu", [s.conv("input", 4, 8, (3, 3), pads=[1, 1, 1, 1])])
    h = s.op("Relu", [s.batchnorm(s.conv(stem, 8, 8, (3, 3), pads=[1, 1, 1, 1]), 8)])
    h = s.batchnorm(s.conv(h, 8, 8, (3, 3), pads=[1, 1, 1, 1]), 8)
    h = s.op("Relu", [s.op("Add", [h, stem])])
    h = s.op("GlobalMaxPool", [s.op("Sigmoid", [h])])
    return s.model(s.gemm(s.op("Flatten", [h]), 8, 3))


def shape_chain_flatten() -> onnx.ModelProto:
    """The `x.view(x.size(0), -1)` pattern: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    s = Stack((1, 2, 4, 4), seed=5)
    h = s.op("Tanh", [s.conv("input", 2, 3, (3, 3))])
    shape = s.op("Shape", [h])
    batch = s.op("Gather", [shape, s.const(np.array(0, np.int64), "i")], axis=0)
    batch = s.op("Unsqueeze", [batch, s.const(np.array([0], np.int64), "ax")])
    target = s.op("Concat", [batch, s.const(np.array([-1], np.int64), "m")], axis=0)
    flat = s.op("Reshape", [h, target])
    return s.model(s.op("HardSigmoid", [s.gemm(flat, 12, 4)]))


STACKS = {
    "mlp": mlp,
    "cnn_batchnorm": cnn_batchnorm,
    "depthwise_separable": depthwise_separable,
    "cnn_1d": cnn_1d,
    "residual": residual,
    "shape_chain_flatten": shape_chain_flatten,
}


# ---- random conv stacks for property tests ----


@st.composite
def conv_stacks(draw: st.DrawFn) -> tuple:
    one_d = draw(st.booleans())
    layers = []
    c_in = channels = draw(st.sampled_from([1, 2, 3, 4, 16]))
    for _ in range(draw(st.integers(1, 4))):
        depthwise = draw(st.booleans()) and channels > 1
        layers.append(
            {
                # 16 and 32 channels make window rows of whole vector steps (read in place)
                "out": channels
                if depthwise
                else draw(st.one_of(st.integers(1, 6), st.sampled_from([16, 18, 32]))),
                "group": channels if depthwise else 1,
                "k": draw(st.integers(1, 3)),
                "stride": draw(st.integers(1, 2)),
                "pad": draw(st.integers(0, 1)),
                "bn": draw(st.booleans()),
                "act": draw(st.sampled_from(["none", "Relu", "Relu6", "LeakyRelu", "Sigmoid"])),
                "residual": draw(st.booleans()),
                "pool": draw(st.sampled_from(["none", "MaxPool", "AveragePool"])),
            }
        )
        channels = layers[-1]["out"]
    head = draw(st.sampled_from(["gap_gemm", "flatten_gemm", "reducemean_softmax"]))
    return one_d, c_in, draw(st.integers(6, 12)), layers, head, draw(st.integers(0, 99))


def build_conv_stack(one_d: bool, c_in: int, size: int, layers: list[dict], head: str, seed: int):  # type: ignore[no-untyped-def]
    r = 1 if one_d else 2
    s = Stack((1, c_in, *([size] * r)), seed=seed)
    x, c, spatial = "input", c_in, size
    for layer in layers:
        if spatial < layer["k"]:
            break
        y = s.conv(
            x,
            c,
            layer["out"],
            (layer["k"],) * r,
            group=layer["group"],
            strides=[layer["stride"]] * r,
            pads=[layer["pad"]] * (2 * r),
        )
        spatial = (spatial + 2 * layer["pad"] - layer["k"]) // layer["stride"] + 1
        if layer["bn"]:
            y = s.batchnorm(y, layer["out"])
        if layer["act"] == "Relu6":
            y = s.op(
                "Clip", [y, s.const(np.array(0, np.float32)), s.const(np.array(6, np.float32))]
            )
        elif layer["act"] != "none":
            y = s.op(layer["act"], [y])
        if (
            layer["residual"]
            and layer["out"] == c
            and layer["stride"] == 1
            and layer["k"] == 2 * layer["pad"] + 1
        ):
            y = s.op("Relu", [s.op("Add", [y, x])])
        if layer["pool"] != "none" and spatial >= 2:
            y = s.op(layer["pool"], [y], kernel_shape=[2] * r, strides=[2] * r)
            spatial //= 2
        x, c = y, layer["out"]
    if head == "gap_gemm":
        out = s.gemm(s.op("Flatten", [s.op("GlobalAveragePool", [x])]), c, 3)
    elif head == "flatten_gemm":
        out = s.gemm(s.op("Flatten", [x]), c * spatial**r, 3)
    else:
        out = s.op(
            "Softmax", [s.op("ReduceMean", [x], axes=list(range(2, 2 + r)), keepdims=0)], axis=-1
        )
    return s.model(out)


BLOCKS = ("act", "residual", "mul_const", "sub_const", "concat", "pad", "pool", "depthwise")
ACTS = ("Relu", "Relu6", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "PRelu")


@st.composite
def mixed_graphs(draw: st.DrawFn) -> tuple:
    """Random small CNNs mixing every op family the integer backends take."""
    blocks = draw(
        st.lists(st.tuples(st.sampled_from(BLOCKS), st.sampled_from(ACTS)), min_size=1, max_size=5)
    )
    head = draw(st.sampled_from(["gap_gemm", "flatten_gemm", "gemm_softmax", "gemm_tanh"]))
    return draw(st.integers(1, 3)), draw(st.integers(4, 8)), blocks, head, draw(st.integers(0, 999))


def build_mixed_graph(
    c_in: int, size: int, blocks: list[tuple[str, str]], head: str, seed: int
) -> onnx.ModelProto:
    s = Stack((1, c_in, size, size), seed=seed)
    c = 4
    x = s.op("Relu", [s.conv("input", c_in, c, (3, 3), pads=[1, 1, 1, 1])])
    for kind, act in blocks:
        if kind == "act":
            if act == "Relu6":
                x = s.op(
                    "Clip", [x, s.const(np.array(0, np.float32)), s.const(np.array(6, np.float32))]
                )
            elif act == "PRelu":
                x = s.op(
                    "PRelu", [x, s.const(s.rng.uniform(-0.5, 0.5, (c, 1, 1)).astype(np.float32))]
                )
            elif act == "LeakyRelu":
                x = s.op("LeakyRelu", [x], alpha=0.1)
            else:
                x = s.op(act, [x])
        elif kind == "residual":
            x = s.op("Add", [s.conv(x, c, c, (3, 3), pads=[1, 1, 1, 1]), x])
        elif kind == "mul_const":
            x = s.op("Mul", [x, s.const(s.rng.uniform(0.5, 2.0, (1, c, 1, 1)).astype(np.float32))])
        elif kind == "sub_const":
            x = s.op("Sub", [x, s.const(s.rng.uniform(-1, 1, (1, c, 1, 1)).astype(np.float32))])
        elif kind == "concat" and c <= 8:
            x = s.op("Concat", [x, s.conv(x, c, c, (1, 1))], axis=1)
            c *= 2
        elif kind == "pad":
            x = s.op("Pad", [x, s.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
            size += 2
        elif kind == "pool" and size >= 4:
            x = s.op(
                "MaxPool" if act in ("Relu", "Tanh", "PRelu") else "AveragePool",
                [x],
                kernel_shape=[2, 2],
                strides=[2, 2],
            )
            size //= 2
        elif kind == "depthwise":
            x = s.op("Relu", [s.conv(x, c, c, (3, 3), group=c, pads=[1, 1, 1, 1])])
    if head == "gap_gemm":
        out = s.gemm(s.op("Flatten", [s.op("GlobalAveragePool", [x])]), c, 5)
    elif head == "flatten_gemm":
        out = s.gemm(s.op("Flatten", [x]), c * size * size, 5)
    else:
        logits = s.gemm(s.op("Flatten", [s.op("GlobalMaxPool", [x])]), c, 5)
        out = (
            s.op("Softmax", [logits], axis=-1) if head == "gemm_softmax" else s.op("Tanh", [logits])
        )
    return s.model(out)


def int8_examples() -> list:
    """Every registered op's own examples, at batch 1 (the C code runs one sample at a time)."""
    from dataclasses import replace

    from edgenn.ops import REGISTRY

    return [
        replace(ex, input_shapes=tuple((1, *shape[1:]) for shape in ex.input_shapes))
        for spec in REGISTRY.values()
        if spec.int8
        for ex in spec.examples()
    ]


def mixed_precision(case: tuple, mask: int, samples: int):  # type: ignore[no-untyped-def]
    """A random mixed graph (mixed_graphs) with the layers `mask` picks promoted to 16x8 (bit i % 16
    of mask for the i-th layer that can be), quantized, and its quantized random inputs."""
    from edgenn.frontend.onnx import import_model
    from edgenn.passes import optimize
    from edgenn.quant.calibrate import calibrate
    from edgenn.quant.quantize import quantize_array, quantize_graph, wide_capable

    graph = optimize(import_model(build_mixed_graph(*case)))
    x = np.random.default_rng(case[-1]).uniform(
        -1, 1, (samples, *graph.type_of(graph.inputs[0]).shape[1:])
    )
    x = x.astype(np.float32)
    wide = [name for i, name in enumerate(wide_capable(graph)) if mask >> (i % 16) & 1]
    fixed = quantize_graph(graph, calibrate(graph, x), wide)
    return fixed, quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams)
