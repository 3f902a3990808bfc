"""Int16 activations with int8 weights ("16x8", as TFLite offers) for layers whose int8 error is too
high. Activations are int16 and symmetric (zero point 0); Conv and FullyConnected accumulate in int64
with an int64 bias and requantize with TFLite's 64-bit MultiplyByQuantizedMultiplier; Add/Sub rescale
with a 15-bit left shift; pooling and requantization work as in int8 with int16 bounds.

int16 tensors live in the same byte arena as int8 ones; kernels view their bytes as int16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from edgenn.errors import QuantizationError
from edgenn.ir import Graph, Node
from edgenn.ops import broadcast_strides, padded_shape, register_kernel, row_layout, spread
from edgenn.quant.fixed_point import (
    activation_bounds,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_64,
    real_multiplier,
)

if TYPE_CHECKING:
    from edgenn.runtime.program import ProgramBuilder

BINARY16_MODES = {"Add": 0, "Sub": 1, "Mul": 2}
INT16_MIN, INT16_MAX = -32768, 32767
LEFT_SHIFT16 = 15


def _bounds16(attrs: dict, scale: float) -> tuple[int, int]:
    return activation_bounds(
        attrs.get("clip_min", -np.inf),
        attrs.get("clip_max", np.inf),
        scale,
        0,
        INT16_MIN,
        INT16_MAX,
    )


def prepare_conv16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    attrs = node.attrs
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    w = b.const(w_name)
    one_d = len(b.shape(x)) == 3
    _, *spatial, c = b.shape(x)
    _, *out_spatial, oc = b.shape(y)
    h, width = (1, spatial[0]) if one_d else spatial
    oh, ow = (1, out_spatial[0]) if one_d else out_spatial
    kh, kw = (1, w.shape[1]) if one_d else w.shape[1:3]
    strides = (1, *attrs["strides"]) if one_d else attrs["strides"]
    dilations = (1, *attrs["dilations"]) if one_d else attrs["dilations"]
    pads = attrs["pads"]
    pt, pl = (0, pads[0]) if one_d else (pads[0], pads[1])
    depthwise = attrs["group"] == c and c > 1 and w.shape[-1] == 1
    if attrs["group"] != 1 and not depthwise:
        raise QuantizationError(
            f"node '{node.name}' (Conv): grouped convolution has no 16x8 kernel"
        )
    s_in, s_out = b.scale_zp(x)[0], b.scale_zp(y)[0]
    lo, hi = _bounds16(attrs, s_out)
    return CONV16.row(
        x=b.arena(x),
        y=b.arena(y),
        w=b.weights(w),
        b=b.wide(b.const(bias)),
        m=b.channel_multipliers(node, w_name, oc, s_in, s_out),
        h=h,
        width=width,
        c=c,
        oh=oh,
        ow=ow,
        oc=oc,
        kh=kh,
        kw=kw,
        **spread("sh sw", strides),
        **spread("dh dw", dilations),
        pad_top=pt,
        pad_left=pl,
        lo=lo,
        hi=hi,
        depth_mult=oc // c if depthwise else 0,
    )


@njit(cache=True)
def conv16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = CONV16_ROW
    x, y, w, b, m = row[f.x], row[f.y], row[f.w], row[f.b], row[f.m]
    h, width, c, oh, ow, oc = row[f.h], row[f.width], row[f.c], row[f.oh], row[f.ow], row[f.oc]
    kh, kw = row[f.kh], row[f.kw]
    sh, sw, dh, dw, pt = row[f.sh], row[f.sw], row[f.dh], row[f.dw], row[f.pad_top]
    pl, lo, hi, depth_mult = row[f.pad_left], row[f.lo], row[f.hi], row[f.depth_mult]
    src = arena[x : x + 2 * h * width * c].view(np.int16)
    out = arena[y : y + 2 * oh * ow * oc].view(np.int16)
    for oy in range(oh):
        for ox in range(ow):
            for o in range(oc):
                total = np.int64(0)
                for ky in range(kh):
                    iy = oy * sh - pt + ky * dh
                    if iy < 0 or iy >= h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw - pl + kx * dw
                        if ix < 0 or ix >= width:
                            continue
                        pixel = (iy * width + ix) * c
                        if depth_mult > 0:
                            total += (
                                np.int64(src[pixel + o // depth_mult])
                                * weights[w + (o * kh + ky) * kw + kx]
                            )
                        else:
                            tap = w + ((o * kh + ky) * kw + kx) * c
                            for i in range(c):
                                total += np.int64(src[pixel + i]) * weights[tap + i]
                total += mults[b + o]  # the int64 bias lives in the 64-bit blob
                value = multiply_by_quantized_multiplier_64(total, mults[m + o], shifts[m + o])
                out[(oy * ow + ox) * oc + o] = min(max(value, lo), hi)


def prepare_fc16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    x, w_name, bias = node.inputs
    y = node.outputs[0]
    s_in, s_out = b.scale_zp(x)[0], b.scale_zp(y)[0]
    lo, hi = _bounds16(node.attrs, s_out)
    n, k = b.shape(x)
    w = b.const(w_name)
    return FC16.row(
        x=b.arena(x),
        y=b.arena(y),
        w=b.weights(w),
        b=b.wide(b.const(bias)),
        m=b.channel_multipliers(node, w_name, w.shape[0], s_in, s_out),
        n=n,
        k=k,
        outs=w.shape[0],
        lo=lo,
        hi=hi,
    )


@njit(cache=True)
def fc16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = FC16_ROW
    x, y, w, b, m, n, k = row[f.x], row[f.y], row[f.w], row[f.b], row[f.m], row[f.n], row[f.k]
    outs, lo, hi = row[f.outs], row[f.lo], row[f.hi]
    src = arena[x : x + 2 * n * k].view(np.int16)
    out = arena[y : y + 2 * n * outs].view(np.int16)
    for s in range(n):
        for o in range(outs):
            total = np.int64(0)
            for i in range(k):
                total += np.int64(src[s * k + i]) * weights[w + o * k + i]
            total += mults[b + o]
            value = multiply_by_quantized_multiplier_64(total, mults[m + o], shifts[m + o])
            out[s * outs + o] = min(max(value, lo), hi)


def prepare_binary16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    a, c = node.inputs
    y = node.outputs[0]
    if any(graph.values[i].is_const for i in node.inputs):
        raise QuantizationError(f"node '{node.name}' ({node.op}): no 16x8 kernel for this form")
    (s_a, _), (s_b, _), (s_out, _) = b.scale_zp(a), b.scale_zp(c), b.scale_zp(y)
    twice_max = 2 * max(float(s_a), float(s_b))
    if node.op == "Mul":  # TFLite MUL: a * b (zero points 0) rescaled once by s_a s_b / s_out
        pairs = [(0, 0), (0, 0), real_multiplier(s_a, s_b, divisor=s_out)]
    else:  # ADD / SUB: both sides to a common scale with 15 bits of headroom, then to the output
        pairs = [
            real_multiplier(s_a, divisor=twice_max),
            real_multiplier(s_b, divisor=twice_max),
            real_multiplier(twice_max, divisor=(1 << LEFT_SHIFT16) * float(s_out)),
        ]
    lo, hi = _bounds16(node.attrs, s_out)
    out_shape = b.shape(y)
    return BINARY16.row(
        a=b.arena(a),
        b=b.arena(c),
        y=b.arena(y),
        **spread("d0 d1 d2 d3", padded_shape(out_shape)),
        **spread("a_s0 a_s1 a_s2 a_s3", broadcast_strides(b.shape(a), out_shape)),
        **spread("b_s0 b_s1 b_s2 b_s3", broadcast_strides(b.shape(c), out_shape)),
        mode=BINARY16_MODES[node.op],
        m=b.multipliers(pairs),
        lo=lo,
        hi=hi,
        size_a=int(np.prod(b.shape(a))),
        size_b=int(np.prod(b.shape(c))),
    )


@njit(cache=True)
def binary16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = BINARY16_ROW
    a_s0, a_s1, a_s2, a_s3 = row[f.a_s0], row[f.a_s1], row[f.a_s2], row[f.a_s3]
    b_s0, b_s1, b_s2, b_s3 = row[f.b_s0], row[f.b_s1], row[f.b_s2], row[f.b_s3]
    a, c, y = row[f.a], row[f.b], row[f.y]
    d0, d1, d2, d3 = row[f.d0], row[f.d1], row[f.d2], row[f.d3]
    mode, m, lo, hi, size_a = row[f.mode], row[f.m], row[f.lo], row[f.hi], row[f.size_a]
    size_b = row[f.size_b]
    first = arena[a : a + 2 * size_a].view(np.int16)
    second = arena[c : c + 2 * size_b].view(np.int16)
    out = arena[y : y + 2 * d0 * d1 * d2 * d3].view(np.int16)
    index = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                for i3 in range(d3):
                    va = np.int64(first[i0 * a_s0 + i1 * a_s1 + i2 * a_s2 + i3 * a_s3])
                    vb = np.int64(second[i0 * b_s0 + i1 * b_s1 + i2 * b_s2 + i3 * b_s3])
                    if mode == 2:  # MUL: the product in int32 (|a b| <= 2^30)
                        total = va * vb
                    else:
                        sa = multiply_by_quantized_multiplier(
                            va << LEFT_SHIFT16, mults[m], shifts[m], rounding
                        )
                        sb = multiply_by_quantized_multiplier(
                            vb << LEFT_SHIFT16, mults[m + 1], shifts[m + 1], rounding
                        )
                        total = sa - sb if mode == 1 else sa + sb
                    value = multiply_by_quantized_multiplier(
                        total, mults[m + 2], shifts[m + 2], rounding
                    )
                    out[index] = min(max(value, lo), hi)
                    index += 1


# ---- Logistic / Tanh on int16: TFLM's table lookup with linear interpolation ----

# TFLite's sigmoid_table_uint16 (sigmoid(i / 24) in 0.16 fixed point), the table TFLM interpolates
# fmt: off
SIGMOID_TABLE_VALUES = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
)
# fmt: on
SIGMOID_TABLE = np.array(SIGMOID_TABLE_VALUES, np.int64)


def checked_log2(x: float) -> tuple[int, bool]:
    """TFLite's CheckedLog2 in float32: (round(log2 x), whether x is within 1e-3 of that power of 2)."""
    log2 = np.float32(np.log(np.float32(x))) * (
        np.float32(1.0) / np.float32(np.log(np.float32(2.0)))
    )
    rounded = np.float32(np.sign(log2) * np.floor(np.abs(log2) + np.float32(0.5)))
    return int(rounded), bool(abs(float(log2 - rounded)) < 1e-3)


def prepare_logistic_tanh16(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """TFLM's int16 Prepare: the input rescaled to 1/(3 * 4096) (so +-2^17 spans +-10.7) by a Q15
    multiplier and a left shift, or a bare shift for power-of-two scales; output scale 2^-15."""
    x, y = node.inputs[0], node.outputs[0]
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(x), b.scale_zp(y)
    log2_out, pot_out = checked_log2(s_out)
    if zp_in or zp_out or not pot_out or log2_out != -15:
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): 16x8 needs zero points 0 and output scale 2^-15, "
            f"got input zero point {zp_in}, output scale {s_out}, zero point {zp_out}"
        )
    tanh = node.op == "Tanh"
    log2_in, pot = checked_log2(s_in)
    shift = 12 + log2_in  # (15 - 3 integer bits) + log2(scale)
    pot = pot and (shift in (0, 1) if tanh else shift == 0)
    multiplier = 0
    if not pot:
        real, shift = float(s_in) * 4096.0 * 3.0, 0
        while real <= 32767.0 / 2.0 and shift <= 30:
            shift, real = shift + 1, real * 2.0
        multiplier = int(real)
    if multiplier == 0:  # the kernel's power-of-two case
        multiplier, shift = 3 << shift, 0
    return LOGISTIC_TANH16.row(
        x=b.arena(x),
        y=b.arena(y),
        n=int(np.prod(b.shape(x))),
        multiplier=multiplier,
        shift=shift,
        tanh=int(tanh),
        table=b.wide(SIGMOID_TABLE),
    )


@njit(cache=True)
def logistic_tanh16(row, arena, weights, biases, mults, shifts, rounding, patch, acc):  # type: ignore[no-untyped-def]
    f = LOGISTIC_TANH16_ROW
    x, y, n, multiplier, shift = row[f.x], row[f.y], row[f.n], row[f.multiplier], row[f.shift]
    tanh, table = row[f.tanh], row[f.table]
    src = arena[x : x + 2 * n].view(np.int16)
    out = arena[y : y + 2 * n].view(np.int16)
    half = (np.int64(1) << (shift - 1)) if shift > 0 else np.int64(0)
    # tanh(x) = 2 sigmoid(2x) - 1: tanh reads the table at twice the step, 8 fraction bits, not 9
    step = 8 if tanh else 9
    for i in range(n):
        v = (np.int64(src[i]) * multiplier + half) >> shift
        a = -v if v < 0 else v
        k = a >> step
        if k >= 255:
            interpolated = np.int64(0xFFFF << 8) if tanh else np.int64(0x7FFF << 10)
        else:
            low, high = mults[table + k], mults[table + k + 1]
            interpolated = (low << step) + (a & ((1 << step) - 1)) * (high - low)
        if tanh:
            if v >= 0:
                value = interpolated - (1 << 23) + (1 << 7)
            else:
                value = -interpolated + (1 << 23) + (1 << 7) - 1
            out[i] = value >> 8
        else:
            if v >= 0:
                value = interpolated + (1 << 9)
            else:
                value = (1 << 25) - interpolated + (1 << 9) - 1
            out[i] = value >> 10


# ---- integer kernels: row layouts and registration (opcodes come from the registry) ----
CONV16_ROW = row_layout(
    "conv16", "x y w b m h width c oh ow oc kh kw sh sw dh dw pad_top pad_left lo hi depth_mult"
)
CONV16 = register_kernel("conv16", conv16, CONV16_ROW, c=("edgenn_conv16", "wide.c"))
FC16_ROW = row_layout("fc16", "x y w b m n k outs lo hi")
FC16 = register_kernel("fc16", fc16, FC16_ROW, c=("edgenn_fc16", "wide.c"))
BINARY16_ROW = row_layout(
    "binary16",
    "a b y d0 d1 d2 d3 a_s0 a_s1 a_s2 a_s3 b_s0 b_s1 b_s2 b_s3 mode m lo hi size_a size_b",
)
BINARY16 = register_kernel("binary16", binary16, BINARY16_ROW, c=("edgenn_binary16", "wide.c"))
LOGISTIC_TANH16_ROW = row_layout("logistic_tanh16", "x y n multiplier shift tanh table")
LOGISTIC_TANH16 = register_kernel("logistic_tanh16", logistic_tanh16, LOGISTIC_TANH16_ROW)
