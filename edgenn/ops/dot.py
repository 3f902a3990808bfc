"""The integer vector cores of the FullyConnected and Conv kernels, written directly as generic LLVM
vector IR through Numba intrinsics (no target-specific intrinsic: x86 and Arm lower the same IR).

- block_dot_1x4 / block_dot_2x4: one or two input windows times four weight rows. int8 operands
  sign-extended, 16 products, adjacent pairs added into 8 int32 lanes per (window, row): the shape x86
  lowers to PMADDWD and Arm to SMULL/SADALP. A window may be several runs (the rows of a convolution
  window read in place from the input), so convolutions need no copy for interior pixels.
- pair_outer: int16 tap pairs broadcast against tap-pair-interleaved int16 weights, eight output
  channels per step (first layers with few input channels).
- requantize_vector: TFLite's MultiplyByQuantizedMultiplier, 8 outputs per step in int32 lanes.

Callers guarantee the int32 sums cannot overflow (the quantizer's accumulator check) and that the
operands are in bounds."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from edgenn.ops import register_table

LANES = 16  # int8 elements per vector step


ROWS = 4  # weight rows per block: one input load feeds ROWS products


def _pair_sums(builder, x, w):  # type: ignore[no-untyped-def]
    """LANES products of sign-extended int8, adjacent pairs added: LANES // 2 int32 lanes (PMADDWD)."""
    i32 = ir.IntType(32)
    product = builder.mul(x, w)
    half = ir.VectorType(i32, LANES // 2)
    even = ir.Constant(half, [ir.Constant(i32, 2 * j) for j in range(LANES // 2)])
    odd = ir.Constant(half, [ir.Constant(i32, 2 * j + 1) for j in range(LANES // 2)])
    return builder.add(
        builder.shuffle_vector(product, product, even),
        builder.shuffle_vector(product, product, odd),
    )


def _sum_four(builder, vectors):  # type: ignore[no-untyped-def]
    """The four horizontal sums of four 8-lane int32 vectors, as one 4-lane vector (a shuffle tree)."""
    i32 = ir.IntType(32)

    def fold(a, b, first, second):  # type: ignore[no-untyped-def]
        size = len(first)
        lanes = ir.VectorType(i32, size)
        pick = [ir.Constant(lanes, [ir.Constant(i32, j) for j in idx]) for idx in (first, second)]
        return builder.add(
            builder.shuffle_vector(a, b, pick[0]), builder.shuffle_vector(a, b, pick[1])
        )

    halves = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])
    low = fold(vectors[0], vectors[1], *halves)  # [a0 4 partial sums | a1 4 partial sums]
    high = fold(vectors[2], vectors[3], *halves)
    pairs = fold(low, high, [0, 1, 4, 5, 8, 9, 12, 13], [2, 3, 6, 7, 10, 11, 14, 15])
    return fold(pairs, pairs, [0, 2, 4, 6], [1, 3, 5, 7])


def _loop_blocks(builder, prefix: str, names: tuple[str, ...], *counts):  # type: ignore[no-untyped-def]
    """Basic blocks `prefix.name` for a loop nest, and a branch from the current block into the first
    when every count is positive, else to the last (the exit)."""
    blocks = [builder.append_basic_block(f"{prefix}.{name}") for name in names]
    ready = builder.icmp_signed(">", counts[0], ir.Constant(counts[0].type, 0))
    for count in counts[1:]:
        ready = builder.and_(ready, builder.icmp_signed(">", count, ir.Constant(count.type, 0)))
    builder.cbranch(ready, blocks[0], blocks[-1])
    return blocks


def _vnni_dot(builder, acc, u, w):  # type: ignore[no-untyped-def]
    """acc + VPDPBUSD(u, w): four int32 lanes, each adding four unsigned x signed byte products
    (the <4 x i32> operand form, which LLVM accepts on every version llvmlite ships)."""
    lanes = ir.VectorType(ir.IntType(32), 4)
    kind = ir.FunctionType(lanes, [lanes, lanes, lanes])
    function = cgutils.get_or_insert_function(builder.module, kind, "llvm.x86.avx512.vpdpbusd.128")
    return builder.call(function, [acc, builder.bitcast(u, lanes), builder.bitcast(w, lanes)])


def _block_dot_ir(pixels: int, rows: int, vnni: bool = False):  # type: ignore[no-untyped-def]
    """The block dot's LLVM IR. vnni: VPDPBUSD (x86 AVX-VNNI / AVX512-VNNI) on unsigned x signed
    bytes: each input byte is offset by 128 (x ^ 0x80), and 128 * sum(w) is taken off again,
    accumulated by the same instruction from a constant 0x80 input (one extra "pixel"); exact,
    since the int32 sums cannot overflow."""

    def generate(context, builder, signature, args):  # type: ignore[no-untyped-def]
        x = context.make_array(signature.args[0])(context, builder, args[0]).data
        weights = context.make_array(signature.args[6])(context, builder, args[6]).data
        out = context.make_array(signature.args[9])(context, builder, args[9]).data
        x_start, pixel_step, run_stride, run_len, runs = args[1:6]
        w_start, w_stride, out_start, out_step = args[7], args[8], args[10], args[11]
        i64, i32 = x_start.type, ir.IntType(32)
        bytes_t, wide_t = ir.VectorType(ir.IntType(8), LANES), ir.VectorType(i32, LANES)
        sums_t = ir.VectorType(i32, LANES // 4 if vnni else LANES // 2)
        four_t = ir.VectorType(i32, 4)
        zero, step_size = ir.Constant(sums_t, None), ir.Constant(i64, LANES)
        offset = ir.Constant(bytes_t, [ir.Constant(ir.IntType(8), -128)] * LANES)
        lanes = pixels + 1 if vnni else pixels  # accumulator sets: the correction's is the last

        def load(pointer, index):  # type: ignore[no-untyped-def]
            raw = builder.load(
                builder.bitcast(builder.gep(pointer, [index]), bytes_t.as_pointer()), align=1
            )
            return raw if vnni else builder.sext(raw, wide_t)

        def accumulate(acc, x, w):  # type: ignore[no-untyped-def]
            return (
                _vnni_dot(builder, acc, x, w)
                if vnni
                else builder.add(acc, _pair_sums(builder, x, w))
            )

        # a loop over the window's runs around a loop over vector steps within a run
        entry = builder.block
        start, inner, next_run, done = _loop_blocks(
            builder, "block_dot", ("run", "step", "next_run", "done"), runs, run_len
        )
        zeros = [[zero] * rows for _ in range(lanes)]

        builder.position_at_end(start)
        run = builder.phi(i64)
        run.add_incoming(ir.Constant(i64, 0), entry)
        run_sums = [[builder.phi(sums_t) for _ in range(rows)] for _ in range(lanes)]
        for p in range(lanes):
            for r in range(rows):
                run_sums[p][r].add_incoming(zero, entry)
        x_base = builder.add(x_start, builder.mul(run, run_stride))
        w_base = builder.add(w_start, builder.mul(run, run_len))
        builder.branch(inner)

        builder.position_at_end(inner)
        i = builder.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), start)
        sums = [[builder.phi(sums_t) for _ in range(rows)] for _ in range(lanes)]
        for p in range(lanes):
            for r in range(rows):
                sums[p][r].add_incoming(run_sums[p][r], start)
        x_at = builder.add(x_base, i)
        inputs = [
            load(x, builder.add(x_at, builder.mul(pixel_step, ir.Constant(i64, p))))
            for p in range(pixels)
        ]
        if vnni:  # unsigned inputs, and the constant input of the correction
            inputs = [builder.xor(v, offset) for v in inputs] + [offset]
        updated = [[None] * rows for _ in range(lanes)]
        for r in range(rows):
            row = builder.add(builder.mul(w_stride, ir.Constant(i64, r)), builder.add(w_base, i))
            w = load(weights, row)
            for p in range(lanes):
                updated[p][r] = accumulate(sums[p][r], inputs[p], w)
        following = builder.add(i, step_size)
        i.add_incoming(following, inner)
        for p in range(lanes):
            for r in range(rows):
                sums[p][r].add_incoming(updated[p][r], inner)
        builder.cbranch(builder.icmp_signed("<", following, run_len), inner, next_run)

        builder.position_at_end(next_run)
        following_run = builder.add(run, ir.Constant(i64, 1))
        run.add_incoming(following_run, next_run)
        for p in range(lanes):
            for r in range(rows):
                run_sums[p][r].add_incoming(updated[p][r], next_run)
        builder.cbranch(builder.icmp_signed("<", following_run, runs), start, done)

        builder.position_at_end(done)
        finals = [[builder.phi(sums_t) for _ in range(rows)] for _ in range(lanes)]
        for p in range(lanes):
            for r in range(rows):
                finals[p][r].add_incoming(zeros[p][r], entry)
                finals[p][r].add_incoming(updated[p][r], next_run)
        for p in range(pixels):
            for r in range(0, rows, 4):
                at = builder.add(out_start, builder.mul(out_step, ir.Constant(i64, p)))
                at = builder.add(at, ir.Constant(i64, r))
                target = builder.bitcast(builder.gep(out, [at]), four_t.as_pointer())
                sums = finals[p][r : r + 4]
                if vnni:  # take the offset's products off, widen to the 8 lanes _sum_four adds
                    sums = [
                        _widened(builder, builder.sub(v, c))
                        for v, c in zip(sums, finals[-1][r : r + 4])
                    ]
                builder.store(_sum_four(builder, sums), target, align=4)
        return context.get_dummy_value()

    return generate


def _widened(builder, v):  # type: ignore[no-untyped-def]
    """A 4-lane int32 vector as 8 lanes, the upper four zero."""
    i32 = ir.IntType(32)
    pick = ir.Constant(ir.VectorType(i32, 8), [ir.Constant(i32, j) for j in range(8)])
    return builder.shuffle_vector(v, ir.Constant(v.type, None), pick)


def _block_dot_signature(pixels: int, rows: int, vnni: bool = False):  # type: ignore[no-untyped-def]
    def typer(  # type: ignore[no-untyped-def]
        typingctx,
        x,
        x_start,
        pixel_step,
        run_stride,
        run_len,
        runs,
        weights,
        w_start,
        w_stride,
        out,
        out_start,
        out_step,
    ):
        signature = types.void(
            x,
            x_start,
            pixel_step,
            run_stride,
            run_len,
            runs,
            weights,
            w_start,
            w_stride,
            out,
            out_start,
            out_step,
        )
        return signature, _block_dot_ir(pixels, rows, vnni)

    return typer


# out[out_start + p * out_step + r] = sum over the window of pixel p of x * weights row r, for
# r < rows (4 or 8) and p < pixels. A window is `runs` runs of `run_len` int8 (a multiple of LANES),
# run j starting at x[x_start + p * pixel_step + j * run_stride]; weight row r is contiguous from
# weights[w_start + r * w_stride]. int32 sums; no bounds checks.
block_dot_1x4 = intrinsic(_block_dot_signature(1, 4))
block_dot_2x4 = intrinsic(_block_dot_signature(2, 4))
block_dot_1x8 = intrinsic(_block_dot_signature(1, 8))  # one input: more rows per input load
# the same on VPDPBUSD: only CPUs with AVX-VNNI or AVX512-VNNI compile or run these. Kernels take
# the cores they use as arguments (Numba compiles a caller once per core it is given, so each
# kernel variant holds only the cores it names).
block_dot_1x4_vnni = intrinsic(_block_dot_signature(1, 4, vnni=True))
block_dot_1x8_vnni = intrinsic(_block_dot_signature(1, 8, vnni=True))
block_dot_2x4_vnni = intrinsic(_block_dot_signature(2, 4, vnni=True))


COLUMN_LANES = 16  # output channels per 512-bit VPDPBUSD of the column cores
COLUMN_PIXELS = 4  # pixels (or samples) per weight load of column_dot_4
COLUMN_BLOCKS = 4  # channel blocks at a time of column_dot_1x4
PAIR_LANES = 8  # output channels per 256-bit PMADDWD of the pair cores (AVX2)


def _column_dot_ir(pixels: int, blocks: int = 1, pairs: bool = False):  # type: ignore[no-untyped-def]
    """The column core's LLVM IR: for each block of COLUMN_LANES output channels, the window's
    bytes four at a time, each group broadcast to every lane and multiplied by the weight words of
    those channels with one 512-bit VPDPBUSD per pixel. VPDPBUSD takes unsigned times signed bytes,
    so the callers offset the input by 128 (x ^ 0x80) and each sum starts from its channel's
    -128 * sum(w) (or more: any per-channel constant the caller folds in). No horizontal sums.
    `blocks` channel blocks at a time: independent accumulator chains (one pixel would otherwise
    wait on each VPDPBUSD's latency).
    pairs: the same over an int16 window, two elements per word and PAIR_LANES channels per block,
    each word's pair of products added in its int32 lane (generic IR; x86 lowers it to PMADDWD)."""

    def generate(context, builder, signature, args):  # type: ignore[no-untyped-def]
        x = context.make_array(signature.args[0])(context, builder, args[0]).data
        words = context.make_array(signature.args[6])(context, builder, args[6]).data
        first = context.make_array(signature.args[9])(context, builder, args[9]).data
        out = context.make_array(signature.args[10])(context, builder, args[10]).data
        x_start, pixel_step, run_stride, run_len, runs = args[1:6]
        channels, count, out_start = args[7], args[8], args[11]
        i64, i32 = x_start.type, ir.IntType(32)
        # pairs: `sets` sets of `pixels` windows, set_step apart, each set's sums after the last's
        sets, set_step = (
            (args[12], args[13]) if pairs else (ir.Constant(i64, 1), ir.Constant(i64, 0))
        )
        lanes = PAIR_LANES if pairs else COLUMN_LANES
        lanes_t = ir.VectorType(i32, lanes)
        splat = ir.Constant(lanes_t, [ir.Constant(i32, 0)] * lanes)
        w_words = builder.bitcast(words, i32.as_pointer())
        per_word = 2 if pairs else 4  # window elements per word
        groups = builder.sdiv(run_len, ir.Constant(i64, per_word))
        if pairs:
            halves_t, wide_t = (
                ir.VectorType(ir.IntType(16), 2 * lanes),
                ir.VectorType(i32, 2 * lanes),
            )
            even = ir.Constant(lanes_t, [ir.Constant(i32, 2 * j) for j in range(lanes)])
            odd = ir.Constant(lanes_t, [ir.Constant(i32, 2 * j + 1) for j in range(lanes)])

            def dot(acc, u, w):  # type: ignore[no-untyped-def]
                product = builder.mul(
                    builder.sext(builder.bitcast(u, halves_t), wide_t), builder.sext(w, wide_t)
                )
                both = builder.add(
                    builder.shuffle_vector(product, product, even),
                    builder.shuffle_vector(product, product, odd),
                )
                return builder.add(acc, both)
        else:
            kind = ir.FunctionType(lanes_t, [lanes_t, lanes_t, lanes_t])
            vnni = cgutils.get_or_insert_function(
                builder.module, kind, "llvm.x86.avx512.vpdpbusd.512"
            )

            def dot(acc, u, w):  # type: ignore[no-untyped-def]
                return builder.call(vnni, [acc, u, w])

        def broadcast(word):  # type: ignore[no-untyped-def]
            one = builder.insert_element(ir.Constant(lanes_t, None), word, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(lanes_t, None), splat)

        def vector_at(pointer, index):  # type: ignore[no-untyped-def]
            return builder.load(
                builder.bitcast(builder.gep(pointer, [index]), lanes_t.as_pointer()), align=4
            )

        def weight_at(index):  # type: ignore[no-untyped-def]
            """The weights of `lanes` channels from channel index (of a row of words): VNNI's words,
            or the pair cores' int8 pairs (two bytes per channel, sign-extended when multiplied)."""
            if not pairs:
                return vector_at(w_words, index)
            pair_bytes = ir.VectorType(ir.IntType(8), 2 * lanes)
            byte = builder.gep(builder.bitcast(words, ir.IntType(8).as_pointer()), [builder.mul(index, ir.Constant(i64, 2))])  # fmt: skip
            return builder.load(builder.bitcast(byte, pair_bytes.as_pointer()), align=2)

        entry = builder.block
        block, pixel_set, start, step, next_run, store, next_block, done = _loop_blocks(
            builder,
            "column_dot",
            ("block", "set", "run", "step", "next_run", "store", "next_block", "done"),
            count,
            sets,
            runs,
            groups,
        )
        width = ir.Constant(i64, lanes * blocks)

        builder.position_at_end(block)
        o = builder.phi(i64)
        o.add_incoming(ir.Constant(i64, 0), entry)
        builder.branch(pixel_set)

        builder.position_at_end(
            pixel_set
        )  # the channel block's weights stay in cache over the sets
        q = builder.phi(i64)
        q.add_incoming(ir.Constant(i64, 0), block)
        set_start = builder.add(x_start, builder.mul(q, set_step))
        set_out = builder.add(
            out_start, builder.mul(q, builder.mul(channels, ir.Constant(i64, pixels)))
        )
        initial = [
            vector_at(first, builder.add(o, ir.Constant(i64, lanes * k)))
            for k in range(blocks)
            for _ in range(pixels)
        ]
        builder.branch(start)

        builder.position_at_end(start)
        run = builder.phi(i64)
        run.add_incoming(ir.Constant(i64, 0), pixel_set)
        run_sums = [builder.phi(lanes_t) for _ in initial]
        for v, value in zip(run_sums, initial):
            v.add_incoming(value, pixel_set)
        x_base = builder.add(set_start, builder.mul(run, run_stride))
        g_base = builder.mul(run, groups)
        builder.branch(step)

        builder.position_at_end(step)
        g = builder.phi(i64)
        g.add_incoming(ir.Constant(i64, 0), start)
        sums = [builder.phi(lanes_t) for _ in initial]
        for v, r in zip(sums, run_sums):
            v.add_incoming(r, start)
        byte = builder.add(x_base, builder.mul(g, ir.Constant(i64, per_word)))
        inputs = []
        for p in range(pixels):  # a window's word (four bytes, or two int16): unaligned, broadcast
            at = builder.add(byte, builder.mul(pixel_step, ir.Constant(i64, p)))
            pointer = builder.bitcast(builder.gep(x, [at]), i32.as_pointer())
            inputs.append(broadcast(builder.load(pointer, align=1)))
        w_at = builder.add(builder.mul(builder.add(g_base, g), channels), o)
        updated = []
        for k in range(blocks):
            w_vec = weight_at(builder.add(w_at, ir.Constant(i64, lanes * k)))
            mine = sums[k * pixels : (k + 1) * pixels]
            updated += [dot(a, u, w_vec) for a, u in zip(mine, inputs)]
        next_g = builder.add(g, ir.Constant(i64, 1))
        g.add_incoming(next_g, step)
        for v, u in zip(sums, updated):
            v.add_incoming(u, step)
        builder.cbranch(builder.icmp_signed("<", next_g, groups), step, next_run)

        builder.position_at_end(next_run)
        next_r = builder.add(run, ir.Constant(i64, 1))
        run.add_incoming(next_r, next_run)
        for v, u in zip(run_sums, updated):
            v.add_incoming(u, next_run)
        builder.cbranch(builder.icmp_signed("<", next_r, runs), start, store)

        builder.position_at_end(store)
        for k in range(blocks):
            for p in range(pixels):
                at = builder.add(builder.mul(channels, ir.Constant(i64, p)), o)
                at = builder.add(set_out, builder.add(at, ir.Constant(i64, lanes * k)))
                builder.store(
                    updated[k * pixels + p],
                    builder.bitcast(builder.gep(out, [at]), lanes_t.as_pointer()),
                    align=4,
                )
        next_q = builder.add(q, ir.Constant(i64, 1))
        q.add_incoming(next_q, store)
        builder.cbranch(builder.icmp_signed("<", next_q, sets), pixel_set, next_block)

        builder.position_at_end(next_block)
        next_o = builder.add(o, width)
        o.add_incoming(next_o, next_block)
        builder.cbranch(builder.icmp_signed("<", next_o, count), block, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return generate


def _column_dot_signature(pixels: int, blocks: int = 1):  # type: ignore[no-untyped-def]
    def typer(typingctx, x, x_start, pixel_step, run_stride, run_len, runs, words, channels, count, first, out, out_start):  # type: ignore[no-untyped-def]  # fmt: skip
        signature = types.void(x, x_start, pixel_step, run_stride, run_len, runs, words, channels, count, first, out, out_start)  # fmt: skip
        return signature, _column_dot_ir(pixels, blocks)

    return typer


def _pair_dot_signature(pixels: int, blocks: int):  # type: ignore[no-untyped-def]
    def typer(typingctx, x, x_start, pixel_step, run_stride, run_len, runs, words, channels, count, first, out, out_start, sets, set_step):  # type: ignore[no-untyped-def]  # fmt: skip
        signature = types.void(x, x_start, pixel_step, run_stride, run_len, runs, words, channels, count, first, out, out_start, sets, set_step)  # fmt: skip
        return signature, _column_dot_ir(pixels, blocks, pairs=True)

    return typer


@njit(cache=True, inline="always")
def column_groups(k):  # type: ignore[no-untyped-def]
    """Rows of words column_words holds for K elements: K / 4 rounded up to whole AMX tiles (so a
    tile's 16 rows are always there, zero past K)."""
    return -(-k // 64) * 16


def column_words(rows: np.ndarray, fold: np.ndarray | int = 0) -> np.ndarray:
    """Weight rows [O, K] as the column cores' int32 words [column_groups(K), O padded to
    COLUMN_LANES] (word (g, o) holds row o's elements 4g..4g+3, lowest byte first; zeros past K and
    past O), then each channel's starting sum: -(128 + fold) * sum(w) (fold: a zero point the kernel
    leaves in)."""
    oc, k = rows.shape
    padded = -(-oc // COLUMN_LANES) * COLUMN_LANES
    groups = column_groups(k)
    grid = np.zeros((padded, groups * 4), np.uint8)
    grid[:oc, :k] = rows.astype(np.int8).view(np.uint8)
    words = grid.reshape(padded, groups, 4).astype(np.int64)
    packed = words[..., 0] | words[..., 1] << 8 | words[..., 2] << 16 | words[..., 3] << 24
    first = np.zeros(padded, np.int64)
    first[:oc] = -(128 + np.asarray(fold, np.int64)) * rows.astype(np.int64).sum(axis=1)
    return np.concatenate([packed.T.astype(np.uint32).view(np.int32).reshape(-1), first])


register_table(
    "column_words",
    np.int32,
    "weights as words [K / 4, channels], then starting sums, for the AVX512-VNNI column cores; "
    "then as int8 pairs [K / 2, channels, 2] and starting sums, for the AVX2 pair cores",
    host_only=True,
)


# out[out_start + p * channels + o] = first[o] + the window of pixel p (bytes offset by 128) times
# the weights of channel o, for every o < count (a multiple of COLUMN_LANES * blocks; channels, the
# words' row length, a multiple of COLUMN_LANES) and p < pixels. The window is `runs` runs of
# `run_len` bytes (a multiple of 4), run j from x[x_start + p * pixel_step + j * run_stride]; the
# weights are int32 words [K / 4, channels], word (g, o) holding channel o's taps 4g..4g+3; `first`
# int32 per channel (-128 * sum(w) gives the signed dot product). AVX512-VNNI only; int32 sums; no
# bounds checks.
column_dot_4 = intrinsic(_column_dot_signature(4))
column_dot_1 = intrinsic(_column_dot_signature(1))
# one pixel, COLUMN_BLOCKS channel blocks at a time: channels a multiple of COLUMN_LANES * COLUMN_BLOCKS
column_dot_1x4 = intrinsic(_column_dot_signature(1, COLUMN_BLOCKS))


# the same over int16 windows, two elements per word and PAIR_LANES channels per block (the AVX2
# cores: PMADDWD, 16 products per instruction). Int8 pairs [K / 2, channels, 2] packed in words,
# from pair_words (the word index counts pairs here: channel o of pair row g is pair g * channels
# + o); `first` the
# per-channel starting sums; channels a multiple of PAIR_LANES times the blocks. `sets` sets of
# `pixels` windows, set_step elements apart, the sums of set q from out[out_start + q * pixels *
# channels]: each block of channels runs over every set while its weights are in cache.
pair_dot_4x2 = intrinsic(_pair_dot_signature(4, 2))
pair_dot_4 = intrinsic(_pair_dot_signature(4, 1))
pair_dot_8 = intrinsic(_pair_dot_signature(8, 1))  # one block of channels: eight chains
pair_dot_1x4 = intrinsic(_pair_dot_signature(1, 4))
pair_dot_1x8 = intrinsic(_pair_dot_signature(1, 8))  # eight chains: PMADDWD's latency hidden
pair_dot_1 = intrinsic(_pair_dot_signature(1, 1))
PAIR_PIXELS = 4  # windows per weight load of pair_dot_4x2


@njit(cache=True, inline="always")
def pair_dots(x, x_start, pixel_step, run_stride, run_len, runs, pixels, words, channels, first, out, out_start):  # type: ignore[no-untyped-def]  # fmt: skip
    """The sums of `pixels` windows (int16, from x[x_start + p * pixel_step], `runs` runs of
    `run_len` elements, an even count, run_stride apart) over all `channels` (a multiple of
    PAIR_LANES), pixel p's at out[out_start + p * channels]: sets of PAIR_PIXELS windows per weight
    load, two blocks at a time (a last single block eight windows at a time); the windows left
    over each on its own, eight or four blocks at a time (independent chains); the rest block by
    block."""
    sets = pixels // PAIR_PIXELS
    step = PAIR_PIXELS * pixel_step
    wide = channels - channels % (2 * PAIR_LANES)
    if sets and wide:
        pair_dot_4x2(x, x_start, pixel_step, run_stride, run_len, runs, words, channels, wide, first, out, out_start, sets, step)  # fmt: skip
    if sets and wide < channels:  # one block left: eight windows at a time, then four
        tail_words, tail_first, tail_out = words[wide // 2 :], first[wide:], out_start + wide
        eights = pixels // (2 * PAIR_PIXELS)
        if eights:
            pair_dot_8(x, x_start, pixel_step, run_stride, run_len, runs, tail_words, channels, PAIR_LANES, tail_first, out, tail_out, eights, 2 * step)  # fmt: skip
        if sets % 2:
            at, o_at = x_start + 2 * eights * step, tail_out + 2 * eights * PAIR_PIXELS * channels
            pair_dot_4(x, at, pixel_step, run_stride, run_len, runs, tail_words, channels, PAIR_LANES, tail_first, out, o_at, 1, step)  # fmt: skip
    done = sets * PAIR_PIXELS
    if done == pixels:
        return
    start, at = x_start + done * pixel_step, out_start + done * channels
    left = pixels - done
    widest = channels - channels % (8 * PAIR_LANES)
    if widest:
        pair_dot_1x8(x, start, 0, run_stride, run_len, runs, words, channels, widest, first, out, at, left, pixel_step)  # fmt: skip
    wide = widest + (channels - widest) // (4 * PAIR_LANES) * 4 * PAIR_LANES
    if wide > widest:
        pair_dot_1x4(x, start, 0, run_stride, run_len, runs, words[widest // 2 :], channels, wide - widest, first[widest:], out, at + widest, left, pixel_step)  # fmt: skip
    if wide < channels:
        pair_dot_1(x, start, 0, run_stride, run_len, runs, words[wide // 2 :], channels, channels - wide, first[wide:], out, at + wide, left, pixel_step)  # fmt: skip


@njit(cache=True, inline="always")
def column_size(k, channels):  # type: ignore[no-untyped-def]
    """Words column_words holds for K elements and `channels` outputs: where a layer's pair_words
    follow in the column_words table."""
    return (column_groups(k) + 1) * -(-channels // COLUMN_LANES) * COLUMN_LANES


def pair_words(rows: np.ndarray, fold: np.ndarray | int = 0) -> np.ndarray:
    """Weight rows [O, K] as the pair cores' int8 pairs [K / 2 rounded up, O padded to PAIR_LANES,
    2] (pair (g, o) holds row o's elements 2g and 2g + 1; zeros past K and past O), packed in int32
    words (two channels' pairs each, lowest byte first), then each channel's starting sum:
    -fold * sum(w) (fold: a zero point the kernel leaves in)."""
    oc, k = rows.shape
    padded = -(-oc // PAIR_LANES) * PAIR_LANES
    grid = np.zeros((padded, k + k % 2), np.int8)
    grid[:oc, :k] = rows
    pairs = np.ascontiguousarray(grid.reshape(padded, -1, 2).transpose(1, 0, 2))
    first = np.zeros(padded, np.int64)
    first[:oc] = -np.asarray(fold, np.int64) * rows.astype(np.int64).sum(axis=1)
    return np.concatenate([pairs.reshape(-1).view(np.int32).astype(np.int64), first])


@njit(cache=True, inline="always")
def pair_sizes(k, channels):  # type: ignore[no-untyped-def]
    """The pair words' channels (padded to PAIR_LANES) and their count in words (int8 pairs,
    two channels per word) for K elements."""
    padded = -(-channels // PAIR_LANES) * PAIR_LANES
    return padded, (k + k % 2) // 2 * padded // 2


@njit(cache=True, inline="always")
def flip_bytes(buffer, start, count):  # type: ignore[no-untyped-def]
    """buffer[start : start + count] ^= 0x80 (int8): x + 128 as the unsigned byte VPDPBUSD reads."""
    view = buffer[start : start + count]
    for i in range(count):
        view[i] = view[i] ^ np.int8(-128)


@njit(cache=True, inline="always")
def column_dot_single(
    x, x_start, run_stride, run_len, runs, words, channels, first, out, out_start
):  # type: ignore[no-untyped-def]
    """One pixel's column_dot over all `channels` (a multiple of COLUMN_LANES): groups of
    COLUMN_BLOCKS blocks on column_dot_1x4 (independent chains), the rest block by block."""
    wide = channels - channels % (COLUMN_LANES * COLUMN_BLOCKS)
    if wide:
        column_dot_1x4(x, x_start, 0, run_stride, run_len, runs, words, channels, wide, first, out, out_start)  # fmt: skip
    if wide < channels:
        column_dot_1(x, x_start, 0, run_stride, run_len, runs, words[wide // 2 :], channels, channels - wide, first[wide:], out, out_start + wide)  # fmt: skip


@njit(cache=True, inline="always")
def dot_rows(vector, weights, offset, k, rows, out, dot_1x8, dot_1x4):  # type: ignore[no-untyped-def]
    """out[o] = sum_i vector[i] * weights[offset + o*k + i] for o < rows (int32 sums), the blocks
    by the cores given (block_dot_1x8 and block_dot_1x4, or their _vnni forms)."""
    body = k - k % LANES
    o = 0
    while o + 2 * ROWS <= rows and body == k:
        dot_1x8(vector, 0, 0, 0, k, 1, weights, offset + o * k, k, out, o, 0)
        o += 2 * ROWS
    while o + ROWS <= rows:
        base = offset + o * k
        dot_1x4(vector, 0, 0, 0, body, 1, weights, base, k, out, o, 0)
        for r in range(ROWS if body < k else 0):  # the last k % LANES elements
            a = np.int32(out[o + r])
            for i in range(body, k):
                a = np.int32(a + np.int32(vector[i]) * np.int32(weights[base + r * k + i]))
            out[o + r] = a
        o += ROWS
    while o < rows:
        w = weights[offset + o * k : offset + o * k + k]
        a = np.int32(0)
        for i in range(k):
            a = np.int32(a + np.int32(vector[i]) * np.int32(w[i]))
        out[o] = a
        o += 1


OUTER_LANES = 8  # output channels per vector step of pair_outer


def _pair_outer_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    taps = context.make_array(signature.args[0])(context, builder, args[0]).data
    weights = context.make_array(signature.args[2])(context, builder, args[2]).data
    out = context.make_array(signature.args[4])(context, builder, args[4]).data
    pairs, channels = args[1], args[3]
    i64, i32, i16 = pairs.type, ir.IntType(32), ir.IntType(16)
    halves_t, wide_t = ir.VectorType(i16, 2 * OUTER_LANES), ir.VectorType(i32, 2 * OUTER_LANES)
    sums_t, zero = (
        ir.VectorType(i32, OUTER_LANES),
        ir.Constant(ir.VectorType(i32, OUTER_LANES), None),
    )
    splat_mask = ir.Constant(sums_t, [ir.Constant(i32, 0)] * OUTER_LANES)
    body = builder.mul(
        builder.sdiv(channels, ir.Constant(i64, OUTER_LANES)), ir.Constant(i64, OUTER_LANES)
    )
    entry = builder.block
    block, step, store, done = _loop_blocks(
        builder, "pair_outer", ("block", "step", "store", "done"), body, pairs
    )

    builder.position_at_end(block)
    o = builder.phi(i64)
    o.add_incoming(ir.Constant(i64, 0), entry)
    builder.branch(step)

    builder.position_at_end(step)
    j = builder.phi(i64)
    j.add_incoming(ir.Constant(i64, 0), block)
    total = builder.phi(sums_t)
    total.add_incoming(zero, block)
    # the pair of taps j, as one int32 spread over all lanes: (tap 2j, tap 2j + 1) in every lane pair
    pair = builder.load(builder.gep(taps, [j]), align=4)
    spread = builder.shuffle_vector(
        builder.insert_element(ir.Constant(sums_t, None), pair, ir.Constant(i32, 0)),
        ir.Constant(sums_t, None),
        splat_mask,
    )
    x = builder.sext(builder.bitcast(spread, halves_t), wide_t)
    at = builder.mul(builder.add(builder.mul(j, channels), o), ir.Constant(i64, 2))
    w = builder.load(builder.bitcast(builder.gep(weights, [at]), halves_t.as_pointer()), align=2)
    updated = builder.add(total, _pair_sums(builder, x, builder.sext(w, wide_t)))
    next_j = builder.add(j, ir.Constant(i64, 1))
    j.add_incoming(next_j, step)
    total.add_incoming(updated, step)
    builder.cbranch(builder.icmp_signed("<", next_j, pairs), step, store)

    builder.position_at_end(store)
    builder.store(updated, builder.bitcast(builder.gep(out, [o]), sums_t.as_pointer()), align=4)
    next_o = builder.add(o, ir.Constant(i64, OUTER_LANES))
    o.add_incoming(next_o, store)
    builder.cbranch(builder.icmp_signed("<", next_o, body), block, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def pair_outer(typingctx, taps, pairs, weights, channels, out):  # type: ignore[no-untyped-def]
    """out[o] = sum_{t < 2 * pairs} tap t * weights[(t // 2 * channels + o) * 2 + t % 2] for o below
    the largest multiple of OUTER_LANES <= channels: int16 taps packed in pairs as int32 words (tap 2j
    in the low half of taps[j]; written as whole words so loads forward from the stores), weights
    int16 interleaved by tap pair, int32 sums (PMADDWD on a broadcast tap pair). No bounds checks."""
    return types.void(taps, pairs, weights, channels, out), _pair_outer_ir


TAP_LANES = 16  # int32 sums per step of pair_sums (each from a pair of int16 products)


def _pair_sums_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    pairs = context.make_array(signature.args[0])(context, builder, args[0]).data
    offsets = context.make_array(signature.args[2])(context, builder, args[2]).data
    tiled = context.make_array(signature.args[4])(context, builder, args[4]).data
    out = context.make_array(signature.args[6])(context, builder, args[6]).data
    base, taps, lanes, count = args[1], args[3], args[5], args[7]
    i64, i32 = base.type, ir.IntType(32)
    halves_t = ir.VectorType(ir.IntType(16), 2 * TAP_LANES)
    wide_t, sums_t = ir.VectorType(i32, 2 * TAP_LANES), ir.VectorType(i32, TAP_LANES)
    even = ir.Constant(sums_t, [ir.Constant(i32, 2 * j) for j in range(TAP_LANES)])
    odd = ir.Constant(sums_t, [ir.Constant(i32, 2 * j + 1) for j in range(TAP_LANES)])
    two = ir.Constant(i64, 2)
    entry = builder.block
    block, step, store, done = _loop_blocks(
        builder, "pair_sums", ("block", "step", "store", "done"), count, taps
    )

    def load(pointer, index):  # type: ignore[no-untyped-def]
        at = builder.gep(pointer, [builder.mul(index, two)])
        raw = builder.load(builder.bitcast(at, halves_t.as_pointer()), align=2)
        return builder.sext(raw, wide_t)

    builder.position_at_end(block)
    i = builder.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    builder.branch(step)

    builder.position_at_end(step)  # the sums stay in registers across the tap pairs
    t = builder.phi(i64)
    t.add_incoming(ir.Constant(i64, 0), block)
    total = builder.phi(sums_t)
    total.add_incoming(ir.Constant(sums_t, None), block)
    offset = builder.sext(builder.load(builder.gep(offsets, [t]), align=4), i64)
    x = load(pairs, builder.add(builder.add(base, offset), i))
    w = load(tiled, builder.add(builder.mul(t, lanes), i))
    product = builder.mul(x, w)  # the two taps of each lane side by side, added: PMADDWD on x86
    both = builder.add(
        builder.shuffle_vector(product, product, even),
        builder.shuffle_vector(product, product, odd),
    )
    updated = builder.add(total, both)
    next_t = builder.add(t, ir.Constant(i64, 1))
    t.add_incoming(next_t, step)
    total.add_incoming(updated, step)
    builder.cbranch(builder.icmp_signed("<", next_t, taps), step, store)

    builder.position_at_end(store)
    builder.store(updated, builder.bitcast(builder.gep(out, [i]), sums_t.as_pointer()), align=4)
    next_i = builder.add(i, ir.Constant(i64, TAP_LANES))
    i.add_incoming(next_i, store)
    builder.cbranch(builder.icmp_signed("<", next_i, count), block, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def pair_sums(typingctx, pairs, base, offsets, taps, tiled, lanes, out, count):  # type: ignore[no-untyped-def]
    """out[i] = sum over t < taps, h < 2 of pairs[2 (base + offsets[t] + i) + h] *
    tiled[2 (t lanes + i) + h] for i below count (a multiple of TAP_LANES), TAP_LANES at a time: the
    image and the tiled weights int16, two taps per lane side by side (depthwise convolution, taps
    in pairs); int32 offsets and sums, each block's sums in registers over all tap pairs. No bounds
    checks."""
    return types.void(pairs, base, offsets, taps, tiled, lanes, out, count), _pair_sums_ir


def _tap_rows_ir(unroll: int):  # type: ignore[no-untyped-def]
    """tap_rows' IR, `unroll` pixels per weight load (pixels a multiple of it)."""

    def generate(context, builder, signature, args):  # type: ignore[no-untyped-def]
        image = context.make_array(signature.args[0])(context, builder, args[0]).data
        offsets = context.make_array(signature.args[3])(context, builder, args[3]).data
        weights = context.make_array(signature.args[5])(context, builder, args[5]).data
        first = context.make_array(signature.args[7])(context, builder, args[7]).data
        out = context.make_array(signature.args[8])(context, builder, args[8]).data
        base, pixel_step, taps, channels, pixels = args[1], args[2], args[4], args[6], args[9]
        i64, i32 = base.type, ir.IntType(32)
        bytes_t = ir.VectorType(ir.IntType(8), PAIR_LANES)
        halves_t = ir.VectorType(ir.IntType(16), PAIR_LANES)
        sums_t = ir.VectorType(i32, PAIR_LANES)
        entry = builder.block
        block, pixel, tap, store, next_block, done = _loop_blocks(
            builder,
            "tap_rows",
            ("block", "pixel", "tap", "store", "next_block", "done"),
            channels,
            pixels,
            taps,
        )

        def vector(pointer, index, kind, align):  # type: ignore[no-untyped-def]
            at = builder.bitcast(builder.gep(pointer, [index]), kind.as_pointer())
            return builder.load(at, align=align)

        builder.position_at_end(block)
        o = builder.phi(i64)
        o.add_incoming(ir.Constant(i64, 0), entry)
        start = vector(first, o, sums_t, 4)
        builder.branch(pixel)

        builder.position_at_end(pixel)
        p = builder.phi(i64)
        p.add_incoming(ir.Constant(i64, 0), block)
        corner = builder.add(builder.add(base, builder.mul(p, pixel_step)), o)
        builder.branch(tap)

        builder.position_at_end(tap)
        t = builder.phi(i64)
        t.add_incoming(ir.Constant(i64, 0), pixel)
        totals = [builder.phi(sums_t) for _ in range(unroll)]
        for total in totals:
            total.add_incoming(start, pixel)
        offset = builder.sext(builder.load(builder.gep(offsets, [t]), align=4), i64)
        at = builder.add(corner, offset)
        w_at = builder.add(builder.mul(t, channels), o)
        w = builder.sext(vector(weights, w_at, halves_t, 2), sums_t)
        updated = []
        for u, total in enumerate(totals):
            here = builder.add(at, builder.mul(pixel_step, ir.Constant(i64, u)))
            x = builder.sext(vector(image, here, bytes_t, 1), sums_t)
            updated.append(builder.add(total, builder.mul(x, w)))
        next_t = builder.add(t, ir.Constant(i64, 1))
        t.add_incoming(next_t, tap)
        for total, value in zip(totals, updated):
            total.add_incoming(value, tap)
        builder.cbranch(builder.icmp_signed("<", next_t, taps), tap, store)

        builder.position_at_end(store)
        for u, value in enumerate(updated):
            at = builder.add(builder.mul(builder.add(p, ir.Constant(i64, u)), channels), o)
            target = builder.bitcast(builder.gep(out, [at]), sums_t.as_pointer())
            builder.store(value, target, align=4)
        next_p = builder.add(p, ir.Constant(i64, unroll))
        p.add_incoming(next_p, store)
        builder.cbranch(builder.icmp_signed("<", next_p, pixels), pixel, next_block)

        builder.position_at_end(next_block)
        next_o = builder.add(o, ir.Constant(i64, PAIR_LANES))
        o.add_incoming(next_o, next_block)
        builder.cbranch(builder.icmp_signed("<", next_o, channels), block, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return generate


def _tap_rows_signature(unroll: int):  # type: ignore[no-untyped-def]
    def typer(typingctx, image, base, pixel_step, offsets, taps, weights, channels, first, out, pixels):  # type: ignore[no-untyped-def]  # fmt: skip
        signature = types.void(image, base, pixel_step, offsets, taps, weights, channels, first, out, pixels)  # fmt: skip
        return signature, _tap_rows_ir(unroll)

    return typer


# out[p * channels + o] = first[o] + sum over t < taps of image[base + p * pixel_step + offsets[t] +
# o] * weights[t * channels + o] for p < pixels and o < channels (a multiple of PAIR_LANES),
# PAIR_LANES channels at a time: int8 image, int16 weights, int32 offsets and sums (depthwise
# convolution straight from int8: one tap's channels are contiguous). tap_rows_8 and tap_rows_4:
# eight or four pixels per weight load (pixels a multiple of that). No bounds checks.
tap_rows_8 = intrinsic(_tap_rows_signature(8))
tap_rows_4 = intrinsic(_tap_rows_signature(4))
tap_rows_1 = intrinsic(_tap_rows_signature(1))


@njit(cache=True, inline="always")
def tap_rows(image, base, pixel_step, offsets, taps, weights, channels, first, out, pixels):  # type: ignore[no-untyped-def]
    """tap_rows_8 over the whole sets of eight pixels (eight independent chains), tap_rows_4 over
    a set of four left, tap_rows_1 over the rest."""
    eights = pixels - pixels % 8
    if eights:
        tap_rows_8(image, base, pixel_step, offsets, taps, weights, channels, first, out, eights)
    body = pixels - pixels % 4
    if body > eights:
        rest = out[eights * channels :]
        tap_rows_4(image, base + eights * pixel_step, pixel_step, offsets, taps, weights, channels, first, rest, 4)  # fmt: skip
    if body < pixels:
        rest = out[body * channels :]
        tap_rows_1(image, base + body * pixel_step, pixel_step, offsets, taps, weights, channels, first, rest, pixels - body)  # fmt: skip


def _interleave_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    dst = context.make_array(signature.args[0])(context, builder, args[0]).data
    src = context.make_array(signature.args[1])(context, builder, args[1]).data
    partner, count = args[2], args[3]
    i64, i32 = partner.type, ir.IntType(32)
    halves_t = ir.VectorType(ir.IntType(16), TAP_LANES)
    both_t = ir.VectorType(ir.IntType(16), 2 * TAP_LANES)
    zipped = [j // 2 + (j % 2) * TAP_LANES for j in range(2 * TAP_LANES)]
    mask = ir.Constant(ir.VectorType(i32, 2 * TAP_LANES), [ir.Constant(i32, j) for j in zipped])
    entry = builder.block
    step, done = _loop_blocks(builder, "interleave", ("step", "done"), count)
    builder.position_at_end(step)
    j = builder.phi(i64)
    j.add_incoming(ir.Constant(i64, 0), entry)

    def load(index):  # type: ignore[no-untyped-def]
        at = builder.bitcast(builder.gep(src, [index]), halves_t.as_pointer())
        return builder.load(at, align=2)

    pair = builder.shuffle_vector(load(j), load(builder.add(j, partner)), mask)
    at = builder.gep(dst, [builder.mul(j, ir.Constant(i64, 2))])
    builder.store(pair, builder.bitcast(at, both_t.as_pointer()), align=2)
    next_j = builder.add(j, ir.Constant(i64, TAP_LANES))
    j.add_incoming(next_j, step)
    builder.cbranch(builder.icmp_signed("<", next_j, count), step, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def interleave_partners(typingctx, dst, src, partner, count):  # type: ignore[no-untyped-def]
    """dst[2 j] = src[j] and dst[2 j + 1] = src[j + partner] for j below count (a multiple of
    TAP_LANES), int16, TAP_LANES at a time. No bounds checks."""
    return types.void(dst, src, partner, count), _interleave_ir


def _copy_runs_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    dst = _bytes_at(context, builder, signature.args[0], args[0], args[1])
    src = _bytes_at(context, builder, signature.args[2], args[2], args[3])
    words, runs, src_stride = args[4], args[5], args[6]
    i64, word_t = words.type, ir.IntType(32).as_pointer()
    entry = builder.block
    run_block, step, next_run, done = _loop_blocks(
        builder, "copy_runs", ("run", "step", "next_run", "done"), runs, words
    )
    builder.position_at_end(run_block)
    r = builder.phi(i64)
    r.add_incoming(ir.Constant(i64, 0), entry)
    builder.branch(step)
    builder.position_at_end(step)
    j = builder.phi(i64)
    j.add_incoming(ir.Constant(i64, 0), run_block)
    four = ir.Constant(i64, 4)
    to = builder.gep(dst, [builder.mul(builder.add(builder.mul(r, words), j), four)])
    source = builder.gep(src, [builder.add(builder.mul(r, src_stride), builder.mul(j, four))])
    value = builder.load(builder.bitcast(source, word_t), align=1)
    builder.store(value, builder.bitcast(to, word_t), align=1)
    next_j = builder.add(j, ir.Constant(i64, 1))
    j.add_incoming(next_j, step)
    builder.cbranch(builder.icmp_signed("<", next_j, words), step, next_run)
    builder.position_at_end(next_run)
    following = builder.add(r, ir.Constant(i64, 1))
    r.add_incoming(following, next_run)
    builder.cbranch(builder.icmp_signed("<", following, runs), run_block, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def copy_runs(typingctx, dst, dst_start, src, src_start, words, runs, src_stride):  # type: ignore[no-untyped-def]
    """`runs` runs of `words` 4-byte words, run r from src[src_start + r * src_stride] (bytes), one
    after another into dst from dst_start (int8 arrays that do not overlap there; no alignment
    needed): a window of short runs without a call per run. No bounds checks."""
    return types.void(dst, dst_start, src, src_start, words, runs, src_stride), _copy_runs_ir


def _bytes_at(context, builder, array_type, array, index):  # type: ignore[no-untyped-def]
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [index])


@intrinsic
def copy_bytes(typingctx, dst, dst_start, src, src_start, count):  # type: ignore[no-untyped-def]
    """dst[dst_start : dst_start + count] = src[src_start : src_start + count] for int8 arrays that do
    not overlap there (llvm.memcpy; Numba's slice assignment checks for overlap element by element)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        target = _bytes_at(context, builder, signature.args[0], args[0], args[1])
        source = _bytes_at(context, builder, signature.args[2], args[2], args[3])
        builder.call(
            builder.module.declare_intrinsic(
                "llvm.memcpy", [target.type, source.type, args[4].type]
            ),
            [target, source, args[4], ir.Constant(ir.IntType(1), 0)],
        )
        return context.get_dummy_value()

    return types.void(dst, dst_start, src, src_start, count), codegen


def _widen_ir(context, builder, signature, args):  # type: ignore[no-untyped-def]
    dst = context.make_array(signature.args[0])(context, builder, args[0]).data
    dst = builder.gep(dst, [args[1]])
    src = _bytes_at(context, builder, signature.args[2], args[2], args[3])
    count = args[4]
    i64 = count.type
    bytes_t, halves_t = ir.VectorType(ir.IntType(8), LANES), ir.VectorType(ir.IntType(16), LANES)
    body = builder.mul(builder.sdiv(count, ir.Constant(i64, LANES)), ir.Constant(i64, LANES))
    entry = builder.block
    step, tail_check = _loop_blocks(builder, "widen", ("step", "tail_check"), body)
    builder.position_at_end(step)
    j = builder.phi(i64)
    j.add_incoming(ir.Constant(i64, 0), entry)
    raw = builder.load(builder.bitcast(builder.gep(src, [j]), bytes_t.as_pointer()), align=1)
    target = builder.bitcast(builder.gep(dst, [j]), halves_t.as_pointer())
    builder.store(builder.sext(raw, halves_t), target, align=2)
    next_j = builder.add(j, ir.Constant(i64, LANES))
    j.add_incoming(next_j, step)
    builder.cbranch(builder.icmp_signed("<", next_j, body), step, tail_check)
    builder.position_at_end(tail_check)  # the last count % LANES elements one at a time
    tail, done = (builder.append_basic_block(f"widen.{n}") for n in ("tail", "done"))
    builder.cbranch(builder.icmp_signed("<", body, count), tail, done)
    builder.position_at_end(tail)
    t = builder.phi(i64)
    t.add_incoming(body, tail_check)
    value = builder.sext(builder.load(builder.gep(src, [t])), ir.IntType(16))
    builder.store(value, builder.gep(dst, [t]))
    next_t = builder.add(t, ir.Constant(i64, 1))
    t.add_incoming(next_t, tail)
    builder.cbranch(builder.icmp_signed("<", next_t, count), tail, done)
    builder.position_at_end(done)
    return context.get_dummy_value()


@intrinsic
def widen_bytes(typingctx, dst, dst_start, src, src_start, count):  # type: ignore[no-untyped-def]
    """dst[dst_start + i] = src[src_start + i] for i below count: int8 sign-extended into an int16
    array, LANES at a time (the arrays do not overlap there). No bounds checks."""
    return types.void(dst, dst_start, src, src_start, count), _widen_ir


@intrinsic
def fill_bytes(typingctx, dst, dst_start, count, value):  # type: ignore[no-untyped-def]
    """dst[dst_start : dst_start + count] = value for an int8 array (llvm.memset)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        target = _bytes_at(context, builder, signature.args[0], args[0], args[1])
        builder.call(
            builder.module.declare_intrinsic("llvm.memset", [target.type, args[2].type]),
            [target, builder.trunc(args[3], ir.IntType(8)), args[2], ir.Constant(ir.IntType(1), 0)],
        )
        return context.get_dummy_value()

    return types.void(dst, dst_start, count, value), codegen


RQ_LANES = 8  # outputs per vector step of the requantization


def _requantize_ir_for(lanes: int):  # type: ignore[no-untyped-def]
    """The requantization IR with `lanes` outputs per vector step."""

    def generate(context, builder, signature, args):  # type: ignore[no-untyped-def]
        arrays = [
            context.make_array(signature.args[i])(context, builder, args[i]).data for i in range(4)
        ]
        out = context.make_array(signature.args[10])(context, builder, args[10]).data
        channels, length, pixels, zp_out, lo, hi = args[4:10]
        acc_step = args[11]  # the accumulators' step from one pixel to the next
        i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
        v64, v32, v8 = (ir.VectorType(t, lanes) for t in (i64, i32, i8))

        def splat(vector_type, value):  # type: ignore[no-untyped-def]
            if isinstance(value, int):
                element = ir.Constant(vector_type.element, value)
                return ir.Constant(vector_type, [element] * vector_type.count)
            undef = ir.Constant(vector_type, None)
            one = builder.insert_element(undef, value, ir.Constant(i32, 0))
            return builder.shuffle_vector(
                one, undef, ir.Constant(v32, [ir.Constant(i32, 0)] * lanes)
            )

        def load(pointer, vector_type, index):  # type: ignore[no-untyped-def]
            return builder.load(
                builder.bitcast(builder.gep(pointer, [index]), vector_type.as_pointer()), align=1
            )

        pairs = ir.VectorType(i64, lanes // 2)

        odd_down = ir.Constant(v32, [ir.Constant(i32, j | 1) for j in range(lanes)])

        def in_pairs(vector):  # type: ignore[no-untyped-def]
            """An int32 vector's even and odd lanes, each sign-extended in an i64 lane from the low
            half (the odd lanes moved down first): the form PMULDQ reads, with no 64-bit
            arithmetic shift (which AVX2 lacks)."""
            thirty_two = splat(pairs, 32)

            def low_extended(v):  # type: ignore[no-untyped-def]
                wide = builder.bitcast(v, pairs)
                return builder.ashr(builder.shl(wide, thirty_two), thirty_two)

            odd = builder.shuffle_vector(vector, ir.Constant(v32, None), odd_down)
            return low_extended(vector), low_extended(odd)

        def select_max(a, b):  # type: ignore[no-untyped-def]
            return builder.select(builder.icmp_signed(">", a, b), a, b)

        def select_min(a, b):  # type: ignore[no-untyped-def]
            return builder.select(builder.icmp_signed("<", a, b), a, b)

        zp32, lo32, hi32 = (splat(v32, builder.trunc(v, i32)) for v in (zp_out, lo, hi))
        # channel steps outside, pixels inside: a step's parameters are prepared once for every pixel
        entry = builder.block
        block, loop, next_block, done = _loop_blocks(
            builder, "requantize", ("channels", "pixels", "next_channels", "done"), length, pixels
        )

        builder.position_at_end(block)
        i = builder.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        bias = load(arrays[1], v32, i)
        # the multipliers of the even lanes and of the odd lanes, each sign-extended in an i64 lane:
        # the products below then multiply i64 lanes holding int32 values (x86: PMULDQ), with no
        # shuffle to widen the sums' halves
        multiplier = builder.trunc(load(arrays[2], v64, i), v32)
        m_even, m_odd = in_pairs(multiplier)
        shift = builder.trunc(load(arrays[3], v64, i), v32)
        left = select_min(select_max(shift, splat(v32, 0)), splat(v32, 31))
        right = select_max(builder.neg(shift), splat(v32, 0))
        mask = builder.sub(builder.shl(splat(v32, 1), right), splat(v32, 1))
        half = builder.ashr(mask, splat(v32, 1))
        builder.branch(loop)

        builder.position_at_end(loop)
        at = builder.phi(i64)
        at.add_incoming(i, block)
        acc_at = builder.phi(i64)
        acc_at.add_incoming(i, block)
        # x * 2^left in int32 arithmetic (wrapping), as TFLite's kernels and the generated C compute it.
        # SRDHM: (p + nudge) / 2^31 truncated toward zero equals floor((p + 2^30) / 2^31) for every p,
        # and fits int32 (|p| < 2^62), so its low 32 bits come from a logical shift as well
        total = builder.shl(builder.add(load(arrays[0], v32, acc_at), bias), left)
        t_even, t_odd = in_pairs(total)
        nudge = splat(pairs, 1 << 30)
        # bits 31..62 of each nudged product: an even lane's into the low half of its i64 lane, an
        # odd lane's into the high half, so the halves interleave back into int32 lanes in place
        even = builder.lshr(builder.add(builder.mul(t_even, m_even), nudge), splat(pairs, 31))
        odd = builder.shl(builder.add(builder.mul(t_odd, m_odd), nudge), splat(pairs, 1))
        low_half = splat(pairs, 0xFFFFFFFF)
        merged = builder.or_(
            builder.and_(even, low_half), builder.and_(odd, builder.not_(low_half))
        )
        high = builder.bitcast(merged, v32)
        threshold = builder.add(
            half, builder.zext(builder.icmp_signed("<", high, splat(v32, 0)), v32)
        )
        rounded = builder.add(
            builder.ashr(high, right),
            builder.zext(builder.icmp_signed(">", builder.and_(high, mask), threshold), v32),
        )
        # a value this far out clamps to lo or hi with or without the zero point (which must not overflow)
        rounded = select_min(select_max(rounded, splat(v32, -(1 << 24))), splat(v32, 1 << 24))
        value = select_min(select_max(builder.add(rounded, zp32), lo32), hi32)
        builder.store(
            builder.trunc(value, v8),
            builder.bitcast(builder.gep(out, [at]), v8.as_pointer()),
            align=1,
        )
        next_at = builder.add(at, channels)
        at.add_incoming(next_at, loop)
        acc_at.add_incoming(builder.add(acc_at, acc_step), loop)
        end = builder.add(i, builder.mul(pixels, channels))
        builder.cbranch(builder.icmp_signed("<", next_at, end), loop, next_block)

        builder.position_at_end(next_block)
        following = builder.add(i, ir.Constant(i64, lanes))
        i.add_incoming(following, next_block)
        builder.cbranch(builder.icmp_signed("<", following, length), block, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return generate


@intrinsic
def requantize_vector(  # type: ignore[no-untyped-def]
    typingctx, acc, biases, mults, shifts, channels, length, pixels, zp_out, lo, hi, out, acc_step
):
    """The double-rounding requantize_channels over `pixels` pixels of `channels` outputs each, the
    first `length` channels of each (a multiple of RQ_LANES), RQ_LANES at a time: int32 acc and biases,
    int64 mults and shifts (per channel), int8 out. The same integer steps, in int32 lanes where they
    fit; pixel p's sums start at acc[p * acc_step]. No bounds checks."""
    signature = types.void(
        acc, biases, mults, shifts, channels, length, pixels, zp_out, lo, hi, out, acc_step
    )
    return signature, _requantize_ir_for(RQ_LANES)


@intrinsic
def requantize_vector_wide(  # type: ignore[no-untyped-def]
    typingctx, acc, biases, mults, shifts, channels, length, pixels, zp_out, lo, hi, out, acc_step
):
    """requantize_vector with 2 * RQ_LANES outputs per step (`length` a multiple of that): on
    512-bit vectors about 1.3x the outputs per second."""
    signature = types.void(
        acc, biases, mults, shifts, channels, length, pixels, zp_out, lo, hi, out, acc_step
    )
    return signature, _requantize_ir_for(2 * RQ_LANES)


@njit(cache=True, inline="always")
def requantize_channels(acc, biases, mults, shifts, rounding, zp_out, lo, hi, out):  # type: ignore[no-untyped-def]
    """out[p * n + o] = clamp(MBQM(acc[p * n + o] + biases[o], mults[o], shifts[o]) + zp_out, lo, hi)
    for the n = len(biases) channels of each of the len(out) / n pixels (or samples) in a row.
    Multipliers are non-negative (never INT32_MIN), so SRDHM's one saturating case cannot occur."""
    requantize_rows(acc, biases.shape[0], biases, mults, shifts, rounding, zp_out, lo, hi, out)


@njit(cache=True, inline="always")
def requantize_rows(acc, step, biases, mults, shifts, rounding, zp_out, lo, hi, out):  # type: ignore[no-untyped-def]
    """requantize_channels with pixel p's sums at acc[p * step:] (step >= n: sums padded to whole
    vector blocks need no compaction first)."""
    n = biases.shape[0]
    pixels = out.shape[0] // n
    if rounding == 1:  # single rounding: one rounding shift of the 64-bit product
        for p in range(pixels):
            for o in range(n):
                total = 31 - shifts[o]
                a = np.int64(acc[p * step + o] + biases[o])
                v = (a * mults[o] + (np.int64(1) << (total - 1))) >> total
                out[p * n + o] = min(max(v + zp_out, lo), hi)
        return
    wide = n - n % (2 * RQ_LANES)
    if wide:
        requantize_vector_wide(acc, biases, mults, shifts, n, wide, pixels, zp_out, lo, hi, out, step)  # fmt: skip
    body = n - n % RQ_LANES
    if body > wide:  # one step of RQ_LANES left
        requantize_vector(acc[wide:], biases[wide:], mults[wide:], shifts[wide:], n, RQ_LANES, pixels, zp_out, lo, hi, out[wide:], step)  # fmt: skip
    for p in range(pixels):
        for o in range(body, n):
            shift = shifts[o]
            left = max(shift, 0)
            right = max(-shift, 0)
            product = (
                np.int64(np.int32(np.int64(acc[p * step + o] + biases[o]) << left)) * mults[o]
            )  # int32 wrap
            nudged = product + ((1 << 30) if product >= 0 else (1 - (1 << 30)))
            high = (nudged + ((nudged >> 63) & np.int64((1 << 31) - 1))) >> 31  # toward 0
            mask = (np.int64(1) << right) - 1
            threshold = (mask >> 1) - (high >> 63)
            v = (high >> right) + np.int64((high & mask) > threshold) + zp_out
            out[p * n + o] = min(max(v, lo), hi)
