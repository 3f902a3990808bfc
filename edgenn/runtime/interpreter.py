"""The Numba interpreter: one compiled call runs a whole program (every layer, every sample).

Kernels are the module-level @njit functions of the op families; `run_steps` dispatches on each row's
opcode. Integers only: no float arithmetic runs here.

Numba's on-disk cache of a module only notices edits to that file, not to the helpers its functions
inline from other files, so every kernel cache is dropped whenever any kernel source changes (a digest of
them is kept beside this module's cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from edgenn.ops.activation import (
    OP_HARD_SWISH,
    OP_LEAKY_RELU,
    OP_LEAKY_RELU16,
    OP_LOGISTIC,
    OP_PRELU,
    OP_TANH,
    hard_swish_int8,
    leaky_relu16,
    leaky_relu_int8,
    logistic_tanh_int8,
    prelu_int8,
)
from edgenn.ops.conv import OP_CONV, conv_int8
from edgenn.ops.dot import copy_bytes
from edgenn.ops.elementwise import OP_BINARY, binary_int8
from edgenn.ops.linear import OP_FULLY_CONNECTED, fully_connected_int8
from edgenn.ops.pool import OP_POOL, OP_POOL16, pool16, pool_int8
from edgenn.ops.quantization import (
    OP_REQUANTIZE,
    OP_REQUANTIZE_WIDE,
    requantize_int8,
    requantize_wide,
)
from edgenn.ops.reduce import OP_MEAN, OP_MEAN16, mean16, mean_int8
from edgenn.ops.shape import OP_CONCAT, OP_PAD, OP_TRANSPOSE, concat_int8, pad_int8, transpose_int8
from edgenn.ops.softmax import OP_SOFTMAX, OP_SOFTMAX16, softmax16, softmax_int8
from edgenn.ops.wide import (
    OP_BINARY16,
    OP_CONV16,
    OP_FC16,
    OP_LOGISTIC_TANH16,
    binary16,
    conv16,
    fc16,
    logistic_tanh16,
)
from edgenn.runtime.program import ROW_WIDTH

KERNEL_SOURCES = ("ops", "quant/fixed_point.py", "runtime/interpreter.py")


def _drop_stale_cache() -> None:
    package = Path(__file__).resolve().parent.parent
    files: list[Path] = []
    for name in KERNEL_SOURCES:
        path = package / name
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    cache = Path(__file__).resolve().parent / "__pycache__"
    stamp = cache / "kernels.sha256"
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return
        # every module's cache: a kernel inlines helpers from other files (ops/dot.py into conv, ...)
        for stale in package.glob("**/__pycache__/*.nb[ic]"):
            stale.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass  # a read-only install keeps whatever cache Numba finds


_drop_stale_cache()


@njit(cache=True)
def run_steps(rows, arena, weights, biases, mults, shifts, rounding, patch, acc, first, last):  # type: ignore[no-untyped-def]
    for i in range(first, last):
        row = rows[i]
        op = row[0]
        if op == OP_CONV:
            conv_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_FULLY_CONNECTED:
            fully_connected_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_BINARY:
            binary_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_POOL:
            pool_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_REQUANTIZE:
            requantize_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_LEAKY_RELU:
            leaky_relu_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_PRELU:
            prelu_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_TRANSPOSE:
            transpose_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_PAD:
            pad_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_CONCAT:
            concat_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_LOGISTIC or op == OP_TANH:
            logistic_tanh_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_HARD_SWISH:
            hard_swish_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_SOFTMAX:
            softmax_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_MEAN:
            mean_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_CONV16:
            conv16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_FC16:
            fc16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_BINARY16:
            binary16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_SOFTMAX16:
            softmax16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_LOGISTIC_TANH16:
            logistic_tanh16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_MEAN16:
            mean16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_LEAKY_RELU16:
            leaky_relu16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_POOL16:
            pool16(row, arena, weights, biases, mults, shifts, rounding, patch, acc)
        elif op == OP_REQUANTIZE_WIDE:
            requantize_wide(row, arena, weights, biases, mults, shifts, rounding, patch, acc)


@njit(cache=True)
def run_batch(  # type: ignore[no-untyped-def]
    rows,
    arena,
    weights,
    biases,
    mults,
    shifts,
    rounding,
    patch,
    acc,
    inputs,
    in_offsets,
    in_sizes,
    outputs,
    out_offsets,
    out_sizes,
):
    """Samples one after another through the same arena: inputs [N, sum(in_sizes)] int8 in, outputs
    [N, sum(out_sizes)] int8 out."""
    for s in range(inputs.shape[0]):
        position = 0
        for k in range(in_offsets.shape[0]):
            move(arena, in_offsets[k], inputs[s], position, in_sizes[k])
            position += in_sizes[k]
        run_steps(
            rows, arena, weights, biases, mults, shifts, rounding, patch, acc, 0, rows.shape[0]
        )
        position = 0
        for k in range(out_offsets.shape[0]):
            move(outputs[s], position, arena, out_offsets[k], out_sizes[k])
            position += out_sizes[k]


@njit(cache=True, inline="always")
def move(dst, dst_start, src, src_start, count):  # type: ignore[no-untyped-def]
    """dst[dst_start:][:count] = src[src_start:][:count] between int8 rows of distinct buffers."""
    if dst.strides[0] == 1 and src.strides[0] == 1:
        copy_bytes(dst, dst_start, src, src_start, count)
    else:  # a strided view from the caller
        dst[dst_start : dst_start + count] = src[src_start : src_start + count]


# The packed state: every array run_batch needs, as aligned segments of one int8 buffer, so a call from
# Python passes three arrays instead of fifteen (Numba's per-argument dispatch cost dominates small
# models). Header: int64 [segment start, end] pairs in PACKED_SEGMENTS order, then the rounding mode.
PACKED_SEGMENTS = (
    "rows",
    "arena",
    "weights",
    "biases",
    "multipliers",
    "shifts",
    "patch",
    "accumulators",
    "input_offsets",
    "input_sizes",
    "output_offsets",
    "output_sizes",
)
PACKED_HEADER = 64 * 8  # bytes
ROUNDING_FIELD = 2 * len(PACKED_SEGMENTS)


@intrinsic
def pointer_at(typingctx, buffer, offset, dtype):  # type: ignore[no-untyped-def]
    """A typed pointer to byte `offset` of a C-contiguous int8 buffer."""
    pointer = types.CPointer(dtype.instance_type)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.bitcast(builder.gep(data, [args[1]]), context.get_value_type(pointer))

    return pointer(buffer, offset, dtype), codegen


@njit(cache=True, inline="always")
def segment(state, head, index, dtype):  # type: ignore[no-untyped-def]
    """Segment `index` of a packed state as an array of `dtype`. Built with carray, the array holds no
    reference count, so neither it nor any slice a kernel takes of it pays atomic reference updates
    (the caller keeps the state alive for the call)."""
    start, end = head[2 * index], head[2 * index + 1]
    size = carray(pointer_at(state, start, dtype), 1).itemsize
    return carray(pointer_at(state, start, dtype), (end - start) // size)


@njit(cache=True)
def run_packed(state, inputs, outputs):  # type: ignore[no-untyped-def]
    """run_batch on the segments of a packed state (see PACKED_SEGMENTS)."""
    head = carray(pointer_at(state, 0, np.int64), PACKED_HEADER // 8)
    rows = segment(state, head, 0, np.int64)
    run_batch(
        rows.reshape((rows.shape[0] // ROW_WIDTH, ROW_WIDTH)),
        segment(state, head, 1, np.int8),
        segment(state, head, 2, np.int8),
        segment(state, head, 3, np.int32),
        segment(state, head, 4, np.int64),
        segment(state, head, 5, np.int64),
        head[ROUNDING_FIELD],
        segment(state, head, 6, np.int8),
        segment(state, head, 7, np.int32),
        inputs,
        segment(state, head, 8, np.int64),
        segment(state, head, 9, np.int64),
        outputs,
        segment(state, head, 10, np.int64),
        segment(state, head, 11, np.int64),
    )


def pack_state(
    segments: dict[str, np.ndarray], rounding: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One int8 buffer holding every segment (64-byte aligned), and numpy views of each segment in it
    (writes through a view, e.g. to the arena, are what the compiled code sees)."""
    starts, position = [], PACKED_HEADER
    for name in PACKED_SEGMENTS:
        starts.append(position)
        position = (position + segments[name].nbytes + 63) // 64 * 64
    state = np.zeros(position, np.int8)
    head = state[:PACKED_HEADER].view(np.int64)
    views = {}
    for i, name in enumerate(PACKED_SEGMENTS):
        data = np.ascontiguousarray(segments[name])
        start, end = starts[i], starts[i] + data.nbytes
        head[2 * i], head[2 * i + 1] = start, end
        views[name] = state[start:end].view(data.dtype).reshape(data.shape)
        views[name][...] = data
    head[ROUNDING_FIELD] = rounding
    return state, views
