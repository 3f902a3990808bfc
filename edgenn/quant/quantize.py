"""Float graph -> fixed-point graph, following the TFLite int8 scheme so a .tflite can carry it unchanged.

- activations: int8, asymmetric, per tensor: scale = (hi - lo) / 255 over a range that contains 0,
  zero point = round(-128 - lo / scale); ops with SAME or FIXED parameters get them (see Int8Spec)
- weights of Conv / FullyConnected: int8 symmetric per output channel, values in [-127, 127]
- bias: int32, scale float32(s_in) * float32(s_w[c]), zero point 0
- other constant operands (Add/Mul/PRelu/Concat): int8 asymmetric per tensor over their own range
Scales are stored as float32 values (what the file format holds), so every consumer derives the same
multipliers. After quantizing, the worst-case int32 accumulation of every layer is checked.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgenn.errors import QuantizationError
from edgenn.ir import DType, Graph, GraphEditor, Node, QParams, TensorType, Value
from edgenn.ops import CALIBRATED, FIXED, REGISTRY, SAME, spec_for
from edgenn.quant.calibrate import Ranges
from edgenn.quant.fixed_point import activation_bounds

INT8_MIN, INT8_MAX = -128, 127
WIDE_SUFFIX = "__int16"  # an int16 graph output's name once its int8 copy takes the output name
WEIGHT_MAX = 127
ACCUMULATOR_MAX = 2**31 - 1


def f32(x: float) -> float:
    return float(np.float32(x))


def activation_qparams(lo: float, hi: float) -> QParams:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-30:
        return QParams((1.0,), (0,))  # a constant zero tensor: any scale represents it exactly
    scale = f32((hi - lo) / (INT8_MAX - INT8_MIN))
    zero_point = int(np.clip(round_half_away_array(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return QParams((scale,), (zero_point,))


def round_half_away_array(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_qparams16(lo: float, hi: float) -> QParams:
    """int16 activations are symmetric (zero point 0), as TFLite's 16x8 scheme requires."""
    peak = max(abs(float(lo)), abs(float(hi)))
    return QParams((f32(peak / 32767) if peak > 1e-30 else 1.0,), (0,))


def broadcast_qparams(
    qp: QParams, ndim: int, scale_type: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero point) arrays that broadcast against a rank-`ndim` tensor along qp's axis."""
    scale = np.asarray(qp.scale, scale_type)
    zp = np.asarray(qp.zero_point, np.int64)
    if qp.axis is not None:
        shape = [1] * ndim
        shape[qp.axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def quantize_array(x: np.ndarray, qp: QParams, dtype: DType = DType.INT8) -> np.ndarray:
    """q = clamp(round(x / scale) + zp) with float32 division, as TFLite's QUANTIZE does."""
    info = np.iinfo(dtype.numpy)
    scale, zp = broadcast_qparams(qp, np.ndim(x))
    # clipped while still float: a huge value must saturate, not wrap in the integer cast
    with np.errstate(over="ignore"):  # a huge value becomes inf, which the clip saturates
        q = round_half_away_array(np.asarray(x, np.float32) / scale) + zp
    return np.clip(q, info.min, info.max).astype(dtype.numpy)


def dequantize_array(q: np.ndarray, qp: QParams) -> np.ndarray:
    scale, zp = broadcast_qparams(qp, q.ndim, np.float64)
    return ((q.astype(np.float64) - zp) * scale).astype(np.float32)


def per_channel_weights(w: np.ndarray) -> tuple[np.ndarray, QParams]:
    """Symmetric int8 per output channel (axis 0); an all-zero channel gets scale 1."""
    peak = np.abs(w.reshape(len(w), -1)).max(axis=1).astype(np.float64)
    scales = tuple(f32(p / WEIGHT_MAX) if p > 0 else 1.0 for p in peak)
    qp = QParams(scales, (0,) * len(scales), axis=0)
    q = np.clip(quantize_array(w, qp).astype(np.int64), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int8)
    return q, qp


def finite_constant(node: Node | None, name: str, data: np.ndarray) -> None:
    """Constants to quantize hold finite values of a float32's range (NaN, Inf or 3e38 weights have
    no int8 form: their scales would overflow)."""
    real = np.asarray(data, np.float64)
    bad = ~np.isfinite(real) | (np.abs(real) > 1e30)
    if bad.any():
        where = f"node '{node.name}' ({node.op}): " if node is not None else ""
        value = real.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        raise QuantizationError(
            f"{where}constant '{name}' holds {int(bad.sum())} value(s) that cannot be quantized "
            f"(NaN, Inf or beyond 1e30; e.g. {value})"
        )


def hinted_weights(
    node: Node, name: str, w: np.ndarray, hint: QParams
) -> tuple[np.ndarray, QParams]:
    """The integers a QDQ model's weights hold (w is (q - 0) * scale, so w / scale rounds back to q),
    per tensor or per output channel (axis 0, where the passes put a weight's channel axis)."""
    if any(hint.zero_point):
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): weights '{name}' have non-zero zero points; TFLite's "
            "int8 scheme (and TFLM) needs symmetric weights: quantize them symmetrically "
            "(onnxruntime: WeightSymmetric=True, weight_type=QInt8)"
        )
    if hint.axis not in (None, 0):
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): weights '{name}' are quantized along axis {hint.axis}, "
            "not their output channels"
        )
    return quantize_array(w, hint), hint


def bias_int32(
    b: np.ndarray, input_qp: QParams, weight_qp: QParams, dtype: DType = DType.INT32
) -> tuple[np.ndarray, QParams]:
    """Bias at scale s_in * s_w[c]: int32 for int8 inputs, int64 for int16 inputs (16x8)."""
    scales = tuple(f32(np.float32(input_qp.scale[0]) * np.float32(s)) for s in weight_qp.scale)
    q = round_half_away_array(b.astype(np.float64) / np.asarray(scales, np.float64))
    info = np.iinfo(dtype.numpy)
    if q.size and not info.min <= float(q.min()) <= float(q.max()) <= info.max:
        worst = int(np.argmax(np.abs(q)))
        raise QuantizationError(
            f"bias {float(b.reshape(-1)[worst])} at scale {scales[min(worst, len(scales) - 1)]} "
            f"does not fit {dtype.value} (channel {worst}); clipping it would change the layer"
        )
    q = q.astype(dtype.numpy)
    return q, QParams(scales, (0,) * len(scales), axis=0 if len(scales) > 1 else None)


class _Quantizer:
    def __init__(self, graph: Graph, ranges: Ranges, wide: frozenset[str] = frozenset()) -> None:
        self.graph = graph
        self.ranges = ranges
        self.wide = wide  # nodes whose outputs are int16
        self.dtype: dict[str, DType] = {}
        self.origin: dict[
            str, str
        ] = {}  # an inserted value -> the float tensor whose range it carries
        self.editor = GraphEditor(graph)
        self.editor.nodes = []
        self.qp: dict[str, QParams] = {}

    def range_qparams(self, name: str, dtype: DType = DType.INT8) -> QParams:
        name = self.origin.get(name, name)
        hint = self.graph.quant_hints.get(name)
        if hint is not None and dtype == DType.INT8:  # the scale a QDQ model carries
            return hint
        if name not in self.ranges:
            raise QuantizationError(f"no calibration range for tensor '{name}'")
        choose = activation_qparams16 if dtype == DType.INT16 else activation_qparams
        return choose(*self.ranges[name])

    def set_int8(
        self, name: str, qp: QParams, like: str | None = None, dtype: DType = DType.INT8
    ) -> None:
        """Record `name` as an int8 (or int16) activation shaped like the float value `like`."""
        self.qp[name] = qp
        self.dtype[name] = dtype
        shape = self.graph.type_of(self.origin.get(like or name, like or name)).shape
        self.editor.values[name] = Value(name, TensorType(dtype, shape, qp))

    def converted(self, name: str, dtype: DType, node: Node) -> str:
        """`name` as an activation of `dtype` (a Requantize between int8 and int16 when needed)."""
        if self.dtype.get(name, DType.INT8) == dtype:
            return name
        out = self.editor.fresh_name(f"{name}_{dtype.value}")
        self.origin[out] = self.origin.get(name, name)
        self.set_int8(out, self.range_qparams(name, dtype), like=name, dtype=dtype)
        self.editor.nodes.append(
            Node(
                self.editor.fresh_name(f"{node.name}_to_{dtype.value}"),
                "Requantize",
                (name,),
                (out,),
                {"to": dtype.value},
            )
        )
        return out

    def const(self, hint: str, data: np.ndarray, qp: QParams) -> str:
        name = self.editor.add_const(hint, data)
        value = self.editor.values[name]
        self.editor.values[name] = Value(
            name, TensorType(value.type.dtype, value.type.shape, qp), value.data
        )
        return name

    def weights_and_bias(self, node: Node) -> list[str]:
        inputs = list(node.inputs)
        w = self.graph.const(inputs[1])
        if w is None:
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): weights must be constant to quantize"
            )
        finite_constant(node, inputs[1], w)
        hint = self.graph.quant_hints.get(inputs[1])
        if hint is not None:
            qw, wqp = hinted_weights(node, inputs[1], w, hint)
        elif self.graph.quant_hints:
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): weights '{inputs[1]}' carry no QDQ scales (a pass "
                "changed them, e.g. folding a BatchNormalization: fuse it before quantizing, as onnxruntime's quant_pre_process does)"
            )
        else:
            qw, wqp = per_channel_weights(w)
        inputs[1] = self.const(f"{node.name}_weights_int8", qw, wqp)
        b = (
            self.graph.const(inputs[2])
            if len(inputs) > 2 and inputs[2]
            else np.zeros(len(w), np.float32)
        )
        if b is None:
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): bias must be constant to quantize"
            )
        finite_constant(node, inputs[2] if len(inputs) > 2 else "bias", b)
        wide_input = self.dtype.get(inputs[0]) == DType.INT16
        try:
            qb, bqp = bias_int32(
                b, self.qp[inputs[0]], wqp, DType.INT64 if wide_input else DType.INT32
            )
        except QuantizationError as err:
            raise QuantizationError(f"node '{node.name}' ({node.op}): {err}") from None
        inputs[2:] = [self.const(f"{node.name}_bias_{qb.dtype.name}", qb, bqp)]
        if not wide_input:  # int64 accumulators (16x8) cannot overflow at these sizes
            check_accumulator(node, qw, qb)
        return inputs

    def constant_operand(self, name: str, qp: QParams | None = None) -> str:
        """An int8 copy of a float constant, with `qp` or else parameters over its own range."""
        data = self.graph.const(name)
        assert data is not None
        finite_constant(None, name, data)
        qp = qp or self.graph.quant_hints.get(name)
        qp = qp or activation_qparams(float(data.min()), float(data.max()))
        return self.const(f"{name}_int8", quantize_array(data, qp), qp)

    def requantized(self, name: str, qp: QParams, node: Node) -> str:
        if self.qp[name] == qp:
            return name
        out = self.editor.fresh_name(f"{name}_requantized")
        self.set_int8(out, qp, like=name)
        self.editor.nodes.append(
            Node(self.editor.fresh_name(f"{node.name}_requantize"), "Requantize", (name,), (out,))
        )
        return out

    def output_qparams(self, node: Node, inputs: list[str]) -> QParams:
        rule = spec_for(node.op).int8
        assert rule is not None
        if rule.output == SAME:
            return self.qp[inputs[0]]
        if rule.output == FIXED:
            assert rule.fixed is not None
            return QParams((rule.fixed[0],), (rule.fixed[1],))
        assert rule.output == CALIBRATED
        return self.range_qparams(node.outputs[0], self.dtype.get(inputs[0], DType.INT8))

    def qdq_pair(self, node: Node) -> bool:
        """A QDQ pair's Clip (the saturation of its QuantizeLinear) as a Requantize to the pair's
        parameters: the value held at its producer's scale, then quantized as the file says."""
        hint = self.graph.quant_hints.get(node.outputs[0])
        if node.op != "Clip" or hint is None:
            return False
        if not saturation_implies(node.attrs["min"], node.attrs["max"], hint):
            return False
        source = self.converted(node.inputs[0], DType.INT8, node)
        self.set_int8(node.outputs[0], hint)
        self.editor.nodes.append(Node(node.name, "Requantize", (source,), node.outputs))
        return True

    def node(self, node: Node) -> None:
        if self.qdq_pair(node):
            return
        rule = spec_for(node.op, node.name).int8
        if rule is None:
            supported = sorted(name for name, spec in REGISTRY.items() if spec.int8 is not None)
            raise QuantizationError(
                f"node '{node.name}': op '{node.op}' has no int8 kernel (int8 ops: {', '.join(supported)})"
            )
        # precision: 16x8 for promoted nodes with such a kernel; data movement follows its input
        follows = rule.alias or rule.output == SAME
        wide = rule.prepare16 is not None and (
            follows or (node.name in self.wide and takes_int16(node, self.graph))
        )
        act_inputs = [i for i in node.inputs if i and not self.editor.values[i].is_const]
        if follows:
            dtype = self.dtype.get(act_inputs[0], DType.INT8) if wide or rule.alias else DType.INT8
        else:
            dtype = DType.INT16 if wide else DType.INT8
        node = Node(
            node.name,
            node.op,
            tuple(self.converted(i, dtype, node) if i in act_inputs else i for i in node.inputs),
            node.outputs,
            dict(node.attrs),
        )
        if rule.weights:
            inputs = self.weights_and_bias(node)
        elif rule.same_inputs:  # every input takes the output's parameters; constants directly
            out_qp = self.range_qparams(node.outputs[0])
            inputs = [
                self.constant_operand(i, out_qp)
                if self.editor.values[i].is_const
                else self.requantized(i, out_qp, node)
                for i in node.inputs
            ]
        else:
            inputs = [
                self.constant_operand(i) if i and self.editor.values[i].is_const else i
                for i in node.inputs
            ]
        out_qp = self.output_qparams(node, inputs)
        for out in node.outputs:
            self.set_int8(out, out_qp, dtype=dtype)
        attrs = dict(node.attrs)
        if dtype == DType.INT8 and implied_clamp(attrs, out_qp):
            attrs.update(clip_min=-np.inf, clip_max=np.inf)
        self.editor.nodes.append(Node(node.name, node.op, tuple(inputs), node.outputs, attrs))


TFLITE_CLAMPS = {(0.0, np.inf), (0.0, 6.0), (-1.0, 1.0)}  # RELU, RELU6, RELU_N1_TO_1


def saturation_implies(lo: float, hi: float, qp: QParams) -> bool:
    """Whether clamping to [lo, hi] changes no int8 value with these parameters."""
    return activation_bounds(lo, hi, qp.scale[0], qp.zero_point[0]) == (INT8_MIN, INT8_MAX)


def implied_clamp(attrs: dict, qp: QParams) -> bool:
    """A fused clamp (not one of TFLite's activations) that int8 saturation already applies: a QDQ
    model's QuantizeLinear range, fused into the layer before it. Dropping it changes no integer."""
    lo, hi = attrs.get("clip_min", -np.inf), attrs.get("clip_max", np.inf)
    if (lo, hi) in TFLITE_CLAMPS or (lo, hi) == (-np.inf, np.inf):
        return False
    return saturation_implies(lo, hi, qp)


def drop_identity_requantize(graph: Graph) -> Graph:
    """Requantize steps between equal parameters (a QDQ pair on a tensor already at its scale) copy
    bytes: their consumers read the input instead."""
    editor = GraphEditor(graph)
    for node in graph.nodes:
        if node.op != "Requantize" or node.outputs[0] in graph.outputs:
            continue
        if graph.type_of(node.inputs[0]) == graph.type_of(node.outputs[0]):
            editor.remove_node(node.name)
            editor.rename_uses(node.outputs[0], node.inputs[0])
    return editor.build()


def check_accumulator(node: Node, weights: np.ndarray, bias: np.ndarray) -> None:
    """|sum (x - zp) * w + b| <= 255 * sum|w| + |b| must fit int32 for every output channel."""
    per_channel = np.abs(weights.reshape(len(weights), -1).astype(np.int64)).sum(axis=1)
    bound = 255 * per_channel + np.abs(bias.astype(np.int64))
    worst = int(bound.max())
    if worst > ACCUMULATOR_MAX:
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): worst-case accumulator {worst} exceeds int32 "
            f"(channel {int(bound.argmax())}); split the layer or use smaller weights"
        )


def quantize_graph(graph: Graph, ranges: Ranges, wide: Iterable[str] = ()) -> Graph:
    """The fixed-point graph of a float graph (fused, channels-last) given per-tensor clipping ranges.
    Nodes named in `wide` get int16 outputs (16x8) where they have such a kernel; inputs and outputs of
    the graph stay int8."""
    q = _Quantizer(graph, ranges, frozenset(wide))
    for name in graph.inputs:
        q.set_int8(name, q.range_qparams(name))
    for node in graph.nodes:
        q.node(node)
    outputs = [
        q.converted(name, DType.INT8, Node(f"{name}_output", "Requantize", (), ()))
        for name in graph.outputs
    ]
    for old, new in zip(graph.outputs, outputs):
        if old != new:  # the graph output keeps its name: swap names with the int8 copy
            q.editor.rename_value(new, f"{old}__int8_tmp")
            q.editor.rename_value(old, f"{old}{WIDE_SUFFIX}")
            q.editor.rename_value(f"{old}__int8_tmp", old)
    q.editor.outputs = tuple(graph.outputs)
    return drop_identity_requantize(q.editor.build())


def takes_int16(node: Node, graph: Graph) -> bool:
    """Whether a computing node has a 16x8 kernel for this form (the 16x8 elementwise kernels take two
    activations, so an Add of a constant stays int8)."""
    rule = spec_for(node.op).int8
    if rule is None or rule.prepare16 is None or rule.output != CALIBRATED or rule.alias:
        return False
    if rule.same_inputs:  # Concat: promoting it would requantize its inputs to int16 one by one
        return False
    return rule.weights or not any(i and graph.values[i].is_const for i in node.inputs)


def wide_capable(graph: Graph) -> list[str]:
    """Nodes that could run 16x8 (have an int16 kernel and compute, not just move data)."""
    return [node.name for node in graph.nodes if takes_int16(node, graph)]


def is_fixed_point(graph: Graph) -> bool:
    return all(graph.type_of(n).dtype == DType.INT8 for n in graph.inputs)
