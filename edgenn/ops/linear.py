"""Matrix products: ONNX Gemm and MatMul as imported, and FullyConnected, the fused form the backends take.

FullyConnected: Y[N, O] = clip(X[N, K] @ W[O, K]^T + B[O]) — W in TFLite's [out, in] layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from edgenn.errors import ShapeError
from edgenn.ir import Attrs, DType, Graph, Node, TensorType, Value
from edgenn.ops import (
    CLIP_ATTRS,
    ImportContext,
    Imported,
    Int8Spec,
    OnnxNode,
    OpExample,
    OpSpec,
    broadcast_shape,
    checked_int32,
    clip_range,
    passthrough_import,
    register,
    register_kernel,
    register_tflite,
    register_tflite_reader,
    row_layout,
)
from edgenn.ops.dot import (
    COLUMN_LANES,
    COLUMN_PIXELS,
    LANES,
    PAIR_LANES,
    PAIR_PIXELS,
    block_dot_1x4,
    block_dot_1x4_vnni,
    block_dot_1x8,
    block_dot_1x8_vnni,
    column_dot_4,
    column_dot_single,
    column_groups,
    column_size,
    column_words,
    copy_bytes,
    dot_rows,
    fill_bytes,
    flip_bytes,
    pair_dots,
    pair_sizes,
    pair_words,
    requantize_rows,
    widen_bytes,
)
from edgenn.ops.tiles import TILE_CONFIG, TILE_PIXELS, tile_end, tile_start, tile_sums
from edgenn.ops.wide import prepare_fc16
from edgenn.quant.fixed_point import (
    activation_bounds,
)

if TYPE_CHECKING:
    from edgenn.codegen.tflite import Lowering
    from edgenn.frontend.tflite import _Reader as TFLiteReader
    from edgenn.runtime.program import ProgramBuilder

INPUT, WEIGHTS, BIAS = 0, 1, 2


def _operand(t: TensorType | None) -> TensorType:
    assert t is not None
    return t


def read_gemm(node: OnnxNode, ctx: ImportContext) -> Imported:
    attrs = {
        "alpha": float(node.attrs.get("alpha", 1.0)),
        "beta": float(node.attrs.get("beta", 1.0)),
        "transA": int(node.attrs.get("transA", 0)),
        "transB": int(node.attrs.get("transB", 0)),
    }
    return Imported("Gemm", (node.inputs[0], node.inputs[1], node.input(2)), attrs)


def infer_gemm(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    a, b = _operand(inputs[0]), _operand(inputs[1])
    if a.rank != 2 or b.rank != 2:
        raise ShapeError(f"Gemm takes 2-D operands, got {a.shape} and {b.shape}")
    m, k = a.shape[::-1] if attrs["transA"] else a.shape
    kb, n = b.shape[::-1] if attrs["transB"] else b.shape
    if k != kb:
        raise ShapeError(f"inner dimensions differ: {a.shape} x {b.shape}")
    c = inputs[2] if len(inputs) > 2 else None
    if c is not None:
        if broadcast_shape(c.shape, (m, n)) != (m, n):
            raise ShapeError(f"Gemm C {c.shape} does not broadcast to ({m}, {n})")
    return [a.with_shape((m, n))]


def reference_gemm(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    a, b, c = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
    assert a is not None and b is not None
    a = a.T if attrs["transA"] else a
    b = b.T if attrs["transB"] else b
    y = attrs["alpha"] * (a @ b)
    if c is not None:
        y = y + attrs["beta"] * c
    return [y.astype(np.float32, copy=False)]


def gemm_macs(
    inputs: Sequence[TensorType | None], outputs: Sequence[TensorType], attrs: Attrs
) -> int:
    a = _operand(inputs[0])
    return outputs[0].size * (a.shape[0] if attrs["transA"] else a.shape[1])


def infer_matmul(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    a, b = _operand(inputs[0]), _operand(inputs[1])
    try:
        shape = np.matmul(np.zeros(a.shape, np.float32), np.zeros(b.shape, np.float32)).shape
    except ValueError:
        raise ShapeError(f"MatMul shapes {a.shape} and {b.shape} do not match") from None
    return [a.with_shape(shape)]


def reference_matmul(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    return [np.matmul(inputs[0], inputs[1])]


def matmul_macs(
    inputs: Sequence[TensorType | None], outputs: Sequence[TensorType], attrs: Attrs
) -> int:
    return outputs[0].size * _operand(inputs[0]).shape[-1]


def infer_fc(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, w = _operand(inputs[INPUT]), _operand(inputs[WEIGHTS])
    if x.rank != 2 or w.rank != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"FullyConnected needs X [N, K] and W [O, K], got {x.shape} and {w.shape}")
    b = inputs[BIAS] if len(inputs) > BIAS else None
    if b is not None and b.shape != (w.shape[0],):
        raise ShapeError(f"bias shape {b.shape} should be ({w.shape[0]},)")
    return [x.with_shape((x.shape[0], w.shape[0]))]


def reference_fc(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x, w, b = inputs[INPUT], inputs[WEIGHTS], inputs[BIAS] if len(inputs) > BIAS else None
    assert x is not None and w is not None
    y = x @ w.T
    if b is not None:
        y = y + b
    return [clip_range(y, attrs)]


def fc_macs(
    inputs: Sequence[TensorType | None], outputs: Sequence[TensorType], attrs: Attrs
) -> int:
    return outputs[0].size * _operand(inputs[WEIGHTS]).shape[1]


def gemm_examples() -> list[OpExample]:
    rng = np.random.default_rng(1)
    return [
        OpExample(
            "gemm_transB",
            "Gemm",
            ((3, 5),),
            {"transB": 1},
            {
                1: rng.standard_normal((4, 5)).astype(np.float32),
                2: rng.standard_normal(4).astype(np.float32),
            },
        ),
        OpExample(
            "gemm_alpha_beta_transA",
            "Gemm",
            ((5, 2),),
            {"transA": 1, "alpha": 0.5, "beta": 2.0},
            {
                1: rng.standard_normal((5, 3)).astype(np.float32),
                2: rng.standard_normal((1, 3)).astype(np.float32),
            },
        ),
        OpExample("gemm_two_inputs", "Gemm", ((2, 3), (3, 4)), {}),
    ]


def matmul_examples() -> list[OpExample]:
    rng = np.random.default_rng(2)
    return [
        OpExample(
            "matmul_const",
            "MatMul",
            ((4, 6),),
            {},
            {1: rng.standard_normal((6, 3)).astype(np.float32)},
        ),
        OpExample("matmul_batched", "MatMul", ((2, 3, 4), (2, 4, 5)), {}),
    ]


# ---- int8: TFLite FULLY_CONNECTED, per-channel ----


def prepare_fc_int8(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    w = b.const(w_name).astype(np.int64)
    s_in, zp_in = b.scale_zp(x)
    s_out, zp_out = b.scale_zp(y)
    attrs = FC_SPEC.attrs_of(node)
    lo, hi = activation_bounds(attrs["clip_min"], attrs["clip_max"], s_out, zp_out)
    # sum (x - zp) * w + bias == sum x * w + (bias - zp * sum w): exact in integers, and the loop
    # then multiplies raw int8 values only
    b.check_dot(w, b.const(bias), x)
    folded = checked_int32(b.const(bias).astype(np.int64) - zp_in * w.sum(axis=1), node)
    n, k = b.shape(x)
    # the sums of COLUMN_PIXELS samples, padded to column blocks; a sample padded to whole words
    padded = -(-w.shape[0] // COLUMN_LANES) * COLUMN_LANES
    # (AMX: TILE_PIXELS samples, each of whole tiles)
    b.scratch(
        patch=max(
            COLUMN_PIXELS * -(-k // 4) * 4,
            TILE_PIXELS * 4 * column_groups(k),
            2 * TILE_PIXELS * (k + k % 2),  # (AVX2) a block of samples widened to int16
        ),
        accumulators=TILE_PIXELS * padded,
    )
    return FULLY_CONNECTED.row(
        x=b.arena(x),
        y=b.arena(y),
        w=b.weights(b.const(w_name)),
        b=b.biases(folded),
        m=b.channel_multipliers(node, w_name, w.shape[0], s_in, s_out),
        n=n,
        k=k,
        outs=w.shape[0],
        zp_out=zp_out,
        lo=lo,
        hi=hi,
        words=b.table(  # the column words, then the AVX2 variant's pair words
            "column_words", np.concatenate([column_words(b.const(w_name)), pair_words(w)])
        ),
    )


@njit(cache=True)
def fully_connected_int8(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    fully_connected_with(
        row, arena, weights, biases, mults, shifts, rounding, acc, block_dot_1x8, block_dot_1x4
    )


@njit(cache=True)
def fully_connected_vnni(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for CPUs with AVX-VNNI or AVX512-VNNI (VPDPBUSD); the same integers."""
    fully_connected_with(row, arena, weights, biases, mults, shifts, rounding, acc, block_dot_1x8_vnni, block_dot_1x4_vnni)  # fmt: skip


@njit(cache=True, inline="always")
def requantize_samples(acc, step, count, first, row, arena, biases, mults, shifts, rounding):  # type: ignore[no-untyped-def]
    """The sums of `count` samples from sample `first` on (sample p's at acc[p * step]) requantized
    into the layer's output."""
    f = FULLY_CONNECTED_ROW
    y, b, m, outs = row[f.y], row[f.b], row[f.m], row[f.outs]
    requantize_rows(
        acc[: (count - 1) * step + outs],
        step,
        biases[b : b + outs],
        mults[m : m + outs],
        shifts[m : m + outs],
        rounding,
        row[f.zp_out],
        row[f.lo],
        row[f.hi],
        arena[y + first * outs : y + (first + count) * outs],
    )


@njit(cache=True)
def fully_connected_vnni512(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for AVX512-VNNI: the outputs across the 16 lanes of 512-bit VPDPBUSD (the column
    cores, weights as words from a host-only table, each sum starting from -128 * sum(w)), up to
    four samples per weight load; the samples are copied offset by 128, zero-padded to whole words.
    The same integers."""
    f = FULLY_CONNECTED_ROW
    x, n, k, outs = row[f.x], row[f.n], row[f.k], row[f.outs]
    padded = -(-outs // COLUMN_LANES) * COLUMN_LANES
    k4 = -(-k // 4) * 4
    at = row[f.words]
    groups = column_groups(k)
    words = column_words[at : at + groups * padded]
    first_sums = column_words[at + groups * padded : at + (groups + 1) * padded]
    for s in range(0, n, COLUMN_PIXELS):
        count = min(COLUMN_PIXELS, n - s)
        for p in range(count):
            copy_bytes(patch, p * k4, arena, x + (s + p) * k, k)
            fill_bytes(patch, p * k4 + k, k4 - k, 0)
            flip_bytes(patch, p * k4, k)
        if count == COLUMN_PIXELS:
            column_dot_4(patch, 0, k4, 0, k4, 1, words, padded, padded, first_sums, acc, 0)
        else:
            for p in range(count):
                column_dot_single(patch, p * k4, 0, k4, 1, words, padded, first_sums, acc, p * padded)  # fmt: skip
        requantize_samples(acc, padded, count, s, row, arena, biases, mults, shifts, rounding)


@njit(cache=True)
def fully_connected_avx2(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for AVX2: the outputs across the 8 lanes of 256-bit PMADDWD (the pair cores,
    weights as int8 pairs from a host-only table; the bias carries -zp * sum(w)), PAIR_PIXELS
    samples per weight load, blocks of TILE_PIXELS samples widened to int16 (each padded to an even
    length) so that each block of weights runs over all of them. The same integers."""
    f = FULLY_CONNECTED_ROW
    x, n, k, outs = row[f.x], row[f.n], row[f.k], row[f.outs]
    padded, size = pair_sizes(k, outs)
    if n < PAIR_PIXELS and padded < 4 * PAIR_LANES and k >= LANES:
        # a few samples of a few outputs: each block of sums would be one chain of dependent
        # PMADDWD steps over all of K; the generic rows run four at a time
        fully_connected_with(row, arena, weights, biases, mults, shifts, rounding, acc, block_dot_1x8, block_dot_1x4)  # fmt: skip
        return
    k2 = k + k % 2
    at = row[f.words] + column_size(k, outs)
    words = column_words[at : at + size]
    first_sums = column_words[at + size : at + size + padded]
    samples = patch[: 2 * TILE_PIXELS * k2].view(np.int16)
    for s in range(0, n, TILE_PIXELS):  # a block of samples: each weight block over all of them
        count = min(TILE_PIXELS, n - s)
        if k2 == k:  # consecutive samples are one run
            widen_bytes(samples, 0, arena, x + s * k, count * k)
        for p in range(count if k2 > k else 0):
            widen_bytes(samples, p * k2, arena, x + (s + p) * k, k)
            samples[p * k2 + k] = 0  # an odd K's last pair: times a zero weight
        pair_dots(samples, 0, k2, 0, k2, 1, count, words, padded, first_sums, acc, 0)
        requantize_samples(acc, padded, count, s, row, arena, biases, mults, shifts, rounding)


TILE_MIN_SAMPLES = 4  # fewer samples take the AVX512-VNNI path: a tile pass wastes their rows


@njit(cache=True)
def fully_connected_amx(
    row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words
):  # type: ignore[no-untyped-def]
    """The variant for AMX-INT8: TILE_PIXELS samples are the rows of two tiles (read in place when
    a sample is whole tiles, else copied into the patch, zero past K), times the column words
    (TDPBSSD: signed int8 times signed int8, exact; the bias carries -zp * sum(w)), two blocks of 16
    outputs per load. Below TILE_MIN_SAMPLES samples, the AVX512-VNNI variant. The same integers."""
    f = FULLY_CONNECTED_ROW
    x, n, k, outs = row[f.x], row[f.n], row[f.k], row[f.outs]
    if n < TILE_MIN_SAMPLES:
        fully_connected_vnni512(row, arena, weights, biases, mults, shifts, rounding, patch, acc, column_words)  # fmt: skip
        return
    groups = column_groups(k)
    window = 4 * groups  # bytes of a copied sample: whole tiles
    padded = -(-outs // COLUMN_LANES) * COLUMN_LANES
    at = row[f.words]
    fill_bytes(patch, 0, TILE_PIXELS * window, 0)
    tile_start(TILE_CONFIG)
    for s in range(0, n, TILE_PIXELS):
        count = min(TILE_PIXELS, n - s)
        if k == window and count == TILE_PIXELS:
            tile_sums(arena, x + s * k, k, column_words, at, groups, padded, acc)
        else:
            for p in range(count):
                copy_bytes(patch, p * window, arena, x + (s + p) * k, k)
            tile_sums(patch, 0, window, column_words, at, groups, padded, acc)
        requantize_samples(acc, padded, count, s, row, arena, biases, mults, shifts, rounding)
    tile_end()


@njit(cache=True, inline="always")
def fully_connected_with(
    row, arena, weights, biases, mults, shifts, rounding, acc, dot_1x8, dot_1x4
):  # type: ignore[no-untyped-def]
    f = FULLY_CONNECTED_ROW
    x, w, n, k, outs = row[f.x], row[f.w], row[f.n], row[f.k], row[f.outs]
    for s in range(n):
        dot_rows(arena[x + s * k : x + (s + 1) * k], weights, w, k, outs, acc, dot_1x8, dot_1x4)
        requantize_samples(acc, outs, 1, s, row, arena, biases, mults, shifts, rounding)


FC_SPEC = OpSpec(
    "FullyConnected",
    infer_fc,
    reference_fc,
    attrs=dict(CLIP_ATTRS),
    macs=fc_macs,
    fuses_activation=True,
    int8=Int8Spec(weights=True, prepare=prepare_fc_int8, prepare16=prepare_fc16),
)
register(
    OpSpec(
        "Gemm",
        infer_gemm,
        reference_gemm,
        read_gemm,
        onnx_ops=("Gemm",),
        attrs={"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
        macs=gemm_macs,
        examples=gemm_examples,
    ),
    OpSpec(
        "MatMul",
        infer_matmul,
        reference_matmul,
        passthrough_import("MatMul"),
        onnx_ops=("MatMul",),
        macs=matmul_macs,
        examples=matmul_examples,
    ),
    FC_SPEC,
)


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
FULLY_CONNECTED_ROW = row_layout("fully_connected", "x y w b m n k outs zp_out lo hi words")
FULLY_CONNECTED = register_kernel(
    "fully_connected",
    fully_connected_int8,
    FULLY_CONNECTED_ROW,
    c=("edgenn_fully_connected", "fully_connected.c"),
    tables=("column_words",),
    variants={
        "amx-int8": fully_connected_amx,
        "avx512vnni": fully_connected_vnni512,
        "avxvnni": fully_connected_vnni,
        "avx2": fully_connected_avx2,
    },
)


# ---- TFLite: how the writer lowers these ops ----


def lower_fully_connected(lw: Lowering, node: Node) -> None:
    from edgenn.codegen.tflite import fused_activation

    inputs = [lw.tensor(i) for i in node.inputs]
    lw.emit(
        "FULLY_CONNECTED",
        inputs,
        [lw.tensor(node.outputs[0])],
        ("FullyConnectedOptions", {"fused_activation_function": fused_activation(node)}),
    )


register_tflite("FullyConnected", lower=lower_fully_connected, versions={"FULLY_CONNECTED": 4})


# ---- TFLite: how the reader takes these builtins ----


def read_fully_connected(
    r: TFLiteReader, name: str, ins: list[str], outs: list[str], op: Any
) -> None:
    from edgenn.frontend.tflite import fused_clip, zero_bias

    o = r.options(op, "FullyConnectedOptions")
    x = ins[0]
    k = r.shape(ins[1])[1]
    if len(r.shape(x)) != 2:  # TFLite flattens leading dimensions implicitly
        flat = f"{name}_input"
        r.values[flat] = Value(
            flat, TensorType(DType.INT8, (math.prod(r.shape(x)) // k, k), r.values[x].type.qparams)
        )
        r.emit(f"{name}_flatten", "Reshape", [x], [flat], shape=(math.prod(r.shape(x)) // k, k))
        x = flat
    bias = ins[2] if len(ins) > 2 and ins[2] else zero_bias(r, name, x, ins[1])
    r.emit(name, "FullyConnected", [x, ins[1], bias], outs, **fused_clip(o))


register_tflite_reader("FULLY_CONNECTED", read=read_fully_connected)
