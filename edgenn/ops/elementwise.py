"""Binary elementwise arithmetic with numpy broadcasting: Add, Sub, Mul, Div (fused activation clamp allowed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgenn.ir import Attrs, TensorType
from edgenn.ops import (
    CLIP_ATTRS,
    Layout,
    OpExample,
    OpSpec,
    ReferenceFn,
    broadcast_shape,
    clip_range,
    passthrough_import,
    register,
)


def infer_binary(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    a, b = inputs[0], inputs[1]
    assert a is not None and b is not None
    return [a.with_shape(broadcast_shape(a.shape, b.shape))]


def binary_reference(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> ReferenceFn:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        a, b = inputs[0], inputs[1]
        assert a is not None and b is not None
        return [clip_range(np.asarray(fn(a, b)).astype(np.result_type(a, b), copy=False), attrs)]

    return reference


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # integer Div truncates toward zero in ONNX (shape arithmetic); float Div is true division
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def examples_for(op: str) -> Callable[[], list[OpExample]]:
    def examples() -> list[OpExample]:
        rng = np.random.default_rng(3)
        divisor_safe = rng.uniform(0.5, 2.0, (1, 3, 1, 1)).astype(np.float32)
        return [
            OpExample(f"{op.lower()}_same_shape", op, ((2, 3, 4), (2, 3, 4))),
            OpExample(f"{op.lower()}_broadcast_const", op, ((1, 3, 4, 4),), {}, {1: divisor_safe}),
            OpExample(
                f"{op.lower()}_scalar_const", op, ((2, 5),), {}, {1: np.array(1.5, np.float32)}
            ),
        ]

    return examples


_FUNCTIONS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide}

register(
    *(
        OpSpec(
            op,
            infer_binary,
            binary_reference(fn),
            passthrough_import(op),
            onnx_ops=(op,),
            attrs=dict(CLIP_ATTRS),
            layout=Layout.ELEMENTWISE,
            fuses_activation=op != "Div",
            examples=examples_for(op),
        )
        for op, fn in _FUNCTIONS.items()
    )
)
