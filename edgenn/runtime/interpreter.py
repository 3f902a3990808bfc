"""The Numba interpreter: one compiled call runs a whole program (every layer, every sample).

Kernels are the module-level @njit functions of the op families; `run_steps` dispatches on each row's
opcode. Integers only: no float arithmetic runs here.

Numba's on-disk cache of this module only notices edits to this file, not to the kernels it calls, so
the cache is dropped whenever any kernel source changes (a digest of them is kept beside the cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba import njit

from edgenn.ops.activation import (
    OP_HARD_SWISH,
    OP_LEAKY_RELU,
    OP_LOGISTIC,
    OP_PRELU,
    OP_TANH,
    hard_swish_int8,
    leaky_relu_int8,
    logistic_tanh_int8,
    prelu_int8,
)
from edgenn.ops.conv import OP_CONV, conv_int8
from edgenn.ops.elementwise import OP_BINARY, binary_int8
from edgenn.ops.linear import OP_FULLY_CONNECTED, fully_connected_int8
from edgenn.ops.pool import OP_POOL, OP_POOL16, pool16, pool_int8
from edgenn.ops.quantization import (
    OP_REQUANTIZE,
    OP_REQUANTIZE_WIDE,
    requantize_int8,
    requantize_wide,
)
from edgenn.ops.reduce import OP_MEAN, mean_int8
from edgenn.ops.shape import OP_CONCAT, OP_PAD, OP_TRANSPOSE, concat_int8, pad_int8, transpose_int8
from edgenn.ops.softmax import OP_SOFTMAX, softmax_int8
from edgenn.ops.wide import (
    OP_BINARY16,
    OP_CONV16,
    OP_FC16,
    binary16,
    conv16,
    fc16,
)

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
        for stale in cache.glob("interpreter.*.nb[ic]"):
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
            arena[in_offsets[k] : in_offsets[k] + in_sizes[k]] = inputs[
                s, position : position + in_sizes[k]
            ]
            position += in_sizes[k]
        run_steps(
            rows, arena, weights, biases, mults, shifts, rounding, patch, acc, 0, rows.shape[0]
        )
        position = 0
        for k in range(out_offsets.shape[0]):
            outputs[s, position : position + out_sizes[k]] = arena[
                out_offsets[k] : out_offsets[k] + out_sizes[k]
            ]
            position += out_sizes[k]
