"""An independent numpy model of the int8 spec (TFLite/TFLM integer semantics), written from the formulas,
not from edgenn's kernels: whole-array int64 arithmetic, im2col convolutions, its own multiplier code.
The runtime must agree with it bit for bit.

16x8 layers (int16 activations, zero point 0, int8 weights) follow TFLite's int16 kernels: Conv and
FullyConnected accumulate in int64 with an int64 bias and requantize with the 64-bit
MultiplyByQuantizedMultiplier (the multiplier rounded to 16 bits, one rounding shift); Add/Sub
rescale with a 15-bit left shift; Logistic/Tanh interpolate TFLite's published sigmoid table;
everything else as int8 with int16 bounds. Softmax on int16 is not modelled here (TFLM checks it)."""

from __future__ import annotations

import math

import numpy as np

from edgenn.ir import Graph, Node


def multiplier(real: float) -> tuple[int, int]:
    """real = q * 2^(shift - 31), q in [2^30, 2^31), q rounded half away from zero."""
    if real == 0:
        return 0, 0
    exponent = math.floor(math.log2(real)) + 1
    mantissa = real / 2.0**exponent  # in [0.5, 1)
    if mantissa >= 1.0:  # log2 rounding at exact powers of two
        mantissa, exponent = mantissa / 2, exponent + 1
    elif mantissa < 0.5:
        mantissa, exponent = mantissa * 2, exponent - 1
    q = int(math.floor(mantissa * 2.0**31 + 0.5))
    if q == 2**31:
        q, exponent = q // 2, exponent + 1
    return (0, 0) if exponent < -31 else (q, exponent)


def requantize(
    acc: np.ndarray, q: np.ndarray | int, shift: np.ndarray | int, single: bool = False
) -> np.ndarray:
    acc = np.asarray(acc, np.int64)
    q = np.asarray(q, np.int64)
    shift = np.asarray(shift, np.int64)
    if single:
        total = 31 - shift
        return (acc * q + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = acc * (np.int64(1) << left)
    a = ((a + 2**31) & 0xFFFFFFFF) - 2**31  # int32 arithmetic, as TFLite's kernels
    product = a * q
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # truncating division by 2^31
    high = np.where((a == -(2**31)) & (q == -(2**31)), 2**31 - 1, high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def requantize64(acc: np.ndarray, q: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for int64 accumulators (the same in both rounding
    modes): the Q31 multiplier reduced to Q15 (saturating at 0x7FFF), then one rounding shift."""
    acc, q, shift = (np.asarray(v, np.int64) for v in (acc, q, shift))
    reduced = np.where(q < 0x7FFF0000, (q + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    return (acc * reduced + (np.int64(1) << (total - 1))) >> total


# ---- gemmlowp fixed point, vectorized (int64 arrays holding int32 values) ----

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def wrap(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.int64) + 2**31) & 0xFFFFFFFF) - 2**31


def high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    p = a * b
    t = p + np.where(p >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(t >= 0, t >> 31, -((-t) >> 31))
    return np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, q)


def shift_right_rounding(x: np.ndarray, e: int) -> np.ndarray:
    x = np.asarray(x, np.int64)
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0)))


def times_pot(x: np.ndarray, e: int) -> np.ndarray:
    if e <= 0:
        return shift_right_rounding(x, -e) if e else np.asarray(x, np.int64)
    limit = (1 << (31 - e)) - 1
    return np.where(x > limit, I32_MAX, np.where(x < -limit, I32_MIN, np.asarray(x, np.int64) << e))


def exp_negative(a: np.ndarray, integer_bits: int) -> np.ndarray:
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    shifted = (a & (quarter - 1)) - quarter
    x = times_pot(shifted, integer_bits) + (1 << 28)
    x2 = high_mul(x, x)
    x4 = high_mul(x2, x2)
    poly = times_pot(high_mul(times_pot(x4, -2) + high_mul(x2, x), 715827883) + x2, -1)
    result = wrap(1895147668 + high_mul(1895147668, x + poly))
    rest = shifted - a
    for k, mult in zip(
        range(-2, 5), (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
    ):
        if integer_bits > k:
            result = np.where(rest & (1 << (frac + k)), high_mul(result, mult), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, I32_MAX, result)


def newton_reciprocal(a: np.ndarray) -> np.ndarray:
    """x ~ 1 / ((1 + a) / 2) in Q2.29 after three Newton steps."""
    total = np.asarray(a, np.int64) + I32_MAX
    half = total + np.where(total >= 0, 1, -1)
    d = np.where(half >= 0, half // 2, -((-half) // 2))
    x = 1515870810 + high_mul(d, -1010580540)
    for _ in range(3):
        x = x + times_pot(high_mul(x, (1 << 29) - high_mul(d, x)), 2)
    return x


def logistic_q31(a: np.ndarray) -> np.ndarray:
    magnitude = np.where(a > 0, a, wrap(-a))
    positive = times_pot(newton_reciprocal(exp_negative(wrap(-magnitude), 4)), 1)
    return np.where(a == 0, 1 << 30, np.where(a > 0, positive, I32_MAX - positive))


def tanh_q31(a: np.ndarray) -> np.ndarray:
    negative = np.where(a < 0, a, wrap(-a))
    t = times_pot(newton_reciprocal(exp_negative(negative, 5)) - (1 << 29), 2)
    return np.where(a == 0, 0, np.where(a < 0, wrap(-t), t))


def sz(graph: Graph, name: str) -> tuple[float, int]:
    qp = graph.type_of(name).qparams
    assert qp is not None
    return qp.scale[0], qp.zero_point[0]


def qrange(graph: Graph, name: str) -> tuple[int, int]:
    """The integer range of a tensor's type: int8, or int16 for 16x8 activations."""
    info = np.iinfo(graph.type_of(name).dtype.numpy)
    return int(info.min), int(info.max)


def is_wide(graph: Graph, node: Node) -> bool:
    return any(
        graph.type_of(n).dtype.value == "int16"
        for n in (*node.inputs, *node.outputs)
        if n and not graph.values[n].is_const
    )


def bounds(node: Node, graph: Graph, lo_real: float, hi_real: float) -> tuple[int, int]:
    scale, zp = sz(graph, node.outputs[0])
    qmin, qmax = qrange(graph, node.outputs[0])

    def q(v: float) -> int:
        r = float(np.float32(v) / np.float32(scale))
        return zp + int(math.copysign(math.floor(abs(r) + 0.5), r))

    return (
        qmin if lo_real == -math.inf else max(qmin, q(lo_real)),
        qmax if hi_real == math.inf else min(qmax, q(hi_real)),
    )


def clip_attrs(node: Node) -> tuple[float, float]:
    return node.attrs.get("clip_min", -math.inf), node.attrs.get("clip_max", math.inf)


def conv(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    w = graph.const(node.inputs[1]).astype(np.int64)
    bias = graph.const(node.inputs[2]).astype(np.int64)
    s_in, zp_in = sz(graph, node.inputs[0])
    s_out, zp_out = sz(graph, node.outputs[0])
    a = node.attrs
    one_d = x.ndim == 3
    if one_d:
        x, w = x[:, None], w[:, None]
    strides = (1, *a["strides"]) if one_d else a["strides"]
    dil = (1, *a["dilations"]) if one_d else a["dilations"]
    pads = (0, a["pads"][0], 0, a["pads"][1]) if one_d else a["pads"]
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    # padding with the input zero point makes (x - zp) vanish there, as skipping the tap does
    xp = np.pad(
        x.astype(np.int64) - zp_in, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0))
    )
    oh = (h + pads[0] + pads[2] - (kh - 1) * dil[0] - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - (kw - 1) * dil[1] - 1) // strides[1] + 1
    patches = np.stack(
        [
            xp[
                :,
                ky * dil[0] : ky * dil[0] + (oh - 1) * strides[0] + 1 : strides[0],
                kx * dil[1] : kx * dil[1] + (ow - 1) * strides[1] + 1 : strides[1],
                :,
            ]
            for ky in range(kh)
            for kx in range(kw)
        ],
        axis=3,
    )  # [N, OH, OW, KH*KW, C]
    if a["group"] == 1:
        acc = np.einsum("nhwkc,okc->nhwo", patches, w.reshape(o, kh * kw, c))
    else:  # depthwise: output channel j reads input channel j // (o / c)
        mult = o // c
        taps = np.repeat(patches, mult, axis=4)  # [N, OH, OW, K, O]
        acc = np.einsum("nhwko,ok->nhwo", taps, w.reshape(o, kh * kw))
    acc = acc + bias
    pairs = np.array(
        [
            multiplier(float(s_in) * float(sw) / float(s_out))
            for sw in graph.type_of(node.inputs[1]).qparams.scale
        ]
    )
    if is_wide(graph, node):
        y = requantize64(acc, pairs[:, 0], pairs[:, 1]) + zp_out
    else:
        y = requantize(acc, pairs[:, 0], pairs[:, 1], single) + zp_out
    lo, hi = bounds(node, graph, *clip_attrs(node))
    y = np.clip(y, lo, hi)
    return y[:, 0] if one_d else y


def fully_connected(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    w = graph.const(node.inputs[1]).astype(np.int64)
    bias = graph.const(node.inputs[2]).astype(np.int64)
    s_in, zp_in = sz(graph, node.inputs[0])
    s_out, zp_out = sz(graph, node.outputs[0])
    acc = (x.astype(np.int64) - zp_in) @ w.T + bias
    pairs = np.array(
        [
            multiplier(float(s_in) * float(sw) / float(s_out))
            for sw in graph.type_of(node.inputs[1]).qparams.scale
        ]
    )
    if is_wide(graph, node):
        y = requantize64(acc, pairs[:, 0], pairs[:, 1]) + zp_out
    else:
        y = requantize(acc, pairs[:, 0], pairs[:, 1], single) + zp_out
    return np.clip(y, *bounds(node, graph, *clip_attrs(node)))


def binary(node: Node, graph: Graph, a: np.ndarray, b: np.ndarray, single: bool) -> np.ndarray:
    (sa, za), (sb, zb), (so, zo) = (
        sz(graph, node.inputs[0]),
        sz(graph, node.inputs[1]),
        sz(graph, node.outputs[0]),
    )
    va, vb = a.astype(np.int64) - za, b.astype(np.int64) - zb
    if node.op == "Mul":
        y = requantize(va * vb, *multiplier(float(sa) * float(sb) / float(so)), single)
    else:
        twice = 2 * max(float(sa), float(sb))
        left = 15 if is_wide(graph, node) else 20  # headroom bits of TFLite's ADD/SUB
        ra = requantize(va << left, *multiplier(float(sa) / twice), single)
        rb = requantize(vb << left, *multiplier(float(sb) / twice), single)
        y = requantize(
            ra + rb if node.op == "Add" else ra - rb,
            *multiplier(twice / (2**left * float(so))),
            single,
        )
    return np.clip(y + zo, *bounds(node, graph, *clip_attrs(node)))


def pool(x: np.ndarray, kernel, strides, dilations, pads, average: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    one_d = x.ndim == 3
    if one_d:
        x = x[:, None]
        kernel, strides, dilations, pads = (
            (1, *kernel),
            (1, *strides),
            (1, *dilations),
            (0, pads[0], 0, pads[1]),
        )
    n, h, w, c = x.shape
    valid = np.pad(
        np.ones((h, w), bool),
        (
            (pads[0], pads[2] + kernel[0] * dilations[0]),
            (pads[1], pads[3] + kernel[1] * dilations[1]),
        ),
    )
    xp = np.pad(
        x.astype(np.int64),
        (
            (0, 0),
            (pads[0], pads[2] + kernel[0] * dilations[0]),
            (pads[1], pads[3] + kernel[1] * dilations[1]),
            (0, 0),
        ),
    )
    return xp, valid, kernel, strides, dilations, one_d


def pooling(node: Node, graph: Graph, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    a = node.attrs
    if node.op == "ReduceMean":  # over any axes: a rounded (half away from zero) integer mean
        axes = tuple(a["axes"])
        total = x.astype(np.int64).sum(axis=axes)
        count = int(np.prod([x.shape[i] for i in axes]))
        y = np.where(total >= 0, (total + count // 2) // count, -((-total + count // 2) // count))
        return np.clip(y, *qrange(graph, node.outputs[0])).reshape(out_shape)
    if node.op in ("GlobalAveragePool", "GlobalMaxPool"):
        spatial = x.shape[1:-1]
        kernel, strides, dil, pads = (
            spatial,
            (1,) * len(spatial),
            (1,) * len(spatial),
            (0,) * 2 * len(spatial),
        )
    else:
        kernel, strides, pads = a["kernel"], a["strides"], a["pads"]
        dil = a.get("dilations") or (1,) * len(kernel)
    average = node.op in ("AveragePool", "GlobalAveragePool", "ReduceMean")
    xp, valid, kernel, strides, dil, one_d = pool(x, kernel, strides, dil, pads, average)
    target = out_shape if not one_d else (out_shape[0], 1, *out_shape[1:])
    oh, ow = (target[1], target[2]) if len(target) == 4 else (1, 1)
    taps = [(ky * dil[0], kx * dil[1]) for ky in range(kernel[0]) for kx in range(kernel[1])]
    vals = np.stack(
        [
            xp[
                :,
                dy : dy + (oh - 1) * strides[0] + 1 : strides[0],
                dx : dx + (ow - 1) * strides[1] + 1 : strides[1],
            ]
            for dy, dx in taps
        ],
        0,
    )
    mask = np.stack(
        [
            valid[
                dy : dy + (oh - 1) * strides[0] + 1 : strides[0],
                dx : dx + (ow - 1) * strides[1] + 1 : strides[1],
            ]
            for dy, dx in taps
        ],
        0,
    )
    mask = mask[:, None, :, :, None]
    if average:
        total = np.where(mask, vals, 0).sum(0)
        count = mask.sum(0)
        y = np.where(total >= 0, (total + count // 2) // count, -((-total + count // 2) // count))
    else:
        y = np.where(mask, vals, -(10**9)).max(0)
    y = np.clip(y, *qrange(graph, node.outputs[0]))
    return y.reshape(out_shape)


def unary(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    (si, zi), (so, zo) = sz(graph, node.inputs[0]), sz(graph, node.outputs[0])
    v = x.astype(np.int64) - zi
    if node.op == "LeakyRelu":
        alpha = float(np.float32(node.attrs.get("alpha", 0.01)))
        pos = requantize(v, *multiplier(float(si) / float(so)), single)
        neg = requantize(v, *multiplier(alpha * float(si) / float(so)), single)
        return np.clip(np.where(v >= 0, pos, neg) + zo, *qrange(graph, node.outputs[0]))
    lo_real, hi_real = {"Relu": (0.0, math.inf), "Requantize": (-math.inf, math.inf)}.get(
        node.op, (node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf))
    )
    y = requantize(v, *multiplier(float(si) / float(so)), single) + zo
    return np.clip(y, *bounds(node, graph, lo_real, hi_real))


def prelu(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    alpha = graph.const(node.inputs[1]).astype(np.int64)
    (si, zi), (sa, za), (so, zo) = (
        sz(graph, node.inputs[0]),
        sz(graph, node.inputs[1]),
        sz(graph, node.outputs[0]),
    )
    v = x.astype(np.int64) - zi
    pos = requantize(v, *multiplier(float(si) / float(so)), single)
    neg = requantize(v * (alpha - za), *multiplier(float(si) * float(sa) / float(so)), single)
    return np.clip(np.where(v >= 0, pos, neg) + zo, -128, 127)


def log2_of(x: float) -> tuple[int, bool]:
    """TFLite's CheckedLog2 (float32): the nearest integer log2, and whether x is that power of 2."""
    value = np.float32(np.log(np.float32(x))) * (np.float32(1) / np.float32(np.log(np.float32(2))))
    nearest = np.float32(np.sign(value) * np.floor(np.abs(value) + np.float32(0.5)))
    return int(nearest), bool(abs(float(value - nearest)) < 1e-3)


def logistic_or_tanh16(node: Node, graph: Graph, x: np.ndarray) -> np.ndarray:
    """TFLite's int16 Logistic/Tanh: the input brought to 3 integer bits (scaled by 3 * 2^12 s_in
    through a 15-bit multiplier, or a bare shift for power-of-two scales), then the sigmoid table
    (sigmoid(i / 24) in 0.16 fixed point) read with linear interpolation; tanh = 2 sigmoid(2x) - 1
    reads it at twice the step."""
    from edgenn.ops.wide import SIGMOID_TABLE_VALUES  # TFLite's published table (data, not code)

    table = np.array(SIGMOID_TABLE_VALUES, np.int64)
    s_in = sz(graph, node.inputs[0])[0]
    tanh = node.op == "Tanh"
    log2_in, power_of_two = log2_of(s_in)
    shift = 12 + log2_in
    if power_of_two and (shift in (0, 1) if tanh else shift == 0):
        mult, shift = 3 << shift, 0
    else:
        real, shift = float(s_in) * 4096.0 * 3.0, 0
        while real <= 32767.0 / 2.0 and shift <= 30:
            real, shift = real * 2.0, shift + 1
        mult = int(real)
    v = x.astype(np.int64) * mult
    v = (v + (1 << (shift - 1))) >> shift if shift > 0 else v
    a = np.abs(v)
    step = 8 if tanh else 9
    k = a >> step
    inside = k < 255
    low = table[np.minimum(k, 254)]
    high = table[np.minimum(k, 254) + 1]
    interpolated = (low << step) + (a & ((1 << step) - 1)) * (high - low)
    if tanh:
        interpolated = np.where(inside, interpolated, 0xFFFF << 8)
        value = np.where(
            v >= 0, interpolated - (1 << 23) + (1 << 7), -interpolated + (1 << 23) + (1 << 7) - 1
        )
        return value >> 8
    interpolated = np.where(inside, interpolated, 0x7FFF << 10)
    value = np.where(v >= 0, interpolated + (1 << 9), (1 << 25) - interpolated + (1 << 9) - 1)
    return value >> 10


def logistic_or_tanh(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    if is_wide(graph, node):
        return logistic_or_tanh16(node, graph, x)
    s_in, zp = sz(graph, node.inputs[0])
    mantissa, shift = math.frexp(float(s_in) * 2.0**27)
    q = int(math.floor(mantissa * 2**31 + 0.5))
    radius = math.floor(15 * 2.0**27 / 2.0**shift)
    v = x.astype(np.int64) - zp
    q4 = requantize(v, q, shift, single)
    if node.op == "Sigmoid":
        out = shift_right_rounding(logistic_q31(q4), 23) - 128
    else:
        out = shift_right_rounding(tanh_q31(q4), 24)
    out = np.clip(out, -128, 127)
    return np.where(v <= -radius, -128, np.where(v >= radius, 127, out))


def softmax(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    s_in, _ = sz(graph, node.inputs[0])
    q, shift = multiplier(min(float(s_in) * 2.0**26, 2.0**31 - 1))
    diff_min = -math.floor(31 * 2.0**26 / 2.0**shift)
    diff = x.astype(np.int64) - x.max(axis=-1, keepdims=True)
    used = diff >= diff_min
    e = exp_negative(requantize(diff, q, shift, single), 5)
    total = np.where(used, shift_right_rounding(e, 12), 0).sum(axis=-1, keepdims=True)
    bit_length = sum((total >> k) > 0 for k in range(32))
    headroom = 32 - bit_length  # count of leading zeros of the uint32 sum
    scale = times_pot(newton_reciprocal(wrap(((total << headroom) & 0xFFFFFFFF) - 2**31)), 1)
    exponent = (12 - headroom) + 31 - 8
    shifted = shift_right_rounding(high_mul(scale, e), exponent)
    return np.where(used, np.clip(shifted - 128, -128, 127), -128)


def hard_swish(node: Node, graph: Graph, x: np.ndarray) -> np.ndarray:
    (si, zi), (so, zo) = sz(graph, node.inputs[0]), sz(graph, node.outputs[0])
    hires_scale = np.float32(1 / 128) * np.float32(si)

    def q15(real: np.float32) -> tuple[int, int]:
        q, e = multiplier(float(real))
        return (32767 if q >= 2**31 - 1 - 2**15 else (q + 2**15) >> 16), e

    out_m, out_e = q15(hires_scale / np.float32(so))
    relu_m, relu_e = q15(hires_scale / np.float32(3 / 32768))

    def high16(a: np.ndarray, b: int, rounding: bool) -> np.ndarray:
        p = a * b + (np.where(a * b >= 0, 1 << 14, 1 - (1 << 14)) if rounding else 0)
        return np.where(p >= 0, p >> 15, -((-p) >> 15))

    hires = (x.astype(np.int64) - zi) * 128
    pre = high16(hires, out_m, True)
    r = np.clip(hires * (1 << max(relu_e - 1, 0)), -32768, 32767) if relu_e > 0 else hires
    r = high16(r, relu_m, True)
    if relu_e > 0:
        r = np.clip(r * 2, -32768, 32767)
    elif relu_e < 0:
        r = shift_right_rounding(r, -relu_e)
    r = (r + 32768) >> 1
    return np.clip(shift_right_rounding(high16(r, pre, False), -out_e) + zo, -128, 127)


def nearest_source(x: int, n_in: int, n_out: int, scale: float, attrs: dict) -> int:
    """One output index's source index, from the ONNX Resize formulas (TFLite's for files read from
    TFLite), evaluated in float32 one scalar at a time."""
    f = np.float32
    rule = attrs["coordinates"]
    if attrs["convention"] == "tflite":
        corners = rule == "align_corners" and n_out > 1
        ratio = f(n_in - 1) / f(n_out - 1) if corners else f(n_in) / f(n_out)
        v = (f(x) + (f(0.5) if rule == "half_pixel" else f(0))) * ratio
        chosen = math.floor(v + f(0.5)) if rule == "align_corners" else math.floor(v)
        return min(max(chosen, 0), n_in - 1)
    s = f(scale)
    if rule == "asymmetric":
        v = f(x) / s
    elif rule == "tf_half_pixel_for_nn":
        v = (f(x) + f(0.5)) / s
    elif rule == "align_corners":
        v = f(0) if n_out == 1 else f(x) * f(n_in - 1) / f(n_out - 1)
    elif rule == "pytorch_half_pixel" and n_out == 1:
        v = f(0)
    else:
        v = (f(x) + f(0.5)) / s - f(0.5)
    frac = float(v) - math.floor(float(v))
    mode = attrs["nearest"]
    if mode == "floor":
        chosen = math.floor(v)
    elif mode == "ceil":
        chosen = math.ceil(v)
    elif frac == 0.5:
        chosen = math.ceil(v) if mode == "round_prefer_ceil" else math.floor(v)
    else:
        chosen = round(float(v))
    return min(max(chosen, 0), n_in - 1)


def resize(node: Node, x: np.ndarray) -> np.ndarray:
    y = x
    for axis, size, scale in zip(node.attrs["axes"], node.attrs["sizes"], node.attrs["scales"]):
        picks = [nearest_source(i, y.shape[axis], size, scale, node.attrs) for i in range(size)]
        y = np.take(y, picks, axis=axis)
    return y


def run_spec(graph: Graph, x: np.ndarray, single: bool = False) -> np.ndarray:
    """The graph's (single) output for integer input x [N, ...] (int8, or int16 where the model's
    input is), in the output's type."""
    env = {graph.inputs[0]: x.astype(np.int64)}
    for node in graph.nodes:
        ins = [
            env.get(i) if not graph.values[i].is_const else graph.const(i).astype(np.int64)
            for i in node.inputs
        ]
        out_shape = (len(x), *graph.type_of(node.outputs[0]).shape[1:])
        op = node.op
        if op == "Conv":
            y = conv(node, graph, ins[0], single)
        elif op == "FullyConnected":
            y = fully_connected(node, graph, ins[0], single)
        elif op in ("Add", "Sub", "Mul"):
            y = binary(node, graph, ins[0], ins[1], single)
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
            y = pooling(node, graph, ins[0], out_shape)
        elif op in ("Relu", "Clip", "Requantize", "LeakyRelu"):
            y = unary(node, graph, ins[0], single)
        elif op == "PRelu":
            y = prelu(node, graph, ins[0], single)
        elif op in ("Sigmoid", "Tanh"):
            y = logistic_or_tanh(node, graph, ins[0], single)
        elif op == "Softmax":
            if is_wide(graph, node):
                raise NotImplementedError("int16 Softmax (checked against TFLM instead)")
            y = softmax(node, graph, ins[0], single)
        elif op == "HardSwish":
            y = hard_swish(node, graph, ins[0])
        elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"):
            y = ins[0].reshape(out_shape)
        elif op == "Transpose":
            y = np.transpose(ins[0], node.attrs["perm"])
        elif op == "Pad":
            s, zp = sz(graph, node.inputs[0])
            r = float(np.float32(node.attrs.get("value", 0.0)) / np.float32(s))
            fill = zp + int(math.copysign(math.floor(abs(r) + 0.5), r))
            p = node.attrs["pads"]
            rank = ins[0].ndim
            y = np.pad(
                ins[0],
                [(p[i], p[rank + i]) for i in range(rank)],
                constant_values=max(-128, min(127, fill)),
            )
        elif op == "Concat":
            y = np.concatenate(ins, axis=node.attrs["axis"])
        elif op == "Resize":
            y = resize(node, ins[0])
        else:
            raise NotImplementedError(op)
        env[node.outputs[0]] = y
    return env[graph.outputs[0]].astype(graph.type_of(graph.outputs[0]).dtype.numpy)
