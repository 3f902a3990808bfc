"""An independent numpy model of the int8 spec (TFLite/TFLM integer semantics), written from the formulas,
not from edgenn's kernels: whole-array int64 arithmetic, im2col convolutions, its own multiplier code.
The runtime must agree with it bit for bit."""

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
    product = a * q
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # truncating division by 2^31
    high = np.where((a == -(2**31)) & (q == -(2**31)), 2**31 - 1, high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def sz(graph: Graph, name: str) -> tuple[float, int]:
    qp = graph.type_of(name).qparams
    assert qp is not None
    return qp.scale[0], qp.zero_point[0]


def bounds(node: Node, graph: Graph, lo_real: float, hi_real: float) -> tuple[int, int]:
    scale, zp = sz(graph, node.outputs[0])

    def q(v: float) -> int:
        r = float(np.float32(v) / np.float32(scale))
        return zp + int(math.copysign(math.floor(abs(r) + 0.5), r))

    return (
        -128 if lo_real == -math.inf else max(-128, q(lo_real)),
        127 if hi_real == math.inf else min(127, q(hi_real)),
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
        ra = requantize(va << 20, *multiplier(float(sa) / twice), single)
        rb = requantize(vb << 20, *multiplier(float(sb) / twice), single)
        y = requantize(
            ra + rb if node.op == "Add" else ra - rb,
            *multiplier(twice / (2**20 * float(so))),
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
    if node.op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
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
    y = np.clip(y, -128, 127)
    return y.reshape(out_shape)


def unary(node: Node, graph: Graph, x: np.ndarray, single: bool) -> np.ndarray:
    (si, zi), (so, zo) = sz(graph, node.inputs[0]), sz(graph, node.outputs[0])
    v = x.astype(np.int64) - zi
    if node.op == "LeakyRelu":
        alpha = float(np.float32(node.attrs.get("alpha", 0.01)))
        pos = requantize(v, *multiplier(float(si) / float(so)), single)
        neg = requantize(v, *multiplier(alpha * float(si) / float(so)), single)
        return np.clip(np.where(v >= 0, pos, neg) + zo, -128, 127)
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


def run_spec(graph: Graph, x: np.ndarray, single: bool = False) -> np.ndarray:
    """The graph's (single) output for int8 input x [N, ...]."""
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
        else:
            raise NotImplementedError(op)
        env[node.outputs[0]] = y
    return env[graph.outputs[0]].astype(np.int8)
