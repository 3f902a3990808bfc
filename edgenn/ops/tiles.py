"""AMX tile cores (x86 AMX-INT8: TDPBSSD and TDPBUSD, signed or unsigned int8 x signed int8 into
int32, exact), as Numba intrinsics of inline assembly (LLVM's own AMX intrinsics need a tile type
llvmlite cannot spell).

A tile is TILE_ROWS rows of TILE_BYTES bytes. One TDPBSSD adds A [16 rows x 64 int8] times
B [16 rows x 16 columns x 4 int8] into C [16 rows x 16 int32]: C[i][j] += sum over r < 16, q < 4 of
A[i][4r + q] * B[r][4j + q]. So A's rows are windows (or samples) and B's rows are column_words
rows: a weight word per output channel, four consecutive K elements each.

The tile registers live outside LLVM's register allocation, so each kernel configures them
(tile_start), keeps its own tiles in tmm0..tmm7 between the calls below, and releases them
(tile_end) before returning; no other code touches them in between.

Linux hands out AMX state only on request (arch_prctl ARCH_REQ_XCOMP_PERM), once per process:
`amx_permitted` asks at import, and the variant's feature is reported only where it was granted."""

from __future__ import annotations

import ctypes
import functools
import platform
import sys

import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.extending import intrinsic

from edgenn.ops.dot import COLUMN_LANES

TILE_ROWS = 16  # rows of every tile: windows of A, weight-word rows of B, pixels of C
TILE_BYTES = 64  # bytes per tile row: 64 int8 of A, 16 words of B, 16 int32 sums of C
TILE_PIXELS = 2 * TILE_ROWS  # rows of A per pass (pixels or samples): two tiles, as tile_sums

_ARCH_PRCTL = 158  # x86-64 syscall number
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


@functools.cache
def amx_permitted() -> bool:
    """Whether this process may use the AMX tile registers (Linux x86-64 grants them on request)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def tile_config() -> np.ndarray:
    """The 64-byte LDTILECFG record: palette 1, tmm0..tmm7 all TILE_ROWS x TILE_BYTES."""
    config = np.zeros(64, np.uint8)
    config[0] = 1
    config[16:32].view(np.uint16)[:8] = TILE_BYTES
    config[48:56] = TILE_ROWS
    return config


TILE_CONFIG = tile_config()
binding.initialize_native_asmparser()  # Numba's JIT assembles inline asm only with it
amx_permitted()  # before any kernel runs: a thread started later inherits the permission


def _address(context, builder, array_type, array, index):  # type: ignore[no-untyped-def]
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [index])


def _asm(builder, text: str, operands: list) -> None:  # type: ignore[no-untyped-def]
    constraints = ",".join(["r"] * len(operands) + ["~{memory}"])
    function = ir.FunctionType(ir.VoidType(), [op.type for op in operands])
    builder.asm(function, text, constraints, operands, side_effect=True)


@intrinsic
def tile_start(typingctx, config):  # type: ignore[no-untyped-def]
    """LDTILECFG from a tile_config() record."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        zero = ir.Constant(ir.IntType(64), 0)
        _asm(
            builder,
            "ldtilecfg ($0)",
            [_address(context, builder, signature.args[0], args[0], zero)],
        )
        return context.get_dummy_value()

    return types.void(config), codegen


@intrinsic
def tile_end(typingctx):  # type: ignore[no-untyped-def]
    """TILERELEASE: the tiles back to their initial state."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _asm(builder, "tilerelease", [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def tile_zero_block(typingctx):  # type: ignore[no-untyped-def]
    """tmm0..tmm3 (a 2 x 2 block of sums) = 0."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _asm(builder, "\n\t".join(f"tilezero %tmm{t}" for t in range(4)), [])
        return context.get_dummy_value()

    return types.void(), codegen


def _tile_dot_block(instruction: str):  # type: ignore[no-untyped-def]
    def typer(typingctx, a, a_start, a_stride, a_apart, b, b_start, b_stride, b_apart):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            a0 = _address(context, builder, signature.args[0], args[0], args[1])
            b0 = _address(context, builder, signature.args[4], args[4], args[5])
            a1, b1 = builder.gep(a0, [args[3]]), builder.gep(b0, [args[7]])
            loads = (
                "tileloadd ($0,$1,1), %tmm4\n\t"
                "tileloadd ($2,$1,1), %tmm5\n\t"
                "tileloadd ($3,$4,1), %tmm6\n\t"
                "tileloadd ($5,$4,1), %tmm7\n\t"
            )
            dots = "\n\t".join(
                f"{instruction} %tmm{6 + j}, %tmm{4 + i}, %tmm{2 * i + j}"
                for i in range(2)
                for j in range(2)
            )
            _asm(builder, loads + dots, [a0, args[2], a1, b0, args[6], b1])
            return context.get_dummy_value()

        signature = types.void(a, a_start, a_stride, a_apart, b, b_start, b_stride, b_apart)
        return signature, codegen

    return typer


# The 2 x 2 block of sums += A_i . B_j: A0 the 16 rows of int8 at a[a_start], `a_stride` bytes apart,
# A1 the same `a_apart` bytes further on; B0 the 16 rows of words at b[b_start], `b_stride` bytes
# apart, B1 the same `b_apart` words further on. tmm0 += A0 B0, tmm1 += A0 B1, tmm2 += A1 B0,
# tmm3 += A1 B1: four independent sums, so the dot products overlap (one chain would wait out each
# one's latency). TDPBSSD: A signed bytes; TDPBUSD: A unsigned bytes (an input offset by 128).
tile_dot_block = intrinsic(_tile_dot_block("tdpbssd"))
tile_dot_block_unsigned = intrinsic(_tile_dot_block("tdpbusd"))


@intrinsic
def tile_start_block(typingctx, first, first_start, apart):  # type: ignore[no-untyped-def]
    """The 2 x 2 block of sums starts from per-channel values: every row of tmm0 and tmm2 is the 16
    int32 at first[first_start], of tmm1 and tmm3 the 16 `apart` elements further on (stride 0)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        f0 = _address(context, builder, signature.args[0], args[0], args[1])
        f1 = builder.gep(f0, [args[2]])
        zero = ir.Constant(ir.IntType(64), 0)
        text = "\n\t".join(f"tileloadd (${t % 2 * 2},$1,1), %tmm{t}" for t in range(4))
        _asm(builder, text, [f0, zero, f1])
        return context.get_dummy_value()

    return types.void(first, first_start, apart), codegen


@intrinsic
def tile_store_block(typingctx, c, c_start, c_stride, rows_apart, columns_apart):  # type: ignore[no-untyped-def]
    """The 2 x 2 block of 16 x 16 int32 sums to c: tmm0 at c[c_start] (rows `c_stride` bytes apart),
    tmm1 `columns_apart` elements on, tmm2 `rows_apart` on, tmm3 both."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        c0 = _address(context, builder, signature.args[0], args[0], args[1])
        c1 = builder.gep(c0, [args[4]])
        c2 = builder.gep(c0, [args[3]])
        c3 = builder.gep(c2, [args[4]])
        text = "\n\t".join(
            f"tilestored %tmm{t}, (${op},$1,1)" for t, op in zip(range(4), (0, 2, 3, 4))
        )
        _asm(builder, text, [c0, args[2], c1, c2, c3])
        return context.get_dummy_value()

    return types.void(c, c_start, c_stride, rows_apart, columns_apart), codegen


@njit(cache=True, inline="always")
def tile_sums(a, a_start, a_stride, words, at, groups, padded, acc, first=None, first_at=0):  # type: ignore[no-untyped-def]
    """acc[p * padded + o] = row p of A (TILE_PIXELS rows of 4 * groups int8 at a[a_start...],
    `a_stride` bytes apart) times channel o's column words (words[at...], `padded` channels), for
    every p < TILE_PIXELS: blocks of 2 x 16 rows by 2 x 16 channels. With `first` (per-channel
    starting sums at first[first_at...]), A's bytes are unsigned (the input offset by 128)."""
    blocks = padded // COLUMN_LANES
    half = TILE_ROWS * a_stride  # A1: the second 16 rows
    for j in range(0, blocks, 2):
        apart = COLUMN_LANES if j + 1 < blocks else 0  # an odd last block: its pair is itself
        column = j * COLUMN_LANES
        if first is None:
            tile_zero_block()
        else:
            tile_start_block(first, first_at + column, apart)
        for g in range(0, groups, TILE_ROWS):
            b_at = at + g * padded + column
            if first is None:
                tile_dot_block(a, a_start + 4 * g, a_stride, half, words, b_at, 4 * padded, apart)
            else:
                tile_dot_block_unsigned(a, a_start + 4 * g, a_stride, half, words, b_at, 4 * padded, apart)  # fmt: skip
        tile_store_block(acc, column, 4 * padded, TILE_ROWS * padded, apart)
