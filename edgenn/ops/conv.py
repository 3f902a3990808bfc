"""Convolution (1-D and 2-D, grouped and depthwise), with an optional fused activation clamp.

IR attributes: strides, dilations, pads (begins..., ends...), group, channels_last, clip_min, clip_max.
Inputs: X, W, B (B may be ""). Channels-first: X [N, C, *S], W [O, C/group, *K] (ONNX).
Channels-last: X [N, *S, C], W [O, *K, C/group] (OHWI, the TFLite filter layout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import ModelFormatError, QuantizationError, ShapeError, UnsupportedOpError
from edgenn.ir import Attrs, DType, Graph, Node, QParams, TensorType, Value
from edgenn.limits import check_bytes
from edgenn.ops import (
    CLIP_ATTRS,
    ImportContext,
    Imported,
    Int8Spec,
    Layout,
    OnnxNode,
    OpExample,
    OpSpec,
    checked_int32,
    clip_range,
    register,
    register_kernel,
    register_table,
    register_tflite,
    register_tflite_reader,
    row_layout,
    set_channels_last,
)
from edgenn.ops.dot import (
    COLUMN_LANES,
    COLUMN_PIXELS,
    LANES,
    OUTER_LANES,
    PAIR_LANES,
    ROWS,
    TAP_LANES,
    block_dot_1x4,
    block_dot_1x4_vnni,
    block_dot_2x4,
    block_dot_2x4_vnni,
    column_dot_4,
    column_dot_single,
    column_groups,
    column_size,
    column_words,
    copy_bytes,
    copy_runs,
    fill_bytes,
    flip_bytes,
    interleave_partners,
    pair_dots,
    pair_outer,
    pair_sizes,
    pair_sums,
    pair_words,
    requantize_rows,
    tap_rows,
    widen_bytes,
)
from edgenn.ops.spatial import (
    auto_pads,
    channels,
    check_padded,
    output_size,
    spatial_dims,
    to_channels_first,
    to_channels_last,
    windows,
)
from edgenn.ops.tiles import TILE_CONFIG, TILE_PIXELS, tile_end, tile_start, tile_sums
from edgenn.ops.wide import prepare_conv16
from edgenn.quant.fixed_point import (
    activation_bounds,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder

INPUT, WEIGHTS, BIAS = 0, 1, 2


def read_conv(node: OnnxNode, ctx: ImportContext) -> Imported:
    x, w = ctx.type_of(node.inputs[INPUT]), ctx.type_of(node.inputs[WEIGHTS])
    if x.rank not in (3, 4):
        raise UnsupportedOpError(
            f"node '{node.name}' (Conv): only 1-D and 2-D convolution, got rank {x.rank}"
        )
    r = x.rank - 2
    kernel = w.shape[2:]
    strides = tuple(node.attrs.get("strides", (1,) * r))
    dilations = tuple(node.attrs.get("dilations", (1,) * r))
    pads = auto_pads(node.attrs.get("auto_pad", "NOTSET"), x.shape[2:], kernel, strides, dilations)
    if pads is None:
        pads = tuple(node.attrs.get("pads", (0,) * (2 * r)))
    attrs = {
        "strides": strides,
        "dilations": dilations,
        "pads": pads,
        "group": int(node.attrs.get("group", 1)),
        "channels_last": False,
    }
    return Imported("Conv", (node.inputs[INPUT], node.inputs[WEIGHTS], node.input(BIAS)), attrs)


def infer_conv(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, w, b = inputs[INPUT], inputs[WEIGHTS], inputs[BIAS] if len(inputs) > BIAS else None
    cl, group = attrs["channels_last"], attrs["group"]
    assert x is not None and w is not None
    if w.rank != x.rank:
        raise ShapeError(f"weights rank {w.rank} differs from input rank {x.rank}")
    out_ch = w.shape[0]
    kernel = w.shape[1:-1] if cl else w.shape[2:]
    in_per_group = w.shape[-1] if cl else w.shape[1]
    if channels(x, cl) != in_per_group * group or out_ch % group:
        raise ShapeError(
            f"input has {channels(x, cl)} channels but weights {w.shape} with group {group} expect "
            f"{in_per_group * group}"
        )
    if b is not None and b.shape != (out_ch,):
        raise ShapeError(f"bias shape {b.shape} should be ({out_ch},)")
    r = len(kernel)
    check_padded(x, attrs["pads"], cl)
    sizes = [
        output_size(
            s,
            k,
            attrs["strides"][i],
            attrs["dilations"][i],
            attrs["pads"][i] + attrs["pads"][r + i],
        )
        for i, (s, k) in enumerate(zip(spatial_dims(x, cl), kernel))
    ]
    shape = (x.shape[0], *sizes, out_ch) if cl else (x.shape[0], out_ch, *sizes)
    return [x.with_shape(shape)]


WINDOW_CHUNK_BYTES = 256 << 20


def conv_channels_first(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, attrs: Attrs
) -> np.ndarray:
    """Grouped convolution by strided windows and one einsum per call (2-D; 1-D as height 1)."""
    one_d = x.ndim == 3
    strides, dilations, pads = attrs["strides"], attrs["dilations"], attrs["pads"]
    if one_d:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dilations, pads = (1, *strides), (1, *dilations), (0, pads[0], 0, pads[1])
    group = attrs["group"]
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    wg = w.reshape(group, o // group, cg, kh, kw)
    # the windows are copied for the einsum (C * OH * OW * KH * KW values a sample): samples go in
    # chunks of at most WINDOW_CHUNK_BYTES, and one sample must fit the memory limit
    sample_bytes = windows(x[:1], (kh, kw), strides, dilations, pads, 0.0).size * x.itemsize
    check_bytes(sample_bytes, f"the windows of one sample's convolution {x.shape[1:]}")
    step = max(1, WINDOW_CHUNK_BYTES // max(sample_bytes, 1))
    parts = []
    for start in range(0, n, step):
        view = windows(x[start : start + step], (kh, kw), strides, dilations, pads, 0.0)
        m, _, oh, ow = view.shape[:4]  # [N, C, OH, OW, KH, KW]
        xg = view.reshape(m, group, c // group, oh, ow, kh, kw)
        parts.append(np.einsum("ngchwij,gocij->ngohw", xg, wg, optimize=True).reshape(m, o, oh, ow))
    y = np.concatenate(parts)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y[:, :, 0, :] if one_d else y


def reference_conv(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, w = inputs[INPUT], inputs[WEIGHTS]
    b = inputs[BIAS] if len(inputs) > BIAS else None
    assert x is not None and w is not None
    if attrs["channels_last"]:
        y = to_channels_last(
            conv_channels_first(to_channels_first(x), to_channels_first(w), b, attrs)
        )
    else:
        y = conv_channels_first(x, w, b, attrs)
    return [clip_range(y.astype(x.dtype, copy=False), attrs)]


def conv_macs(
    inputs: Sequence[TensorType | None], outputs: Sequence[TensorType], attrs: Attrs
) -> int:
    w = inputs[WEIGHTS]
    assert w is not None
    # each output element takes (C/group) * prod(K) multiply-accumulates: exactly the weights per filter
    return outputs[0].size * math.prod(w.shape[1:])


def examples() -> list[OpExample]:
    rng = np.random.default_rng(0)

    def weights(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    return [
        OpExample(
            "conv2d",
            "Conv",
            ((1, 3, 7, 7),),
            {"pads": (1, 1, 1, 1)},
            {1: weights(4, 3, 3, 3), 2: weights(4)},
        ),
        OpExample(
            "conv2d_stride_dilation",
            "Conv",
            ((2, 2, 9, 8),),
            {"strides": (2, 1), "dilations": (2, 1), "pads": (0, 1, 2, 0)},
            {1: weights(3, 2, 3, 2)},
        ),
        OpExample(
            "conv2d_wide_dilated",  # window rows of whole vector steps: read in place
            "Conv",
            ((1, 16, 9, 9),),
            {"strides": (1, 2), "dilations": (2, 1), "pads": (1, 0, 2, 1)},
            {1: weights(5, 16, 3, 2), 2: weights(5)},
        ),
        OpExample("conv2d_groups", "Conv", ((1, 4, 6, 6),), {"group": 2}, {1: weights(6, 2, 3, 3)}),
        OpExample(
            "conv2d_depthwise",
            "Conv",
            ((1, 4, 6, 6),),
            {"group": 4, "pads": (1, 1, 1, 1)},
            {1: weights(8, 1, 3, 3), 2: weights(8)},
        ),
        OpExample(
            "conv2d_same_upper",
            "Conv",
            ((1, 2, 7, 6),),
            {"auto_pad": "SAME_UPPER", "strides": (2, 2)},
            {1: weights(3, 2, 4, 3)},
        ),
        OpExample(
            "conv2d_same_lower",
            "Conv",
            ((1, 2, 6, 6),),
            {"auto_pad": "SAME_LOWER"},
            {1: weights(3, 2, 2, 2)},
        ),
        OpExample(
            "conv1d",
            "Conv",
            ((2, 3, 20),),
            {"pads": (2, 2), "strides": (2,)},
            {1: weights(5, 3, 5), 2: weights(5)},
        ),
        OpExample(
            "conv1d_depthwise_dilated",
            "Conv",
            ((1, 4, 16),),
            {"group": 4, "dilations": (3,)},
            {1: weights(4, 1, 3)},
        ),
    ]


# ---- int8: TFLite CONV_2D / DEPTHWISE_CONV_2D semantics (1-D as height 1) ----

# the row every conv kernel (and the C conv) reads; stride: a weight row's length (padded for GATHER);
# scratch: the arena offset of the C GATHER kernel's window pair (-1: windows read in place)
CONV_ROW = row_layout(
    "conv",
    "x y w b m h width c oh ow oc kh kw sh sw dh dw pad_top pad_left zp_in zp_out lo hi mode "
    "stride host_table scratch",
)

GATHER, OUTER = 0, -1  # kernel modes; a positive mode is a depthwise multiplier
FEW_CHANNELS = 3


def prepare_conv_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    attrs = CONV_SPEC.attrs_of(node)
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    if not attrs["channels_last"]:
        raise QuantizationError(
            f"node '{node.name}' (Conv): int8 convolution runs channels-last only"
        )
    w = b.const(w_name)
    one_d = len(b.shape(x)) == 3
    _, *spatial, c = b.shape(x)
    _, *out_spatial, oc = b.shape(y)
    h, width = (1, spatial[0]) if one_d else spatial
    oh, ow = (1, out_spatial[0]) if one_d else out_spatial
    kh, kw = (1, w.shape[1]) if one_d else w.shape[1:3]
    (sh, sw), (dh, dw) = _pairs(attrs["strides"], one_d), _pairs(attrs["dilations"], one_d)
    pads = attrs["pads"]
    pt, pl = (0, pads[0]) if one_d else (pads[0], pads[1])
    if width == ow == kw == 1 and h > 1:
        # a [T, 1] column (streaming audio as N x T x 1 x C) is the same bytes as a [1, T] row:
        # run it as a row, so the kernels' pixel blocks run along T
        h, width, oh, ow, kh, kw = 1, h, 1, oh, 1, kh
        (sh, sw), (dh, dw), (pt, pl) = (1, sh), (1, dh), (0, pt)
    group = attrs["group"]
    depthwise = group == c and group > 1 and w.shape[-1] == 1
    if group != 1 and not depthwise:
        raise QuantizationError(
            f"node '{node.name}' (Conv): grouped convolution (group {group}) has no int8 kernel"
        )
    s_in, zp_in = b.scale_zp(x)
    s_out, zp_out = b.scale_zp(y)
    lo, hi = activation_bounds(attrs["clip_min"], attrs["clip_max"], s_out, zp_out)
    bias_q = b.const(bias).astype(np.int64)
    w2 = w.reshape(oc, -1).astype(np.int64)
    b.check_dot(w2, bias_q, x)
    if depthwise:
        # taps outer, channels inner: weights stored [KH, KW, O] so a tap's weights are contiguous
        weights, mode = w.reshape(oc, kh * kw).T, oc // c
        bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
        span, _, rows, axis, _, pair_taps, image_bytes, pairs_bytes, offset_bytes = (
            depthwise_layout(oc, ow, kh, kw, bh, bw, sw, dh, dw)
        )
        padded, taps_bytes = tap_rows_layout(oc, kh, kw, bh, bw)
        b.scratch(
            patch=max(image_bytes + pairs_bytes + offset_bytes, taps_bytes),
            accumulators=max(span * oc, rows * ow * oc, DEPTHWISE_SPAN * padded),
        )
        # each tap pair's weights side by side (a lone tap's partner 0), tiled over a block of
        # pixels, once, for the host kernel
        pairs = np.zeros((pair_taps, oc, 2), np.int16)
        for q in range(pair_taps):
            first, partnered = pair_tap(q, kh, kw, axis)
            pairs[q, :, 0] = weights[first]
            if partnered:
                pairs[q, :, 1] = weights[first + (kw if axis == BY_ROW else 1)]
        tiled = np.tile(pairs[:, None], (1, span, 1, 1)).reshape(-1)
        # then (AVX2) the weights [taps, channels padded to PAIR_LANES] and the starting sums
        # -zp * sum(w) as int16 halves, low first
        direct = np.zeros((kh * kw, padded), np.int64)
        direct[:, :oc] = weights
        start = np.zeros(padded, np.int64)
        start[:oc] = -zp_in * weights.astype(np.int64).sum(axis=0)
        halves = np.stack([start & 0xFFFF, start >> 16 & 0xFFFF], axis=1).reshape(-1)
        tiled = np.concatenate([tiled, direct.reshape(-1), halves.astype(np.uint16).view(np.int16)])
    elif c <= FEW_CHANNELS:
        # few input channels (a first layer): every tap adds (x - zp) times a row of output weights,
        # vectorized over the output channels; weights stored [KH, KW, C, O]
        weights, mode = (
            np.transpose(w, (1, 2, 3, 0)) if not one_d else np.transpose(w, (1, 2, 0)),
            OUTER,
        )
        bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
        spread, groups, padded, column_bytes = outer_column_layout(c, oc, kh, kw, dw, bh, bw)
        k = 4 * groups
        # (AMX: the bordered copy, then TILE_PIXELS windows of whole tiles)
        amx_bytes = (bh * bw * spread if dw == 1 else 0) + TILE_PIXELS * 4 * column_groups(k)
        b.scratch(
            patch=max(
                outer_scratch(kh * kw * c, oc, bh, bw, c),
                column_bytes,
                amx_bytes,
                pair_scratch(OUTER, c, kh, kw, dw, bh, bw, 0),
            ),
            accumulators=max(min(ow, SPAN), TILE_PIXELS) * padded,  # a span of output pixels
        )
    else:
        # padding taps are filled with the input zero point, so (x - zp) * w is folded into the bias:
        # sum (x - zp) w + bias == sum x w + (bias - zp * sum w) exactly, in integers. Weight rows are
        # zero-padded to whole vector steps (the patch's tail is zeroed to match)
        stride = -(-kh * kw * c // LANES) * LANES
        weights, mode = np.zeros((oc, stride), np.int8), GATHER
        weights[:, : kh * kw * c] = w.reshape(oc, -1)
        bias_q = bias_q - zp_in * w2.sum(axis=1)
        bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
        # gathered windows or the input inside its border, then (AVX512-VNNI) the weight words;
        # a span of pixels' sums, their channels padded to whole column blocks
        windows, padded = gather_layout(stride, bh, bw, c, oc)
        b.scratch(
            patch=max(windows, pair_scratch(GATHER, c, kh, kw, dw, bh, bw, stride)),
            accumulators=max(min(ow, SPAN), TILE_PIXELS) * padded,
        )
    kernel = {GATHER: CONV_GATHER, OUTER: CONV_OUTER}.get(mode, CONV_DEPTHWISE)
    table = b.table("depthwise_tiles", tiled) if depthwise else 0  # in its host-only table
    if mode == GATHER:  # the column words, then the AVX2 variant's pair words
        pairs = pair_words(_pair_rows(w.reshape(oc, kh, -1), dw))
        table = b.table("column_words", np.concatenate([column_words(weights), pairs]))
    elif mode == OUTER:
        taps = weights.reshape(kh * kw, c, oc).transpose(2, 0, 1)  # [O, taps, C]
        # (AVX2) raw x times the weights: zp * sum(w) comes off the starting sums
        pairs = pair_words(_pair_rows(taps.reshape(oc, kh, -1), dw), fold=zp_in)
        if dw == 1:  # a window row of the bordered copy: KW pixels of `spread` channels each
            spread_taps = np.zeros((oc, kh * kw, spread), taps.dtype)
            spread_taps[..., :c] = taps
            taps = spread_taps
        # the kernel multiplies raw x (+ 128): zp * sum(w) comes off with the offset's
        words = column_words(taps.reshape(oc, -1), fold=zp_in)
        table = b.table("column_words", np.concatenate([words, pairs]))
    return kernel.row(
        x=b.arena(x),
        y=b.arena(y),
        w=b.weights(weights),
        b=b.biases(checked_int32(bias_q, node)),
        m=b.channel_multipliers(node, w_name, oc, s_in, s_out),
        h=h,
        width=width,
        c=c,
        oh=oh,
        ow=ow,
        oc=oc,
        kh=kh,
        kw=kw,
        sh=sh,
        sw=sw,
        dh=dh,
        dw=dw,
        pad_top=pt,
        pad_left=pl,
        zp_in=zp_in,
        zp_out=zp_out,
        lo=lo,
        hi=hi,
        mode=mode,
        stride=stride if mode == GATHER else kh * kw * c,
        host_table=table,
    )


@njit(cache=True, inline="always")
def gather_window(arena, x, h, width, c, kh, kw, dh, dw, iy0, ix0, zp_in, patch):  # type: ignore[no-untyped-def]
    """Copy one convolution window [KH, KW, C] into `patch`; taps outside the input get the input zero
    point (so they add nothing once the bias carries -zp * sum w). Rows fully inside copy in one run."""
    row_len = kw * c
    for ky in range(kh):
        iy = iy0 + ky * dh
        start = ky * row_len
        if iy < 0 or iy >= h:
            fill_bytes(patch, start, row_len, zp_in)
        elif dw == 1 and ix0 >= 0 and ix0 + kw <= width:
            copy_bytes(patch, start, arena, x + (iy * width + ix0) * c, row_len)
        else:
            for kx in range(kw):
                ix = ix0 + kx * dw
                if ix < 0 or ix >= width:
                    fill_bytes(patch, start + kx * c, c, zp_in)
                else:
                    copy_bytes(patch, start + kx * c, arena, x + (iy * width + ix) * c, c)


SPAN = 16  # output pixels whose sums are requantized together (even: pixels go in pairs)


@njit(cache=True, inline="always")
def requantize_span(acc, count, arena, at, biases, mults, shifts, row, rounding, step=0):  # type: ignore[no-untyped-def]
    """The sums of `count` consecutive output pixels (acc; pixel p's at acc[p * step], step the
    channel count when 0) requantized into the arena at `at`."""
    f = CONV_ROW
    b, m, oc, zp_out, lo, hi = row[f.b], row[f.m], row[f.oc], row[f.zp_out], row[f.lo], row[f.hi]
    step = step if step else oc
    requantize_rows(
        acc[: (count - 1) * step + oc],
        step,
        biases[b : b + oc],
        mults[m : m + oc],
        shifts[m : m + oc],
        rounding,
        zp_out,
        lo,
        hi,
        arena[at : at + count * oc],
    )


@njit(cache=True, inline="always")
def window_dots(
    src, start, step, run_stride, run_len, runs, pixels, weights, w, stride, oc, total, two, one
):  # type: ignore[no-untyped-def]
    """total[p * oc + o] = the window of pixel p (`runs` runs of `run_len` int8, run j from
    src[start + p * step + j * run_stride]) times weight row o (weights[w + o * stride]...), the
    blocks by the two-pixel and one-pixel cores given (ops/dot.py: block_dot_2x4 and block_dot_1x4, or
    their _vnni forms)."""
    o = 0
    while o + ROWS <= oc:
        row = w + o * stride
        if pixels == 2:
            two(src, start, step, run_stride, run_len, runs, weights, row, stride, total, o, oc)
        else:
            one(src, start, step, run_stride, run_len, runs, weights, row, stride, total, o, oc)
        o += ROWS
    for o in range(oc - oc % ROWS, oc):  # rows past the last whole block
        for p in range(pixels):
            a = np.int32(0)
            for j in range(runs):
                first = start + p * step + j * run_stride
                taps = w + o * stride + j * run_len
                for i in range(run_len):
                    a = np.int32(a + np.int32(src[first + i]) * np.int32(weights[taps + i]))
            total[p * oc + o] = a


@njit(cache=True, inline="always")
def bordered_size(oh, ow, kh, kw, sh, sw, dh, dw):  # type: ignore[no-untyped-def]
    """Height and width of the input as the windows see it, padding included."""
    return (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1


@njit(cache=True, inline="always")
def bordered_copy(arena, x, h, width, c, pt, pl, bh, bw, fill, image):  # type: ignore[no-untyped-def]
    """image[BH, BW, C] = the input [H, W, C] at (pt, pl) inside a border of `fill` (the padding)."""
    fill_bytes(image, 0, bh * bw * c, fill)
    cols = max(min(width, bw - pl), 0) * c
    for iy in range(min(h, bh - pt)):
        copy_bytes(image, ((iy + pt) * bw + pl) * c, arena, x + iy * width * c, cols)


@njit(cache=True)
def conv_gather_int8(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    conv_gather_with(row, arena, weights, biases, mults, shifts, rounding, patch, acc, block_dot_2x4, block_dot_1x4)  # fmt: skip


@njit(cache=True)
def conv_gather_vnni(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for CPUs with AVX-VNNI or AVX512-VNNI (VPDPBUSD); the same integers."""
    conv_gather_with(row, arena, weights, biases, mults, shifts, rounding, patch, acc, block_dot_2x4_vnni, block_dot_1x4_vnni)  # fmt: skip


@njit(cache=True, inline="always")
def gather_layout(stride, bh, bw, c, oc):  # type: ignore[no-untyped-def]
    """GATHER scratch: the bytes of the windows (COLUMN_PIXELS gathered windows, the bordered
    input, or the AMX variant's bordered input and TILE_PIXELS windows of whole tiles), and the
    channels padded to whole column blocks (the AVX512-VNNI and AMX variants' sums)."""
    tiles = bh * bw * c + TILE_PIXELS * 4 * column_groups(stride)
    windows = max(COLUMN_PIXELS * stride, tiles)
    return windows, -(-oc // COLUMN_LANES) * COLUMN_LANES


TILE_MIN_K = 64  # window bytes below which a tile row is mostly padding
TILE_MIN_CHANNELS = 32  # output channels below which a block pair computes one block twice
TILE_MIN_PIXELS = 4  # output pixels below which the tiles' fixed costs outweigh their speed


@njit(cache=True, inline="always")
def tiles_pay(k, oc, pixels):  # type: ignore[no-untyped-def]
    """Whether the AMX tiles beat the AVX512-VNNI column cores on a layer: enough window bytes to
    fill a tile row, enough channels for a pair of blocks and enough pixels for the tiles' rows
    (else the VNNI variant runs)."""
    return k >= TILE_MIN_K and oc >= TILE_MIN_CHANNELS and pixels >= TILE_MIN_PIXELS


@njit(cache=True)
def conv_gather_amx(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words):  # type: ignore[no-untyped-def]
    """The variant for AMX-INT8: TILE_PIXELS output pixels are the rows of two tiles, times the
    column words (TDPBSSD: signed int8 times signed int8, the sums exact), two blocks of 16 channels
    per load. A 1x1 convolution over every pixel whose windows are whole tiles reads them in place;
    otherwise each window is gathered into the patch (zero past K): KH runs of words from a copy of
    the input inside a border of its zero point where a window row is whole words, else tap by tap
    from the input. The same integers as conv_gather_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in, stride = row[f.pad_top], row[f.pad_left], row[f.zp_in], row[f.stride]
    if not tiles_pay(stride, oc, oh * ow):
        conv_gather_vnni512(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words)  # fmt: skip
        return
    groups = column_groups(stride)
    window = 4 * groups  # bytes of a gathered window: whole tiles, zero past K
    padded = -(-oc // COLUMN_LANES) * COLUMN_LANES
    at = row[f.host_table]
    pixels = oh * ow
    in_place = (kh, kw, sh, sw, pt, pl) == (1, 1, 1, 1, 0, 0) and oh == h and ow == width
    in_place = in_place and c == window
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    runs = not in_place and dw == 1 and (kw * c) % 4 == 0  # windows as runs of the bordered copy
    image = bh * bw * c if runs else 0  # the bordered copy comes first in the patch
    if runs:
        bordered_copy(arena, x, h, width, c, pt, pl, bh, bw, zp_in, patch)
    fill_bytes(patch, image, TILE_PIXELS * window, 0)
    tile_start(TILE_CONFIG)
    for first in range(0, pixels, TILE_PIXELS):
        count = min(TILE_PIXELS, pixels - first)
        if in_place and count == TILE_PIXELS:
            tile_sums(arena, x + first * c, c, column_words, at, groups, padded, acc)
        elif in_place:  # the last windows, one run: copied, as the tiles read past them
            copy_bytes(patch, 0, arena, x + first * c, count * c)
            tile_sums(patch, 0, window, column_words, at, groups, padded, acc)
        else:
            oy, ox = first // ow, first % ow  # then counted, not divided out
            for p in range(count):
                dst = image + p * window
                if runs:
                    corner = (oy * sh * bw + ox * sw) * c
                    copy_runs(patch, dst, patch, corner, kw * c // 4, kh, dh * bw * c)
                else:
                    gathered = patch[dst : dst + kh * kw * c]
                    gather_window(arena, x, h, width, c, kh, kw, dh, dw, oy * sh - pt, ox * sw - pl, zp_in, gathered)  # fmt: skip
                ox += 1
                if ox == ow:
                    oy, ox = oy + 1, 0
            tile_sums(patch, image, window, column_words, at, groups, padded, acc)
        requantize_span(acc, count, arena, y + first * oc, biases, mults, shifts, row, rounding, padded)  # fmt: skip
    tile_end()


@njit(cache=True)
def conv_gather_vnni512(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for AVX512-VNNI: output channels across the 16 lanes of one 512-bit VPDPBUSD,
    four pixels per weight load (column_dot_4), so no sums are added across lanes; the weights as
    words [K / 4, channels] come from a host-only table. The same integers as conv_gather_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in, stride = row[f.pad_top], row[f.pad_left], row[f.zp_in], row[f.stride]
    in_place = dw == 1 and (kw * c) % 4 == 0  # window rows of whole words: read in place
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    padded = -(-oc // COLUMN_LANES) * COLUMN_LANES
    at = row[f.host_table]
    groups = column_groups(stride)
    words = column_words[at : at + groups * padded]
    first_sums = column_words[at + groups * padded : at + (groups + 1) * padded]
    step, run, rows_apart = sw * c, kw * c, dh * bw * c
    if in_place:  # the bordered input, offset by 128 for the unsigned products
        bordered_copy(arena, x, h, width, c, pt, pl, bh, bw, zp_in, patch)
        flip_bytes(patch, 0, bh * bw * c)
    else:
        fill_bytes(patch, 0, COLUMN_PIXELS * stride, 0)  # the tails past K stay zero
    for oy in range(oh):
        for first in range(0, ow, SPAN):
            count = min(SPAN, ow - first)
            for ox in range(first, first + count, COLUMN_PIXELS):
                pixels = min(COLUMN_PIXELS, first + count - ox)
                at = (ox - first) * padded
                if in_place:
                    start = (oy * sh * bw + ox * sw) * c
                    if pixels == COLUMN_PIXELS:
                        column_dot_4(patch, start, step, rows_apart, run, kh, words, padded, padded, first_sums, acc, at)  # fmt: skip
                    else:
                        for p in range(pixels):
                            column_dot_single(patch, start + p * step, rows_apart, run, kh, words, padded, first_sums, acc, at + p * padded)  # fmt: skip
                else:
                    for p in range(pixels):
                        window = patch[p * stride : (p + 1) * stride]
                        iy0, ix0 = oy * sh - pt, (ox + p) * sw - pl
                        gather_window(arena, x, h, width, c, kh, kw, dh, dw, iy0, ix0, zp_in, window)  # fmt: skip
                        flip_bytes(window, 0, kh * kw * c)
                    if pixels == COLUMN_PIXELS:
                        column_dot_4(patch, 0, stride, 0, stride, 1, words, padded, padded, first_sums, acc, at)  # fmt: skip
                    else:
                        for p in range(pixels):
                            column_dot_single(patch, p * stride, 0, stride, 1, words, padded, first_sums, acc, at + p * padded)  # fmt: skip
            out = y + (oy * ow + first) * oc  # the sums' channels padded to column blocks
            requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding, padded)


@njit(cache=True, inline="always")
def outer_column_layout(c, oc, kh, kw, dw, bh, bw):  # type: ignore[no-untyped-def]
    """The AVX512-VNNI OUTER variant's layout: the channels each input pixel gets in the bordered
    copy (C, or C rounded up to 4 so that a window row is whole words), the words of a window, the
    output channels padded to column blocks, and the scratch bytes (the bordered copy; with a
    dilated width, COLUMN_PIXELS gathered windows instead)."""
    padded = -(-oc // COLUMN_LANES) * COLUMN_LANES
    if dw != 1:
        window = -(-kh * kw * c // 4) * 4
        return c, window // 4, padded, COLUMN_PIXELS * window
    spread = c if (kw * c) % 4 == 0 else -(-c // 4) * 4
    return spread, kh * kw * spread // 4, padded, bh * bw * spread


@njit(cache=True, inline="always")
def spread_copy(arena, x, h, width, c, pt, pl, bh, bw, spread, zp_in, patch):  # type: ignore[no-untyped-def]
    """patch[BH, BW, spread] = the input inside a border of its zero point, each pixel's C channels
    at the start of `spread` bytes (the rest have zero weights), offset by 128 for the unsigned
    products."""
    fill_bytes(patch, 0, bh * bw * spread, zp_in)
    end = x + h * width * c  # nothing past the input is read
    for iy in range(min(h, bh - pt)):
        for ix in range(min(width, bw - pl)):
            pixel = ((iy + pt) * bw + ix + pl) * spread
            source = x + (iy * width + ix) * c
            if spread == 4 and source + 4 <= end:  # one word (a constant-size copy, no call)
                copy_bytes(patch, pixel, arena, source, 4)
            else:
                copy_bytes(patch, pixel, arena, source, c)
    flip_bytes(patch, 0, bh * bw * spread)


@njit(cache=True)
def conv_outer_vnni512(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The AVX512-VNNI variant of OUTER mode (few input channels): the input is copied once inside a
    border of its zero point, each pixel's channels spread to whole words, so every window is KH runs
    of words read in place (a dilated width gathers each window instead); the column cores multiply
    four pixels per weight load, and zp * sum(w) per channel comes off the sums. The same integers as
    conv_outer_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in = row[f.pad_top], row[f.pad_left], row[f.zp_in]
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    spread, groups, padded, _ = outer_column_layout(c, oc, kh, kw, dw, bh, bw)
    at = row[f.host_table]
    rows = column_groups(4 * groups)
    words = column_words[at : at + rows * padded]
    first_sums = column_words[at + rows * padded : at + (rows + 1) * padded]
    in_place = dw == 1
    if in_place:
        spread_copy(arena, x, h, width, c, pt, pl, bh, bw, spread, zp_in, patch)
        window, step, rows_apart, run, runs = 0, sw * spread, dh * bw * spread, kw * spread, kh
    else:
        window = 4 * groups
        fill_bytes(patch, 0, COLUMN_PIXELS * window, 0)  # the tails past K stay zero
        step, rows_apart, run, runs = window, 0, window, 1
    for oy in range(oh):
        for first in range(0, ow, SPAN):
            count = min(SPAN, ow - first)
            for ox in range(first, first + count, COLUMN_PIXELS):
                pixels = min(COLUMN_PIXELS, first + count - ox)
                start = (oy * sh * bw + ox * sw) * spread if in_place else 0
                if not in_place:
                    for p in range(pixels):
                        gathered = patch[p * window : p * window + kh * kw * c]
                        iy0, ix0 = oy * sh - pt, (ox + p) * sw - pl
                        gather_window(arena, x, h, width, c, kh, kw, dh, dw, iy0, ix0, zp_in, gathered)  # fmt: skip
                        flip_bytes(gathered, 0, kh * kw * c)
                at = (ox - first) * padded
                if pixels == COLUMN_PIXELS:
                    column_dot_4(patch, start, step, rows_apart, run, runs, words, padded, padded, first_sums, acc, at)  # fmt: skip
                else:
                    for p in range(pixels):
                        column_dot_single(patch, start + p * step, rows_apart, run, runs, words, padded, first_sums, acc, at + p * padded)  # fmt: skip
            out = y + (oy * ow + first) * oc  # the sums' channels padded to column blocks
            requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding, padded)


@njit(cache=True)
def conv_outer_amx(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words):  # type: ignore[no-untyped-def]
    """The variant for AMX-INT8 of OUTER mode: the input copied once as conv_outer_vnni512 copies it
    (inside a border of its zero point, channels spread to whole words, offset by 128), then
    TILE_PIXELS windows at a time gathered from that copy into rows of whole tiles, KH runs each (a
    dilated width gathers from the input), times the column words (TDPBUSD: unsigned bytes times
    signed), the sums starting from -(128 + zp) * sum(w). The same integers as conv_outer_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in = row[f.pad_top], row[f.pad_left], row[f.zp_in]
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    spread, groups, padded, _ = outer_column_layout(c, oc, kh, kw, dw, bh, bw)
    if not tiles_pay(4 * groups, oc, oh * ow):
        conv_outer_vnni512(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words)  # fmt: skip
        return
    rows = column_groups(4 * groups)
    at = row[f.host_table]
    window = 4 * rows  # bytes of a gathered window: whole tiles, zero-weighted past K
    image = bh * bw * spread if dw == 1 else 0  # the bordered copy comes first in the patch
    run = kw * spread
    if dw == 1:
        spread_copy(arena, x, h, width, c, pt, pl, bh, bw, spread, zp_in, patch)
    fill_bytes(patch, image, TILE_PIXELS * window, 0)
    tile_start(TILE_CONFIG)
    pixels = oh * ow
    oy, ox = 0, 0  # the next window's output pixel (counted, not divided out)
    for first in range(0, pixels, TILE_PIXELS):
        count = min(TILE_PIXELS, pixels - first)
        for p in range(count):
            dst = image + p * window
            if dw == 1:
                corner = (oy * sh * bw + ox * sw) * spread  # KH runs of whole words
                copy_runs(patch, dst, patch, corner, run // 4, kh, dh * bw * spread)
            else:
                gathered = patch[dst : dst + kh * kw * c]
                gather_window(arena, x, h, width, c, kh, kw, dh, dw, oy * sh - pt, ox * sw - pl, zp_in, gathered)  # fmt: skip
                flip_bytes(gathered, 0, kh * kw * c)
            ox += 1
            if ox == ow:
                oy, ox = oy + 1, 0
        tile_sums(patch, image, window, column_words, at, rows, padded, acc, column_words, at + rows * padded)  # fmt: skip
        requantize_span(acc, count, arena, y + first * oc, biases, mults, shifts, row, rounding, padded)  # fmt: skip
    tile_end()


@njit(cache=True, inline="always")
def pair_layout(mode, c, kh, kw, dw, bh, bw, stride):  # type: ignore[no-untyped-def]
    """The AVX2 variant's layout (both modes): the int16 elements of a window run (KW * C, rounded
    up to even: the element past an odd run has weight 0), the runs per window (KH in the bordered
    copy; one where a dilated width gathers each window), the int16 elements of scratch (the
    bordered copy and one element of slack, or a span of TILE_PIXELS windows gathered) and the column words'
    length (where the pair words follow them in the column_words table)."""
    k = kh * kw * c
    vnni_k = stride if mode == GATHER else 4 * outer_column_layout(c, 0, kh, kw, dw, bh, bw)[1]
    if dw == 1:
        run = kw * c + (kw * c) % 2
        return run, kh, bh * bw * c + 1, vnni_k
    return k + k % 2, 1, TILE_PIXELS * (k + k % 2), vnni_k


@njit(cache=True, inline="always")
def bordered_wide(arena, x, h, width, c, pt, pl, bh, bw, fill, image):  # type: ignore[no-untyped-def]
    """image[BH, BW, C] (int16) = the input [H, W, C] at (pt, pl) inside a border of `fill`."""
    if pt or pl or bh > h or bw > width:
        image[: bh * bw * c] = fill
    cols = max(min(width, bw - pl), 0) * c
    if cols == width * c == bw * c and not pt:  # whole rows, one after another: one run
        widen_bytes(image, 0, arena, x, min(h, bh) * cols)
        return
    for iy in range(min(h, bh - pt)):
        widen_bytes(image, ((iy + pt) * bw + pl) * c, arena, x + iy * width * c, cols)


def pair_scratch(
    mode: int, c: int, kh: int, kw: int, dw: int, bh: int, bw: int, stride: int
) -> int:
    """Patch bytes of the AVX2 variant: its int16 elements, then one int8 window gathered."""
    return 2 * pair_layout(mode, c, kh, kw, dw, bh, bw, stride)[2] + kh * kw * c


def _pair_rows(taps: np.ndarray, dw: int) -> np.ndarray:
    """Weights [O, KH, KW * C] as the AVX2 variant's windows: each row of taps padded to even where
    the windows are read in place from the bordered copy (dw 1), else one run (gathered)."""
    oc, kh, run = taps.shape
    if dw != 1:
        return taps.reshape(oc, -1)
    padded = np.zeros((oc, kh, run + run % 2), np.int64)
    padded[..., :run] = taps
    return padded.reshape(oc, -1)


@njit(cache=True)
def conv_pairs_avx2(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words):  # type: ignore[no-untyped-def]
    """The variant for AVX2 (GATHER and OUTER modes): the input widened to int16 once, inside a
    border of its zero point, so every window is KH runs read in place (a dilated width gathers
    each window instead); output channels across the 8 lanes of 256-bit PMADDWD, PAIR_PIXELS pixels
    per weight load (pair_dots), no sums added across lanes. The weights are int16 pairs from the
    column_words table, the sums starting from -zp * sum(w) in OUTER mode (GATHER's bias carries
    it). A 1x1 convolution with unit steps runs its pixels as one row. The same integers as
    conv_gather_int8 and conv_outer_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in = row[f.pad_top], row[f.pad_left], row[f.zp_in]
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    run, runs, elements, vnni_k = pair_layout(row[f.mode], c, kh, kw, dw, bh, bw, row[f.stride])
    padded, size = pair_sizes(runs * run, oc)
    at = row[f.host_table] + column_size(vnni_k, oc)
    words = column_words[at : at + size]
    first_sums = column_words[at + size : at + size + padded]
    image = patch[: 2 * elements].view(np.int16)
    k = kh * kw * c
    gathered = patch[2 * elements : 2 * elements + k]  # a dilated window, before widening
    if dw == 1:
        bordered_wide(arena, x, h, width, c, pt, pl, bh, bw, zp_in, image)
        image[elements - 1] = 0  # the slack an odd last run reads (times a zero weight)
    else:
        for i in range(elements):
            image[i] = 0  # the tails past K stay zero
    rows, cols = oh, ow
    if (kh, kw, sh, sw, pt, pl) == (1, 1, 1, 1, 0, 0) and ow == width:
        rows, cols = 1, oh * ow  # consecutive windows: one row of pixels
    step, rows_apart = sw * c, dh * bw * c
    for oy in range(rows):
        for first in range(0, cols, TILE_PIXELS):  # spans of pixels in a row (the acc holds them)
            count = min(TILE_PIXELS, cols - first)
            if dw == 1:
                start = (oy * sh * bw + first * sw) * c
                pair_dots(image, start, step, rows_apart, run, runs, count, words, padded, first_sums, acc, 0)  # fmt: skip
            else:
                for p in range(count):
                    iy0, ix0 = oy * sh - pt, (first + p) * sw - pl
                    gather_window(arena, x, h, width, c, kh, kw, dh, dw, iy0, ix0, zp_in, gathered)  # fmt: skip
                    widen_bytes(image, p * run, gathered, 0, k)
                pair_dots(image, 0, run, 0, run, 1, count, words, padded, first_sums, acc, 0)
            out = y + (oy * cols + first) * oc  # the sums' channels padded to pair blocks
            requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding, padded)


@njit(cache=True, inline="always")
def conv_gather_with(row, arena, weights, biases, mults, shifts, rounding, patch, acc, two, one):  # type: ignore[no-untyped-def]
    """GATHER mode, two output pixels at a time. When a row of window taps (KW * C) is whole vector
    steps, the input is copied once inside a border of its zero point and every window is read in
    place from that copy, one run per window row. Otherwise each window is gathered into the patch."""
    f = CONV_ROW
    x, y, w, h, width, c = row[f.x], row[f.y], row[f.w], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in, stride = row[f.pad_top], row[f.pad_left], row[f.zp_in], row[f.stride]
    in_place = dw == 1 and (kw * c) % LANES == 0
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    # windows in the bordered copy: pixels sw * c apart, KH runs of KW * C bytes, dh rows apart
    step, run, rows_apart = sw * c, kw * c, dh * bw * c
    if in_place:
        bordered_copy(arena, x, h, width, c, pt, pl, bh, bw, zp_in, patch)
    else:
        fill_bytes(patch, 0, 2 * stride, 0)  # the tails past K stay zero (their weights are too)
    for oy in range(oh):
        ox = 0
        while ox < ow:  # spans of up to SPAN pixels: their sums, then one requantization
            first = ox
            while ox < ow and ox - first < SPAN:
                pixels = 2 if ox + 1 < ow else 1
                sums = acc[(ox - first) * oc : (ox - first + pixels) * oc]
                if in_place:
                    start = (oy * sh * bw + ox * sw) * c
                    window_dots(patch, start, step, rows_apart, run, kh, pixels, weights, w, stride, oc, sums, two, one)  # fmt: skip
                else:
                    for p in range(pixels):
                        window = patch[p * stride : (p + 1) * stride]
                        iy0, ix0 = oy * sh - pt, (ox + p) * sw - pl
                        gather_window(
                            arena, x, h, width, c, kh, kw, dh, dw, iy0, ix0, zp_in, window
                        )
                    window_dots(patch, 0, stride, 0, stride, 1, pixels, weights, w, stride, oc, sums, two, one)  # fmt: skip
                ox += pixels
            at = y + (oy * ow + first) * oc
            requantize_span(acc, ox - first, arena, at, biases, mults, shifts, row, rounding)


@njit(cache=True, inline="always")
def outer_scratch(k, oc, bh, bw, c):  # type: ignore[no-untyped-def]
    """Patch bytes of OUTER mode: int16 weight pairs, int32 tap words and offsets, the int16 input."""
    pairs = (k + 1) // 2
    return 4 * pairs * oc + 4 * pairs + 8 * pairs + 2 * bh * bw * c


@njit(cache=True)
def conv_outer_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words):  # type: ignore[no-untyped-def]
    """OUTER mode (few input channels). Once per call: the weights interleaved by tap pair as int16,
    and the input as int16 x - zp inside a border of zeros (the padding), so every window reads the
    same tap offsets without bounds checks. Per pixel: the taps packed in pairs, OUTER_LANES output
    channels per vector step (pair_outer)."""
    f = CONV_ROW
    x, y, w, h, width, c = row[f.x], row[f.y], row[f.w], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in = row[f.pad_top], row[f.pad_left], row[f.zp_in]
    k = kh * kw * c
    pairs = (k + 1) // 2
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    at = 4 * pairs * oc
    table = patch[:at].view(np.int16)
    words = patch[at : at + 4 * pairs].view(np.int32)
    offsets = patch[at + 4 * pairs : at + 12 * pairs].view(np.int32)
    image = patch[at + 12 * pairs : at + 12 * pairs + 2 * bh * bw * c].view(np.int16)
    for j in range(pairs):  # weights [K, O] -> [K / 2, O, 2]
        first, pair = w + 2 * j * oc, table[2 * j * oc : 2 * (j + 1) * oc]
        for o in range(oc):
            pair[2 * o] = weights[first + o]
        if 2 * j + 1 < k:
            for o in range(oc):
                pair[2 * o + 1] = weights[first + oc + o]
        else:
            for o in range(oc):
                pair[2 * o + 1] = 0
    for py in range(bh):
        for px in range(bw):
            iy, ix = py - pt, px - pl
            inside = iy >= 0 and iy < h and ix >= 0 and ix < width
            for i in range(c):
                v = np.int32(arena[x + (iy * width + ix) * c + i]) - zp_in if inside else 0
                image[(py * bw + px) * c + i] = v
    for t in range(2 * pairs):  # an odd last tap's partner reads any valid tap: its weights are 0
        ky, kx, i = t // (kw * c), t // c % kw, t % c
        offsets[t] = (ky * dh * bw + kx * dw) * c + i if t < k else 0
    body = oc - oc % OUTER_LANES
    for oy in range(oh):
        for first in range(0, ow, SPAN):  # spans of up to SPAN pixels, then one requantization
            end = min(first + SPAN, ow)
            for ox in range(first, end):
                corner = (oy * sh * bw + ox * sw) * c
                for j in range(pairs):
                    low = np.int32(image[corner + offsets[2 * j]]) & 0xFFFF
                    words[j] = low | (np.int32(image[corner + offsets[2 * j + 1]]) << 16)
                sums = acc[(ox - first) * oc : (ox - first + 1) * oc]
                pair_outer(words, pairs, table, oc, sums)
                for o in range(body, oc):  # channels past the last whole vector step
                    a = np.int32(0)
                    for t in range(k):
                        tap = np.int32(image[corner + offsets[t]])
                        a += tap * np.int32(weights[w + t * oc + o])
                    sums[o] = a
            at = y + (oy * ow + first) * oc
            requantize_span(acc, end - first, arena, at, biases, mults, shifts, row, rounding)


def _pairs(values: Sequence[int], one_d: bool) -> tuple[int, int]:
    return (1, values[0]) if one_d else (values[0], values[1])


DEPTHWISE_LANES = 512  # sums per block of pair_sums: a span of output pixels times all channels
DEPTHWISE_SUMS = 4096  # sums requantized together: whole output rows, where one row fits
LONE, BY_ROW, BY_COLUMN = 0, 1, 2  # how the depthwise kernel pairs its taps


@njit(cache=True, inline="always")
def depthwise_layout(oc, ow, kh, kw, bh, bw, sw, dh, dw):  # type: ignore[no-untyped-def]
    """Depthwise layout: pixels per block; the phase-split image's columns per phase; output rows
    per requantization (0: a row is more than DEPTHWISE_SUMS sums, so each block alone); how taps
    pair (a tap with the one below it, or beside it when the column step keeps to one phase, else
    alone), the image elements from a tap to its partner, and the tap pairs; then the scratch
    bytes of the int16 image (zeros past it for the partners' reads), of the image in pairs (two
    int16 per element: it and its partner) and of the pairs' offsets."""
    span = min(max(DEPTHWISE_LANES // oc, 1), ow)
    columns = -(-bw // sw)
    phase_size = columns * oc
    rows = DEPTHWISE_SUMS // (ow * oc)
    if kh > 1:
        axis, partner, pair_taps = BY_ROW, dh * sw * phase_size, kw * -(-kh // 2)
    elif kw > 1 and dw % sw == 0:
        axis, partner, pair_taps = BY_COLUMN, dw // sw * oc, -(-kw // 2)
    else:
        axis, partner, pair_taps = LONE, 0, kh * kw
    elements = bh * sw * phase_size
    image_bytes = 2 * (elements + partner)
    return span, columns, rows, axis, partner, pair_taps, image_bytes, 4 * elements, 4 * pair_taps


@njit(cache=True, inline="always")
def pair_tap(q, kh, kw, axis):  # type: ignore[no-untyped-def]
    """The first tap (index ky * KW + kx) of tap pair q, and whether it has a partner (the tap
    below it for BY_ROW, beside it for BY_COLUMN)."""
    if axis == BY_ROW:
        ky = q // kw * 2
        return ky * kw + q % kw, ky + 1 < kh
    if axis == BY_COLUMN:
        return 2 * q, 2 * q + 1 < kw
    return q, False


@njit(cache=True, inline="always")
def depthwise_image(arena, x, h, width, c, pt, pl, bh, bw, sw, oc, mode, zp_in, phase_size, image):  # type: ignore[no-untyped-def]
    """image = int16 x - zp inside a border of zeros (the padding), channel o holding input channel
    o // M, columns split by phase (column % stride)."""
    cols = min(width, bw - pl)
    for iy in range(min(h, bh - pt)):
        if sw == 1 and mode == 1:  # the input row is one contiguous run of the image
            src = arena[x + iy * width * c : x + (iy * width + cols) * c]
            start = (iy + pt) * phase_size + pl * oc
            dst = image[start : start + cols * oc]
            for i in range(cols * oc):
                dst[i] = np.int16(src[i]) - zp_in
            continue
        for ix in range(cols):
            px = ix + pl
            start = ((iy + pt) * sw + px % sw) * phase_size + (px // sw) * oc
            pixel = arena[x + (iy * width + ix) * c : x + (iy * width + ix + 1) * c]
            dst = image[start : start + oc]
            if mode == 1:
                for o in range(oc):
                    dst[o] = np.int16(pixel[o]) - zp_in
            else:
                for o in range(oc):
                    dst[o] = np.int16(pixel[o // mode]) - zp_in


DEPTHWISE_SPAN = 64  # output pixels per tap_rows call of the AVX2 depthwise variant


@njit(cache=True, inline="always")
def tap_rows_layout(oc, kh, kw, bh, bw):  # type: ignore[no-untyped-def]
    """The AVX2 depthwise variant's layout: channels padded to PAIR_LANES, and its scratch bytes:
    the bordered int8 image (and PAIR_LANES bytes past it, which the last pixel's lanes past the
    channels read, times zero weights), the taps' offsets and the starting sums."""
    padded = -(-oc // PAIR_LANES) * PAIR_LANES
    image = -(-(bh * bw * oc + PAIR_LANES) // 4) * 4
    return padded, image + 4 * kh * kw + 4 * padded


@njit(cache=True)
def conv_depthwise_avx2(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, depthwise_tiles
):  # type: ignore[no-untyped-def]
    """The variant for AVX2: the input copied once inside a border of its zero point (int8, each
    output channel's input channel in its place), then every tap of a span of output pixels read
    straight from that copy, PAIR_LANES channels at a time (tap_rows: int8 times int16 weights into
    int32, PMADDWD on x86), the sums starting from -zp * sum(w). No int16 image and no pairing:
    those cost more than they save on 256-bit vectors. The same integers as conv_depthwise_int8."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in, mode = row[f.pad_top], row[f.pad_left], row[f.zp_in], row[f.mode]
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    span, _, _, _, _, pair_taps, _, _, _ = depthwise_layout(oc, ow, kh, kw, bh, bw, sw, dh, dw)
    padded, scratch = tap_rows_layout(oc, kh, kw, bh, bw)
    taps = kh * kw
    at = row[f.host_table] + 2 * pair_taps * span * oc  # past the generic kernel's tiles
    tap_weights = depthwise_tiles[at : at + taps * padded]
    halves = depthwise_tiles[at + taps * padded : at + (taps + 2) * padded]
    image_end = scratch - 4 * taps - 4 * padded
    offsets = patch[image_end : image_end + 4 * taps].view(np.int32)
    first = patch[image_end + 4 * taps : scratch].view(np.int32)
    for o in range(padded):
        first[o] = (np.int32(halves[2 * o + 1]) << 16) | (np.int32(halves[2 * o]) & 0xFFFF)
    for t in range(taps):
        offsets[t] = ((t // kw) * dh * bw + (t % kw) * dw) * oc
    if mode == 1:
        bordered_copy(arena, x, h, width, c, pt, pl, bh, bw, zp_in, patch)
    else:  # a depth multiplier: output channel o reads input channel o // M
        fill_bytes(patch, 0, bh * bw * oc, zp_in)
        for iy in range(min(h, bh - pt)):
            for ix in range(min(width, bw - pl)):
                dst, src = ((iy + pt) * bw + ix + pl) * oc, x + (iy * width + ix) * c
                for o in range(oc):
                    patch[dst + o] = arena[src + o // mode]
    fill_bytes(patch, bh * bw * oc, PAIR_LANES, 0)
    together = max(DEPTHWISE_SPAN // ow, 1)  # short rows: several per requantization
    for oy0 in range(0, oh, together):
        oy1 = min(oy0 + together, oh)
        for oy in range(oy0, oy1):
            row_base = oy * sh * bw * oc
            for start in range(0, ow, DEPTHWISE_SPAN):
                count = min(DEPTHWISE_SPAN, ow - start)
                base = row_base + start * sw * oc
                # a span requantized at once starts the accumulators; rows requantized together
                # sit side by side (at most DEPTHWISE_SPAN pixels)
                sums = acc[(oy - oy0) * ow * padded :] if together > 1 else acc
                tap_rows(patch, base, sw * oc, offsets, taps, tap_weights, padded, first, sums, count)  # fmt: skip
                if together == 1:
                    out = y + (oy * ow + start) * oc
                    requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding, padded)  # fmt: skip
        if together > 1:
            out, count = y + oy0 * ow * oc, (oy1 - oy0) * ow
            requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding, padded)


@njit(cache=True)
def conv_depthwise_int8(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, depthwise_tiles
):  # type: ignore[no-untyped-def]
    """Depthwise (mode M > 0, the depth multiplier): output channel o reads input channel o // M.

    Once per call, the input becomes an int16 image (depthwise_image: one tap of a run of output
    pixels reads one contiguous run of it), and then an image in pairs: each element beside the
    element its tap's partner reads (the tap below, or beside), so one PMADDWD step multiplies two
    taps of 16 lanes. Each tap pair's weights come side by side, tiled over a block of pixels (a
    host-only table); pair_sums adds every tap pair of a block lane by lane. Whole output rows are
    requantized together, so each channel's parameters are prepared once per several rows."""
    f = CONV_ROW
    x, y, h, width, c = row[f.x], row[f.y], row[f.h], row[f.width], row[f.c]
    oh, ow, oc, kh, kw = row[f.oh], row[f.ow], row[f.oc], row[f.kh], row[f.kw]
    sh, sw, dh, dw = row[f.sh], row[f.sw], row[f.dh], row[f.dw]
    pt, pl, zp_in, mode = row[f.pad_top], row[f.pad_left], row[f.zp_in], row[f.mode]
    bh, bw = bordered_size(oh, ow, kh, kw, sh, sw, dh, dw)
    span, columns, rows, axis, partner, pair_taps, image_bytes, pairs_bytes, offset_bytes = (
        depthwise_layout(oc, ow, kh, kw, bh, bw, sw, dh, dw)
    )
    image = patch[:image_bytes].view(np.int16)
    pairs = patch[image_bytes : image_bytes + pairs_bytes].view(np.int16)
    offsets = patch[image_bytes + pairs_bytes : image_bytes + pairs_bytes + offset_bytes].view(np.int32)  # fmt: skip
    lanes, phase_size = span * oc, columns * oc
    at = row[f.host_table]
    tiled = depthwise_tiles[at : at + 2 * pair_taps * lanes]
    for q in range(pair_taps):
        t = pair_tap(q, kh, kw, axis)[0]
        px = (t % kw) * dw  # the tap's padded column for the first output pixel
        offsets[q] = ((t // kw) * dh * sw + px % sw) * phase_size + (px // sw) * oc
    fill_bytes(patch, 0, image_bytes, 0)
    depthwise_image(arena, x, h, width, c, pt, pl, bh, bw, sw, oc, mode, zp_in, phase_size, image)
    elements = pairs_bytes // 4
    body = elements - elements % TAP_LANES
    interleave_partners(pairs, image, partner, body)
    for j in range(body, elements):
        pairs[2 * j] = image[j]
        pairs[2 * j + 1] = image[j + partner]
    together = max(rows, 1)  # output rows per requantization
    for oy0 in range(0, oh, together):
        oy1 = min(oy0 + together, oh)
        for oy in range(oy0, oy1):
            row_base = oy * sh * sw * phase_size
            for first in range(0, ow, span):
                count = min(span, ow - first)
                n = count * oc
                base = row_base + first * oc
                sums = acc[((oy - oy0) * ow + first) * oc :] if rows else acc
                whole = n - n % TAP_LANES
                pair_sums(pairs, base, offsets, pair_taps, tiled, lanes, sums, whole)
                for i in range(whole, n):  # lanes past the last whole step
                    total = np.int32(0)
                    for q in range(pair_taps):
                        p2, t2 = 2 * (base + offsets[q] + i), 2 * (q * lanes + i)
                        total += np.int32(pairs[p2]) * np.int32(tiled[t2])
                        total += np.int32(pairs[p2 + 1]) * np.int32(tiled[t2 + 1])
                    sums[i] = total
                if not rows:
                    out = y + (oy * ow + first) * oc
                    requantize_span(acc, count, arena, out, biases, mults, shifts, row, rounding)
        if rows:
            out = y + oy0 * ow * oc
            requantize_span(acc, (oy1 - oy0) * ow, arena, out, biases, mults, shifts, row, rounding)  # fmt: skip


CONV_SPEC = OpSpec(
    "Conv",
    infer_conv,
    reference_conv,
    read_conv,
    onnx_ops=("Conv",),
    attrs={"group": 1, "channels_last": False, **CLIP_ATTRS},
    macs=conv_macs,
    layout=Layout.SPATIAL,
    permute_attrs=set_channels_last,
    fuses_activation=True,
    examples=examples,
    int8=Int8Spec(weights=True, prepare=prepare_conv_int8, prepare16=prepare_conv16),
)
register(CONV_SPEC)
# one kernel per mode, so a model compiles only the modes it uses; the C conv switches on the mode
VNNI = {
    "amx-int8": conv_gather_amx,
    "avx512vnni": conv_gather_vnni512,
    "avxvnni": conv_gather_vnni,
    "avx2": conv_pairs_avx2,
}
register_table(
    "depthwise_tiles",
    np.int16,
    "depthwise weights [tap pairs, pixels of a block, channels, 2]: each pair tiled over a block; "
    "then [taps, channels] and starting sums as int16 halves (the AVX2 variant) (host)",
    host_only=True,
)
CONV_GATHER, CONV_OUTER, CONV_DEPTHWISE = (
    register_kernel(
        name,
        fn,
        CONV_ROW,
        c=("edgenn_conv", "conv.c"),
        c_only=("scratch",),
        tables=tables,
        variants=variants,
    )
    for name, fn, tables, variants in (
        ("conv_gather", conv_gather_int8, ("column_words",), VNNI),
        (
            "conv_outer",
            conv_outer_int8,
            ("column_words",),
            {
                "amx-int8": conv_outer_amx,
                "avx512vnni": conv_outer_vnni512,
                "avx2": conv_pairs_avx2,
            },
        ),
        (
            "conv_depthwise",
            conv_depthwise_int8,
            ("depthwise_tiles",),
            {"avx2": conv_depthwise_avx2},
        ),
    )
)


# ---- TFLite: how the writer lowers these ops ----


def lower_conv(lw: Lowering, node: Node) -> None:
    from edgenn.codegen.tflite import (
        explicit_pad,
        fused_activation,
        padding_mode,
        spatial_4d,
        spatial_output,
    )

    a = node.attrs
    x, was_1d = spatial_4d(lw, node.inputs[0])
    w = lw.graph.const(node.inputs[1])
    assert w is not None
    w4 = w if w.ndim == 4 else w[:, None]  # [O, KH, KW, C/group]
    n, h, width, c = lw.out.tensors[x].shape
    o, kh, kw, _ = w4.shape
    strides = (1, *a["strides"]) if was_1d else tuple(a["strides"])
    dilations = (1, *a["dilations"]) if was_1d else tuple(a["dilations"])
    pads = (0, a["pads"][0], 0, a["pads"][1]) if was_1d else tuple(a["pads"])
    y, finish = spatial_output(lw, node.outputs[0], was_1d)
    out_hw = lw.out.tensors[y].shape[1:3]
    mode = padding_mode((h, width), out_hw, (kh, kw), strides, dilations, pads)
    if mode is None:
        x_qp = lw.out.tensors[x].qparams
        assert x_qp is not None
        x, mode = explicit_pad(lw, x, pads, x_qp.zero_point[0]), "VALID"
    w_qp = lw.graph.type_of(node.inputs[1]).qparams
    bias = lw.tensor(node.inputs[2])
    options = {
        "padding": mode,
        "stride_h": strides[0],
        "stride_w": strides[1],
        "dilation_h_factor": dilations[0],
        "dilation_w_factor": dilations[1],
        "fused_activation_function": fused_activation(node),
    }
    if a["group"] == 1:
        filt = lw.new(f"{node.name}_filter", w4.shape, DType.INT8, w_qp, w4)
        lw.emit("CONV_2D", [x, filt, bias], [y], ("Conv2DOptions", options))
    else:
        assert w_qp is not None
        dw = np.ascontiguousarray(np.transpose(w4, (3, 1, 2, 0)))  # [1, KH, KW, O]
        filt = lw.new(
            f"{node.name}_filter", dw.shape, DType.INT8, QParams(w_qp.scale, w_qp.zero_point, 3), dw
        )
        options["depth_multiplier"] = o // c
        lw.emit("DEPTHWISE_CONV_2D", [x, filt, bias], [y], ("DepthwiseConv2DOptions", options))
    finish()


register_tflite("Conv", lower=lower_conv, versions={"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3})


# ---- TFLite: how the reader takes these builtins ----


def read_conv(r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any) -> None:
    import tflite

    from edgenn.frontend.tflite import check_positive, fused_clip, same_pads, zero_bias

    depthwise = (
        r.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()
        == tflite.BuiltinOperator.DEPTHWISE_CONV_2D
    )
    o = r.options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else ""
    weights = r.values[w]
    if weights.data is None:
        raise UnsupportedOpError(
            f"{r.name}: {name} has run-time weights; edgenn needs constant filters"
        )
    if o is None:
        raise ModelFormatError(f"{r.name}: {name} has no options")
    strides, dilations = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    check_positive(r, name, strides=strides, dilations=dilations)
    _, kh, kw, _ = weights.type.shape
    pads = same_pads(
        r, x, outs[0], (kh, kw), strides, dilations, o.Padding() == tflite.Padding.SAME
    )
    group = 1
    if depthwise:  # [1, KH, KW, O] -> edgenn's [O, KH, KW, 1], channel axis 3 -> 0
        data = np.ascontiguousarray(np.transpose(weights.data, (3, 1, 2, 0)))
        qp = weights.type.qparams
        r.values[w] = Value(
            w,
            TensorType(
                DType.INT8,
                data.shape,
                qp and QParams(qp.scale, qp.zero_point, 0 if qp.axis is not None else None),
            ),
            data,
        )
        group = r.shape(x)[-1]
    b = b or zero_bias(r, name, x, w)
    r.emit(
        name,
        "Conv",
        [x, w, b],
        outs,
        strides=strides,
        dilations=dilations,
        pads=pads,
        group=group,
        channels_last=True,
        **fused_clip(o),
    )


register_tflite_reader("CONV_2D", "DEPTHWISE_CONV_2D", read=read_conv)
