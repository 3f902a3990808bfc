"""BatchNormalization in inference form: y = (x - mean) / sqrt(var + eps) * scale + bias along `axis`.

Usually folded into the preceding Conv/FullyConnected (passes/fold_batchnorm.py); kept as an op for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgenn.errors import ShapeError, UnsupportedOpError
from edgenn.ir import Attrs, TensorType
from edgenn.ops import ImportContext, Imported, Layout, OnnxNode, OpExample, OpSpec, register

INPUT, SCALE, BIAS, MEAN, VAR = range(5)


def read_batchnorm(node: OnnxNode, ctx: ImportContext) -> Imported:
    if node.attrs.get("training_mode", 0):
        raise UnsupportedOpError(
            f"node '{node.name}' (BatchNormalization): training_mode=1 is not supported"
        )
    return Imported(
        "BatchNormalization",
        node.inputs[:5],
        {"epsilon": float(node.attrs.get("epsilon", 1e-5)), "axis": 1},
    )


def infer_batchnorm(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = inputs[INPUT]
    assert x is not None
    channels = x.shape[attrs["axis"]]
    for i in (SCALE, BIAS, MEAN, VAR):
        t = inputs[i]
        if t is None or t.shape != (channels,):
            raise ShapeError(f"BatchNormalization input {i} should have shape ({channels},)")
    return [x]


def batchnorm_affine(
    inputs: Sequence[np.ndarray | None], epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel (multiplier, offset) pair the normalization reduces to, computed in float64."""
    scale, bias, mean, var = (np.asarray(inputs[i], np.float64) for i in (SCALE, BIAS, MEAN, VAR))
    mul = scale / np.sqrt(var + epsilon)
    return mul, bias - mean * mul


def reference_batchnorm(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = inputs[INPUT]
    assert x is not None
    mul, add = batchnorm_affine(inputs, attrs["epsilon"])
    shape = [1] * x.ndim
    shape[attrs["axis"]] = -1
    y = x * mul.astype(x.dtype).reshape(shape) + add.astype(x.dtype).reshape(shape)
    return [y.astype(x.dtype, copy=False)]


def permute_batchnorm(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    return {**attrs, "axis": perm.index(attrs["axis"])}


def examples() -> list[OpExample]:
    rng = np.random.default_rng(4)
    c = 3
    params = {
        1: rng.uniform(0.5, 1.5, c),
        2: rng.standard_normal(c),
        3: rng.standard_normal(c),
        4: rng.uniform(0.2, 2.0, c),
    }
    params = {i: v.astype(np.float32) for i, v in params.items()}
    return [
        OpExample("batchnorm_2d", "BatchNormalization", ((2, c, 4, 4),), {"epsilon": 1e-3}, params),
        OpExample("batchnorm_1d", "BatchNormalization", ((2, c, 7),), {}, params),
    ]


register(
    OpSpec(
        "BatchNormalization",
        infer_batchnorm,
        reference_batchnorm,
        read_batchnorm,
        onnx_ops=("BatchNormalization",),
        attrs={"epsilon": 1e-5, "axis": 1},
        layout=Layout.AXES,
        permute_attrs=permute_batchnorm,
        examples=examples,
    )
)
