"""Helpers shared by the spatial op families (conv, pool): padding arithmetic and strided windows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgenn.errors import ShapeError, UnsupportedOpError
from edgenn.ir import TensorType
from edgenn.limits import check_bytes


def output_size(
    size: int, kernel: int, stride: int, dilation: int, pad: int, ceil: bool = False
) -> int:
    """floor((size + pads - dilated_kernel) / stride) + 1; with ceil_mode a last window may start in the
    end padding only if it starts inside the input or begin padding (ONNX/PyTorch rule)."""
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ShapeError(
            f"kernel {kernel}, stride {stride} and dilation {dilation} must all be at least 1"
        )
    if pad < 0:
        raise ShapeError(f"padding {pad} is negative")
    span = (kernel - 1) * dilation + 1
    room = size + pad - span
    if room < 0:
        raise ShapeError(f"kernel span {span} exceeds padded input size {size + pad}")
    out = (math.ceil(room / stride) if ceil else room // stride) + 1
    return out


def auto_pads(
    auto_pad: str,
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...] | None:
    """Explicit (begins..., ends...) pads for ONNX auto_pad, or None for NOTSET."""
    if auto_pad in ("NOTSET", ""):
        return None
    if auto_pad == "VALID":
        return (0,) * (2 * len(sizes))
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedOpError(f"auto_pad '{auto_pad}' is not supported")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def spatial_dims(x: TensorType, channels_last: bool) -> tuple[int, ...]:
    return x.shape[1:-1] if channels_last else x.shape[2:]


def channels(x: TensorType, channels_last: bool) -> int:
    return x.shape[-1] if channels_last else x.shape[1]


def check_padded(x: TensorType, pads: Sequence[int], channels_last: bool) -> None:
    """The float reference pads a window op's input before reading windows: bound that copy."""
    spatial = spatial_dims(x, channels_last)
    r = len(spatial)
    padded = math.prod(s + pads[i] + pads[r + i] for i, s in enumerate(spatial))
    check_bytes(x.size // math.prod(spatial) * padded * 4, f"the padded input {x.shape}")


def to_channels_first(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 1)


def to_channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def windows(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    fill: float,
    extra_end: Sequence[int] | None = None,
) -> np.ndarray:
    """[N, C, *S] -> [N, C, *OUT, *K] view of every (dilated, strided) window over the padded input.
    `extra_end` pads further at the end (ceil_mode) so that the last partial window exists."""
    r = len(kernel)
    extra = extra_end or (0,) * r
    widths = [(0, 0), (0, 0)] + [(pads[i], pads[r + i] + extra[i]) for i in range(r)]
    padded_size = math.prod(n + a + b for n, (a, b) in zip(x.shape, widths))
    check_bytes(padded_size * x.itemsize, f"a padded window copy of shape {x.shape}")
    padded = np.pad(x, widths, constant_values=fill) if any(map(any, widths)) else x
    spans = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    view = sliding_window_view(padded, spans, axis=tuple(range(2, 2 + r)))
    index = (slice(None), slice(None))
    index += tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations
    )
    return view[index]
