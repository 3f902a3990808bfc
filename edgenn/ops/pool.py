"""Pooling: MaxPool, AveragePool (1-D and 2-D) and the global forms.

IR attributes: kernel, strides, pads (begins..., ends...), dilations, ceil_mode, count_include_pad,
channels_last. Windows never read padding for MaxPool (-inf fill); AveragePool divides by the taps counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import ModelFormatError, QuantizationError, UnsupportedOpError
from edgenn.ir import Attrs, Graph, Node, TensorType, tensor_type_of
from edgenn.ops import (
    SAME,
    ImportContext,
    Imported,
    Int8Spec,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    ReferenceFn,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
    set_channels_last,
    spread,
)
from edgenn.ops.spatial import (
    auto_pads,
    check_padded,
    output_size,
    spatial_dims,
    to_channels_first,
    to_channels_last,
    windows,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder

POOL_ATTRS = {"ceil_mode": 0, "count_include_pad": 0, "channels_last": False}


def read_pool(node: OnnxNode, ctx: ImportContext) -> Imported:
    x = ctx.type_of(node.inputs[0])
    if x.rank not in (3, 4):
        raise UnsupportedOpError(
            f"node '{node.name}' ({node.op_type}): only 1-D and 2-D pooling, got rank {x.rank}"
        )
    if node.attrs.get("storage_order", 0):
        raise UnsupportedOpError(f"node '{node.name}' (MaxPool): storage_order=1 is not supported")
    kernel = tuple(node.attrs["kernel_shape"])
    r = len(kernel)
    strides = tuple(node.attrs.get("strides", (1,) * r))
    dilations = tuple(node.attrs.get("dilations", (1,) * r))
    pads = auto_pads(node.attrs.get("auto_pad", "NOTSET"), x.shape[2:], kernel, strides, dilations)
    attrs = {
        "kernel": kernel,
        "strides": strides,
        "dilations": dilations,
        "pads": pads if pads is not None else tuple(node.attrs.get("pads", (0,) * (2 * r))),
        "ceil_mode": int(node.attrs.get("ceil_mode", 0)),
        "count_include_pad": int(node.attrs.get("count_include_pad", 0)),
        "channels_last": False,
    }
    if node.op_type == "AveragePool" and attrs["ceil_mode"] and attrs["count_include_pad"]:
        raise UnsupportedOpError(
            f"node '{node.name}' (AveragePool): ceil_mode with count_include_pad is not supported"
        )
    return Imported(node.op_type, (node.inputs[0],), attrs)


def pooled_sizes(x: TensorType, attrs: Attrs) -> list[int]:
    kernel, strides, dilations, pads = (
        attrs[k] for k in ("kernel", "strides", "dilations", "pads")
    )
    r = len(kernel)
    sizes = []
    for i, size in enumerate(spatial_dims(x, attrs["channels_last"])):
        out = output_size(
            size, kernel[i], strides[i], dilations[i], pads[i] + pads[r + i], attrs["ceil_mode"]
        )
        if attrs["ceil_mode"] and (out - 1) * strides[i] >= size + pads[i]:
            out -= 1  # the last window would start in the end padding
        sizes.append(out)
    return sizes


def infer_pool(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    check_padded(x, attrs["pads"], attrs["channels_last"])
    sizes = pooled_sizes(x, attrs)
    if attrs["channels_last"]:
        return [x.with_shape((x.shape[0], *sizes, x.shape[-1]))]
    return [x.with_shape((*x.shape[:2], *sizes))]


def _pool_channels_first(x: np.ndarray, attrs: Attrs, op: str) -> np.ndarray:
    kernel, strides, dilations, pads = (
        attrs[k] for k in ("kernel", "strides", "dilations", "pads")
    )
    r = len(kernel)
    sizes = pooled_sizes(tensor_type_of(x), {**attrs, "channels_last": False})
    extra = [
        max(
            0,
            (sizes[i] - 1) * strides[i]
            + (kernel[i] - 1) * dilations[i]
            + 1
            - (x.shape[2 + i] + pads[i] + pads[r + i]),
        )
        for i in range(r)
    ]
    axes = tuple(range(-r, 0))
    crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in sizes)
    if op == "MaxPool":
        view = windows(x, kernel, strides, dilations, pads, -np.inf, extra)[crop]
        return view.max(axis=axes)
    view = windows(x, kernel, strides, dilations, pads, 0.0, extra)[crop]
    # count the taps that divide each window: real inputs, plus the padding if count_include_pad
    mask = np.ones((1, 1, *x.shape[2:]), x.dtype)
    if attrs["count_include_pad"]:
        mask = np.pad(
            mask, [(0, 0), (0, 0)] + [(pads[i], pads[r + i]) for i in range(r)], constant_values=1
        )
        counted_pads = (0,) * (2 * r)
    else:
        counted_pads = pads
    counts = windows(mask, kernel, strides, dilations, counted_pads, 0.0, extra)[crop].sum(
        axis=axes
    )
    return view.sum(axis=axes) / counts


def pool_reference(op: str) -> ReferenceFn:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        if attrs["channels_last"]:
            y = to_channels_last(_pool_channels_first(to_channels_first(x), attrs, op))
        else:
            y = _pool_channels_first(x, attrs, op)
        return [y.astype(x.dtype, copy=False)]

    return reference


def read_global_pool(node: OnnxNode, ctx: ImportContext) -> Imported:
    return Imported(node.op_type, (node.inputs[0],), {"channels_last": False})


def infer_global_pool(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = inputs[0]
    assert x is not None
    if attrs["channels_last"]:
        return [x.with_shape((x.shape[0], *([1] * (x.rank - 2)), x.shape[-1]))]
    return [x.with_shape((*x.shape[:2], *([1] * (x.rank - 2))))]


def global_reference(reduce: Callable[..., np.ndarray]) -> ReferenceFn:
    def reference(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        axes = tuple(range(1, x.ndim - 1)) if attrs["channels_last"] else tuple(range(2, x.ndim))
        return [reduce(x, axis=axes, keepdims=True).astype(x.dtype, copy=False)]

    return reference


def pool_examples(op: str) -> Callable[[], list[OpExample]]:
    def examples() -> list[OpExample]:
        cases = [
            OpExample(
                f"{op.lower()}_2x2",
                op,
                ((1, 3, 8, 8),),
                {"kernel_shape": (2, 2), "strides": (2, 2)},
            ),
            OpExample(
                f"{op.lower()}_3x3_pad",
                op,
                ((2, 2, 7, 7),),
                {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)},
            ),
            OpExample(
                f"{op.lower()}_1d", op, ((1, 4, 11),), {"kernel_shape": (3,), "strides": (2,)}
            ),
            OpExample(
                f"{op.lower()}_ceil",
                op,
                ((1, 2, 7, 7),),
                {"kernel_shape": (2, 2), "strides": (2, 2), "ceil_mode": 1},
            ),
            OpExample(
                f"{op.lower()}_same_upper",
                op,
                ((1, 2, 5, 5),),
                {"kernel_shape": (2, 2), "auto_pad": "SAME_UPPER"},
            ),
        ]
        if op == "AveragePool":
            cases.append(
                OpExample(
                    "averagepool_count_pad",
                    op,
                    ((1, 2, 6, 6),),
                    {"kernel_shape": (3, 3), "pads": (1, 1, 1, 1), "count_include_pad": 1},
                )
            )
        else:
            cases.append(
                OpExample(
                    "maxpool_dilated",
                    op,
                    ((1, 2, 9, 9),),
                    {"kernel_shape": (2, 2), "dilations": (2, 2)},
                )
            )
        return cases

    return examples


def global_examples(op: str) -> Callable[[], list[OpExample]]:
    return lambda: [
        OpExample(f"{op.lower()}_2d", op, ((2, 3, 5, 4),)),
        OpExample(f"{op.lower()}_1d", op, ((2, 3, 9),)),
    ]


# ---- int8: TFLite MAX_POOL_2D / AVERAGE_POOL_2D (same input and output parameters) ----


def pool_row(
    x: str,
    y: str,
    b: ProgramBuilder,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    is_avg: bool,
    view: Sequence[int] | None = None,
) -> list[int]:
    """The pooling row; 1-D pools run as height 1. The output grid follows from the window, so a global
    pool's output may be shaped [N, C] as well as [N, 1, 1, C]. `view`: the input read as another
    channels-last shape (the output grid then always follows from the window)."""
    _, *spatial, c = view or b.shape(x)
    r = len(spatial)
    out_spatial = [
        (spatial[i] + pads[i] + pads[r + i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1
        if view or len(b.shape(y)) != r + 2
        else b.shape(y)[1 + i]
        for i in range(r)
    ]
    if is_avg:
        b.check_sum(math.prod(kernel), x)
    if len(spatial) == 1:
        spatial, out_spatial = [1, *spatial], [1, *out_spatial]
        kernel, strides, dilations = (1, *kernel), (1, *strides), (1, *dilations)
        pads = (0, pads[0], 0, pads[1])
    b.scratch(accumulators=c)
    return (POOL_AVERAGE if is_avg else POOL_MAX).row(
        x=b.arena(x),
        y=b.arena(y),
        **spread("h w", spatial),
        c=c,
        **spread("oh ow", out_spatial),
        **spread("kh kw", kernel),
        **spread("sh sw", strides),
        **spread("dh dw", dilations),
        pad_top=pads[0],
        pad_left=pads[1],
        lo=-128,
        hi=127,
        average=int(is_avg),
    )


def prepare_pool_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    attrs = {**POOL_ATTRS, **node.attrs}
    r = len(attrs["kernel"])
    if node.op == "AveragePool" and attrs["count_include_pad"] and any(attrs["pads"]):
        raise QuantizationError(
            f"node '{node.name}' (AveragePool): count_include_pad with padding has no int8 kernel"
        )
    dilations = attrs.get("dilations") or (1,) * r
    return pool_row(
        node.inputs[0],
        node.outputs[0],
        b,
        attrs["kernel"],
        attrs["strides"],
        dilations,
        attrs["pads"],
        node.op == "AveragePool",
    )


def prepare_global_pool_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """A global pool is the pool whose window is the whole feature map."""
    spatial = b.shape(node.inputs[0])[1:-1]
    ones = (1,) * len(spatial)
    return pool_row(
        node.inputs[0],
        node.outputs[0],
        b,
        spatial,
        ones,
        ones,
        (0,) * (2 * len(spatial)),
        node.op == "GlobalAveragePool",
    )


def on_int16(prepare: Callable[..., list[int]]) -> Callable[..., list[int]]:
    """The same pooling row, run by the int16 kernel."""

    def prepare16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
        return POOL16.retag(prepare(node, graph, b))

    return prepare16


@njit(cache=True)
def pool_max_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = POOL_ROW
    x, y, h, w, c, oh, ow = row[f.x], row[f.y], row[f.h], row[f.w], row[f.c], row[f.oh], row[f.ow]
    max_pool(arena[x : x + h * w * c], arena[y : y + oh * ow * c], row, row[f.lo], row[f.hi])


@njit(cache=True)
def pool_average_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = POOL_ROW
    x, y, h, w, c, oh, ow = row[f.x], row[f.y], row[f.h], row[f.w], row[f.c], row[f.oh], row[f.ow]
    src, out = arena[x : x + h * w * c], arena[y : y + oh * ow * c]
    average_pool(src, out, row, acc, row[f.lo], row[f.hi])


@njit(cache=True)
def pool16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    """The same row on int16 data (16x8 models)."""
    f = POOL_ROW
    x, y, h, w, c, oh, ow = row[f.x], row[f.y], row[f.h], row[f.w], row[f.c], row[f.oh], row[f.ow]
    src = arena[x : x + 2 * h * w * c].view(np.int16)
    out = arena[y : y + 2 * oh * ow * c].view(np.int16)
    if row[f.average]:
        average_pool(src, out, row, acc, -32768, 32767)
    else:
        max_pool(src, out, row, -32768, 32767)


@njit(cache=True, inline="always")
def max_pixels(src, out, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, lo, hi):  # type: ignore[no-untyped-def]
    """Max pooling in the element type, straight into the output (vector max over the channels)."""
    for oy in range(oh):
        for ox in range(ow):
            pixel = out[(oy * ow + ox) * c : (oy * ow + ox + 1) * c]
            for ch in range(c):
                pixel[ch] = lo  # a window wholly in the padding gives the clamp's low end
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if ix < 0 or ix >= w:
                        continue
                    tap = src[(iy * w + ix) * c : (iy * w + ix + 1) * c]
                    for ch in range(c):
                        pixel[ch] = max(pixel[ch], tap[ch])
            for ch in range(c):
                pixel[ch] = min(pixel[ch], hi)


@njit(cache=True, inline="always")
def max_pool(src, out, row, lo, hi):  # type: ignore[no-untyped-def]
    """Max pooling of one channels-last map (src, out: int8 slices or int16 views)."""
    f = POOL_ROW  # the int8 and int16 pools share it
    h, w, c, oh, ow = row[f.h], row[f.w], row[f.c], row[f.oh], row[f.ow]
    kh, kw, sh, sw = row[f.kh], row[f.kw], row[f.sh], row[f.sw]
    dh, dw, pt, pl = row[f.dh], row[f.dw], row[f.pad_top], row[f.pad_left]
    max_pixels(src, out, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, lo, hi)


@njit(cache=True, inline="always")
def average_pool(src, out, row, acc, lo, hi):  # type: ignore[no-untyped-def]
    """Average pooling of one channels-last map, the divide rounding half away from zero."""
    f = POOL_ROW
    h, w, c, oh, ow = row[f.h], row[f.w], row[f.c], row[f.oh], row[f.ow]
    kh, kw, sh, sw = row[f.kh], row[f.kw], row[f.sh], row[f.sw]
    dh, dw, pt, pl = row[f.dh], row[f.dw], row[f.pad_top], row[f.pad_left]
    total = acc[:c]  # channels innermost: each tap updates a whole pixel's channels at once
    for oy in range(oh):
        for ox in range(ow):
            for ch in range(c):
                total[ch] = 0
            count = 0
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if ix < 0 or ix >= w:
                        continue
                    tap = src[(iy * w + ix) * c : (iy * w + ix + 1) * c]
                    for ch in range(c):
                        total[ch] += tap[ch]
                    count += 1
            pixel = out[(oy * ow + ox) * c : (oy * ow + ox + 1) * c]
            for ch in range(c):
                value = total[ch]
                if count > 0:
                    # divide rounding half away from zero, with C's truncating division
                    half = count // 2
                    value = (value + half) // count if value > 0 else -((-value + half) // count)
                pixel[ch] = min(max(value, lo), hi)


register(
    *(
        OpSpec(
            op,
            infer_pool,
            pool_reference(op),
            read_pool,
            onnx_ops=(op,),
            attrs=POOL_ATTRS,
            layout=Layout.SPATIAL,
            permute_attrs=set_channels_last,
            examples=pool_examples(op),
            int8=Int8Spec(
                output=SAME, prepare=prepare_pool_int8, prepare16=on_int16(prepare_pool_int8)
            ),
        )
        for op in ("MaxPool", "AveragePool")
    ),
    *(
        OpSpec(
            op,
            infer_global_pool,
            global_reference(fn),
            read_global_pool,
            onnx_ops=(op,),
            attrs={"channels_last": False},
            layout=Layout.SPATIAL,
            permute_attrs=set_channels_last,
            examples=global_examples(op),
            int8=Int8Spec(
                output=SAME,
                prepare=prepare_global_pool_int8,
                prepare16=on_int16(prepare_global_pool_int8),
            ),
        )
        for op, fn in (("GlobalAveragePool", np.mean), ("GlobalMaxPool", np.max))
    ),
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
POOL_ROW = row_layout("pool", "x y h w c oh ow kh kw sh sw dh dw pad_top pad_left lo hi average")
# one kernel per kind, so a model compiles only the pooling it uses; the C pool reads `average`
POOL_MAX = register_kernel("pool_max", pool_max_int8, POOL_ROW, c=("edgenn_pool", "pool.c"))
POOL_AVERAGE = register_kernel(
    "pool_average", pool_average_int8, POOL_ROW, c=("edgenn_pool", "pool.c")
)
POOL16 = register_kernel("pool16", pool16, POOL_ROW, c=("edgenn_pool16", "pool.c"))


# ---- TFLite: how the writer lowers these ops ----


def lower_pool(lw: Lowering, node: Node) -> None:
    from edgenn.codegen.tflite import explicit_pad, padding_mode, spatial_4d, spatial_output

    a = node.attrs
    rank = len(lw.graph.type_of(node.inputs[0]).shape)
    if node.op == "ReduceMean" and tuple(a["axes"]) != tuple(range(1, rank - 1)):
        raise UnsupportedOpError(
            f"node '{node.name}' (ReduceMean): only a mean over the spatial axes of a channels-last "
            "tensor maps to TFLite"
        )
    x, was_1d = spatial_4d(lw, node.inputs[0])
    n, h, width, c = lw.out.tensors[x].shape
    if node.op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
        kernel, strides, dilations, pads = (h, width), (1, 1), (1, 1), (0, 0, 0, 0)
    else:
        kernel = (1, *a["kernel"]) if was_1d else tuple(a["kernel"])
        strides = (1, *a["strides"]) if was_1d else tuple(a["strides"])
        dilations = tuple(a.get("dilations") or (1,) * len(a["kernel"]))
        dilations = (1, *dilations) if was_1d else dilations
        pads = (0, a["pads"][0], 0, a["pads"][1]) if was_1d else tuple(a["pads"])
    if any(d != 1 for d in dilations):
        raise QuantizationError(f"node '{node.name}' ({node.op}): TFLite pooling has no dilation")
    y, finish = spatial_output(
        lw, node.outputs[0], was_1d or len(lw.out.tensors[lw.tensor(node.outputs[0])].shape) != 4
    )
    out_hw = lw.out.tensors[y].shape[1:3]
    is_max = node.op in ("MaxPool", "GlobalMaxPool")
    mode = padding_mode((h, width), out_hw, kernel, strides, (1, 1), pads)
    if mode is None:
        if not is_max:
            raise QuantizationError(
                f"node '{node.name}' (AveragePool): padding {pads} is neither SAME nor VALID"
            )
        x, mode = explicit_pad(lw, x, pads, -128), "VALID"
    options = {
        "padding": mode,
        "stride_h": strides[0],
        "stride_w": strides[1],
        "filter_height": kernel[0],
        "filter_width": kernel[1],
        "fused_activation_function": "NONE",
    }
    lw.emit("MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D", [x], [y], ("Pool2DOptions", options))
    finish()


POOL_BUILTINS = {"MAX_POOL_2D": 2, "AVERAGE_POOL_2D": 2}
register_tflite(
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    lower=lower_pool,
    versions=POOL_BUILTINS,
)


# ---- TFLite: how the reader takes these builtins ----


def read_pool(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    import tflite

    from edgenn.frontend.tflite import check_positive, fused_clip, same_pads

    o = r.options(op, "Pool2DOptions")
    is_max = (
        r.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.MAX_POOL_2D
    )
    if o is None:
        raise ModelFormatError(f"{r.name}: {name} has no options")
    kernel, strides = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    check_positive(r, name, filter=kernel, strides=strides)
    pads = same_pads(
        r, ins[0], outs[0], kernel, strides, (1, 1), o.Padding() == tflite.Padding.SAME
    )
    if fused_clip(o) != {"clip_min": -math.inf, "clip_max": math.inf}:
        raise UnsupportedOpError(
            f"{r.name}: {name} has a fused activation, which edgenn pools do not take"
        )
    r.emit(
        name,
        "MaxPool" if is_max else "AveragePool",
        [ins[0]],
        outs,
        kernel=kernel,
        strides=strides,
        dilations=(1, 1),
        pads=pads,
        ceil_mode=0,
        count_include_pad=0,
        channels_last=True,
    )


register_tflite_reader("MAX_POOL_2D", "AVERAGE_POOL_2D", read=read_pool)
