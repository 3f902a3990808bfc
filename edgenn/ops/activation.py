"""Pointwise activations: Relu, Clip (ReLU6 and friends), LeakyRelu, PRelu, Sigmoid, Tanh, HardSigmoid, HardSwish."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from edgenn.ir import Attrs, TensorType
from edgenn.ops import (
    ImportContext,
    Imported,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    broadcast_shape,
    const_input,
    passthrough_import,
    register,
    same_type,
)

Unary = Callable[[np.ndarray, Attrs], np.ndarray]


def unary_reference(fn: Unary) -> Callable[[Sequence[np.ndarray | None], Attrs], list[np.ndarray]]:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        return [np.asarray(fn(x, attrs)).astype(x.dtype, copy=False)]

    return reference


def read_clip(node: OnnxNode, ctx: ImportContext) -> Imported:
    """Clip bounds are attributes before opset 11 and optional constant inputs from 11 on."""
    if ctx.opset < 11:
        lo, hi = node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf)
    else:
        lo_arr, hi_arr = const_input(node, 1, ctx, "min"), const_input(node, 2, ctx, "max")
        lo = -math.inf if lo_arr is None else float(lo_arr)
        hi = math.inf if hi_arr is None else float(hi_arr)
    return Imported("Clip", (node.inputs[0],), {"min": float(lo), "max": float(hi)})


def _sigmoid(x: np.ndarray, attrs: Attrs) -> np.ndarray:
    # split by sign so exp never overflows
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _hard_sigmoid(x: np.ndarray, attrs: Attrs) -> np.ndarray:
    return np.clip(attrs["alpha"] * x + attrs["beta"], 0.0, 1.0)


UNARY: dict[str, tuple[Unary, dict[str, float]]] = {
    "Relu": (lambda x, a: np.maximum(x, 0), {}),
    "Clip": (lambda x, a: np.clip(x, a["min"], a["max"]), {"min": -math.inf, "max": math.inf}),
    "LeakyRelu": (lambda x, a: np.where(x >= 0, x, a["alpha"] * x), {"alpha": 0.01}),
    "Sigmoid": (_sigmoid, {}),
    "Tanh": (lambda x, a: np.tanh(x), {}),
    "HardSigmoid": (_hard_sigmoid, {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": (lambda x, a: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0), {}),
}


def infer_prelu(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, slope = inputs[0], inputs[1]
    assert x is not None and slope is not None
    return [x.with_shape(broadcast_shape(x.shape, slope.shape))]


def reference_prelu(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, slope = inputs[0], inputs[1]
    assert x is not None and slope is not None
    return [np.where(x >= 0, x, slope * x).astype(x.dtype, copy=False)]


def unary_examples(op: str) -> Callable[[], list[OpExample]]:
    def examples() -> list[OpExample]:
        cases = [OpExample(op.lower(), op, ((2, 3, 5),))]
        if op == "Clip":
            cases += [
                OpExample(
                    "clip_relu6",
                    op,
                    ((2, 8),),
                    {},
                    {1: np.array(0.0, np.float32), 2: np.array(6.0, np.float32)},
                ),
                OpExample("clip_min_only", op, ((2, 8),), {}, {1: np.array(-0.25, np.float32)}),
                OpExample(
                    "clip_opset11_max_only",
                    op,
                    ((2, 8),),
                    {},
                    {2: np.array(0.5, np.float32)},
                    opset=11,
                ),
            ]
        if op == "LeakyRelu":
            cases.append(OpExample("leakyrelu_alpha", op, ((4, 4),), {"alpha": 0.2}))
        if op == "HardSigmoid":
            cases.append(
                OpExample("hardsigmoid_alpha_beta", op, ((4, 4),), {"alpha": 0.3, "beta": 0.4})
            )
        return cases

    return examples


def prelu_examples() -> list[OpExample]:
    slope = np.array([0.1, -0.2, 0.3], np.float32).reshape(3, 1, 1)
    return [OpExample("prelu_channel", "PRelu", ((1, 3, 4, 4),), {}, {1: slope})]


def _read_unary(op: str) -> Callable[[OnnxNode, ImportContext], Imported]:
    return read_clip if op == "Clip" else passthrough_import(op, 1)


register(
    *(
        OpSpec(
            op,
            same_type,
            unary_reference(fn),
            _read_unary(op),
            onnx_ops=(op,),
            attrs=defaults,
            layout=Layout.ELEMENTWISE,
            examples=unary_examples(op),
        )
        for op, (fn, defaults) in UNARY.items()
    )
)
register(
    OpSpec(
        "PRelu",
        infer_prelu,
        reference_prelu,
        passthrough_import("PRelu"),
        onnx_ops=("PRelu",),
        layout=Layout.ELEMENTWISE,
        examples=prelu_examples,
    )
)
