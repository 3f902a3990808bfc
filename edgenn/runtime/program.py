"""Turn a fixed-point graph into a flat program: one int64 row per kernel call, constant blobs, and an
arena plan. Everything the kernels need is computed here once (the TFLM Prepare step)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgenn.errors import QuantizationError
from edgenn.ir import DType, Graph, Node, QParams
from edgenn.limits import check_bytes
from edgenn.ops import TABLES, kernel_for, spec_for
from edgenn.quant.fixed_point import real_multiplier
from edgenn.runtime.plan import ArenaPlan, Buffer, align, plan_arena

ROW_WIDTH = 64
INT32_MAX = 2**31 - 1
SHIFT_RANGE = (
    -31,
    31,
)  # what QuantizeMultiplier yields for reals below 2^31 (smaller ones flush to 0)
# the largest |x - zp| an activation of each type feeds an accumulator
INPUT_SPAN = {DType.INT8: 255, DType.INT16: 65535}


@dataclass(frozen=True)
class Program:
    rows: np.ndarray  # [steps, ROW_WIDTH] int64
    weights: np.ndarray  # int8 blob
    biases: np.ndarray  # int32 blob
    multipliers: np.ndarray  # int64 blob (Q31 multipliers)
    shifts: np.ndarray  # int64 blob
    plan: ArenaPlan
    offsets: dict[str, int]  # arena offset of every activation (aliases share their source's)
    step_outputs: tuple[str, ...]  # the tensor each row writes (for tracing)
    input_offsets: np.ndarray
    input_sizes: np.ndarray
    output_offsets: np.ndarray
    output_sizes: np.ndarray
    patch_size: int  # int8 scratch for one gathered convolution window
    accumulator_size: int  # int32 scratch for one output pixel's channels
    row_lengths: tuple[int, ...]  # fields each step's prepare wrote (the rest is padding)
    # the program tables its kernels declare (ops.Table), by name, each in its declared type
    tables: dict[str, np.ndarray]
    state_size: int  # bytes of the persistent state region (0: a stateless model)
    state_offsets: dict[str, int]  # state region offset of every node that keeps state


class ProgramBuilder:
    """What an op's prepare() uses: arena offsets, shapes, quantization parameters, blob appends."""

    def __init__(self, graph: Graph, offsets: dict[str, int]) -> None:
        self.graph = graph
        self.offsets = offsets
        self._weights: list[np.ndarray] = []
        self._biases: list[np.ndarray] = []
        self._mults: list[int] = []
        self._shifts: list[int] = []
        self._sizes = {"weights": 0, "biases": 0}
        self.patch_size = 1
        self.accumulator_size = 1
        self._tables: dict[str, list[np.ndarray]] = {}
        self.state_size = 0
        self.state_offsets: dict[str, int] = {}
        self.node: Node | None = None  # the node being prepared, for errors that name it

    def refuse(self, problem: str) -> QuantizationError:
        where = f"node '{self.node.name}' ({self.node.op})" if self.node else "program"
        return QuantizationError(f"{where}: {problem}")

    def check_dot(self, weights: np.ndarray, bias: np.ndarray, activation: str) -> None:
        """Every output channel's worst-case int32 sum, |x - zp| * sum |w| + |bias|, must fit (a file
        made elsewhere can hold layers whose sums wrap, which TFLM would compute wrongly too)."""
        if self.graph.type_of(activation).dtype != DType.INT8:
            return  # 16x8 layers accumulate in int64
        span = INPUT_SPAN[DType.INT8]
        rows = np.abs(np.asarray(weights, np.int64).reshape(len(weights), -1)).sum(axis=1)
        worst = span * rows + np.abs(np.asarray(bias, np.int64).reshape(-1))
        if int(worst.max(initial=0)) > INT32_MAX:
            raise self.refuse(
                f"worst-case accumulator {int(worst.max()):,} exceeds int32 (output channel "
                f"{int(worst.argmax())}); the layer's sums would wrap"
            )

    def check_sum(self, taps: int, activation: str) -> None:
        """A pooling or mean sum over `taps` values of the activation must fit int32."""
        span = INPUT_SPAN.get(self.graph.type_of(activation).dtype, 255)
        if taps * span > INT32_MAX:
            raise self.refuse(
                f"a sum over {taps:,} values of '{activation}' can exceed int32 "
                f"(at most {INT32_MAX // span:,} fit)"
            )

    def arena(self, name: str) -> int:
        return self.offsets[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.type_of(name).shape

    def qparams(self, name: str) -> QParams:
        qp = self.graph.type_of(name).qparams
        if qp is None:
            raise QuantizationError(f"tensor '{name}' has no quantization parameters")
        return qp

    def scale_zp(self, name: str) -> tuple[float, int]:
        qp = self.qparams(name)
        return qp.scale[0], qp.zero_point[0]

    def channel_multipliers(
        self, node: Node, weights: str, channels: int, s_in: float, s_out: float
    ) -> int:
        """One (multiplier, shift) per output channel for s_in * s_w / s_out, appended to the blobs.

        A per-tensor weight scale is repeated for every channel (kernels always read one pair per
        channel); a per-channel list must have exactly one scale per output channel, or the kernels
        would read past the table."""
        qp = self.qparams(weights)
        if any(qp.zero_point):  # TFLite's int8 scheme: symmetric weights (TFLM refuses others)
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): weights '{weights}' have non-zero zero points "
                f"{sorted(set(qp.zero_point))[:4]}; int8 weights must be symmetric"
            )
        scales = qp.scale
        if len(scales) == 1:
            scales = scales * channels
        elif len(scales) != channels:
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): weights '{weights}' carry {len(scales)} scales "
                f"for {channels} output channels"
            )
        return self.multipliers([real_multiplier(s_in, s_w, divisor=s_out) for s_w in scales])

    def const(self, name: str) -> np.ndarray:
        data = self.graph.const(name)
        assert data is not None, name
        return data

    def operand(self, name: str) -> tuple[int, int]:
        """(1, offset in the weights blob) for a constant int8 operand, (0, arena offset) otherwise."""
        value = self.graph.values[name]
        if value.data is not None:
            return 1, self.weights(value.data)
        return 0, self.arena(name)

    def weights(self, data: np.ndarray) -> int:
        offset = self._sizes["weights"]
        self._weights.append(np.ascontiguousarray(data, np.int8).reshape(-1))
        self._sizes["weights"] += data.size
        return offset

    def biases(self, data: np.ndarray) -> int:
        offset = self._sizes["biases"]
        self._biases.append(np.ascontiguousarray(data, np.int32).reshape(-1))
        self._sizes["biases"] += data.size
        return offset

    def wide(self, values: np.ndarray) -> int:
        """int64 constants (16x8 biases, lookup tables), kept in the 64-bit multiplier blob."""
        return self._append([(int(v), 0) for v in np.asarray(values, np.int64).reshape(-1)])

    def multipliers(self, pairs: list[tuple[int, int]]) -> int:
        """(Q31 multiplier, shift) pairs; each is checked to be one the kernels can apply."""
        for multiplier, shift in pairs:
            if not 0 <= multiplier <= INT32_MAX or not SHIFT_RANGE[0] <= shift <= SHIFT_RANGE[1]:
                raise self.refuse(
                    f"rescaling by {multiplier} * 2^({shift} - 31) is out of the kernels' range "
                    f"(multiplier in [0, 2^31), shift in [{SHIFT_RANGE[0]}, {SHIFT_RANGE[1]}]): "
                    "the scales are extreme"
                )
        return self._append(pairs)

    def _append(self, pairs: list[tuple[int, int]]) -> int:
        offset = len(self._mults)
        for multiplier, shift in pairs:
            self._mults.append(multiplier)
            self._shifts.append(shift)
        return offset

    def table(self, name: str, values: np.ndarray) -> int:
        """Append `values` to program table `name` (declared with ops.register_table, and in the
        kernel's `tables`); returns their offset there, in elements. Values must fit its type."""
        table = TABLES.get(name)
        if table is None:
            raise self.refuse(f"program table '{name}' is not registered")
        values = np.asarray(values).reshape(-1)
        info = np.iinfo(table.dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise self.refuse(f"values for program table '{name}' do not fit {table.c_type}")
        parts = self._tables.setdefault(name, [])
        offset = sum(part.size for part in parts)
        parts.append(values.astype(table.dtype))
        return offset

    def state(self, nbytes: int) -> int:
        """Reserve `nbytes` of the persistent state region for the node being prepared (bytes that
        outlive a call, zeroed by reset); planned apart from the arena, which each call reuses.
        Returns the offset, 16-byte aligned."""
        assert self.node is not None, "state belongs to a node"
        where = f"node '{self.node.name}' ({self.node.op})"
        offset = (self.state_size + 15) // 16 * 16
        check_bytes(offset + nbytes, f"{where}: persistent state")
        self.state_size = offset + nbytes
        self.state_offsets[self.node.name] = offset
        return offset

    def tables_for(self, opcodes: set[int]) -> dict[str, np.ndarray]:
        """Every table the kernels of `opcodes` declare (an unused one as one zero element)."""
        names = sorted({t for op in opcodes for t in kernel_for(op).tables})
        return {
            n: np.concatenate(self._tables[n])
            if n in self._tables
            else np.zeros(1, TABLES[n].dtype)
            for n in names
        }

    def scratch(self, patch: int = 0, accumulators: int = 0) -> None:
        """Ask for kernel scratch space (shared by all steps, allocated once by the runtime)."""
        where = f"node '{self.node.name}' ({self.node.op})" if self.node else "a kernel"
        check_bytes(patch + 4 * accumulators, f"{where}: kernel scratch")
        self.patch_size = max(self.patch_size, patch)
        self.accumulator_size = max(self.accumulator_size, accumulators)

    def blobs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(1, dtype)

        mults = np.array(self._mults or [0], np.int64)
        shifts = np.array(self._shifts or [0], np.int64)
        return cat(self._weights, np.int8), cat(self._biases, np.int32), mults, shifts


def _alias_roots(graph: Graph) -> dict[str, str]:
    """Reshape-like outputs share their input's bytes: map each value to the buffer that holds it."""
    root: dict[str, str] = {}
    for node in graph.nodes:
        rule = spec_for(node.op).int8
        if rule is not None and rule.alias:
            root[node.outputs[0]] = root.get(node.inputs[0], node.inputs[0])
    return root


def prepare_step(node: Node, graph: Graph, builder: ProgramBuilder) -> list[int]:
    """The node's program row: its 16x8 kernel when any activation it touches is int16."""
    rule = spec_for(node.op).int8
    assert rule is not None and rule.prepare is not None, node.op
    names = [n for n in (*node.inputs, *node.outputs) if n and not graph.values[n].is_const]
    if any(graph.type_of(n).dtype == DType.INT16 for n in names):
        if rule.prepare16 is None:
            raise QuantizationError(f"node '{node.name}' ({node.op}) has no int16 (16x8) kernel")
        return rule.prepare16(node, graph, builder)
    return rule.prepare(node, graph, builder)


def check_row(fields: list[int], node: Node) -> None:
    """A row is as long as its kernel's declared layout (longer only for kernels with a tail): a
    prepare that writes another count is a bug the kernel would read past."""
    kernel = kernel_for(int(fields[0]))
    want, got = kernel.prepared_fields + 1, len(fields)
    if got != want and not (kernel.tail and got > want):
        raise QuantizationError(
            f"node '{node.name}' ({node.op}): kernel '{kernel.name}' declares {want} row fields, "
            f"its prepare wrote {got}"
        )


def runs_kernel(op: str) -> bool:
    rule = spec_for(op).int8
    return rule is None or not rule.alias


def _lifetimes(graph: Graph, steps: list[Node], root: dict[str, str]) -> list[Buffer]:
    """One buffer per root: written first at its producer's step, read last by its last reader."""
    first: dict[str, int] = {root.get(n, n): -1 for n in graph.inputs}
    last: dict[str, int] = {}
    for index, node in enumerate(steps):
        for out in node.outputs:
            first.setdefault(root.get(out, out), index)
    step_of = {n.name: i for i, n in enumerate(steps)}
    for node in graph.nodes:
        position = step_of.get(node.name)
        for name in node.inputs:
            if name and not graph.values[name].is_const:
                key = root.get(name, name)
                # an alias is read when its readers run; an alias node itself reads nothing
                if position is not None:
                    last[key] = max(last.get(key, -1), position)
    for name in graph.outputs:
        last[root.get(name, name)] = len(steps)
    return [
        Buffer(
            name,
            graph.type_of(name).nbytes,
            first[name],
            max(last.get(name, first[name]), first[name]),
        )
        for name in first
    ]


def _in_place_input(
    graph: Graph, node: Node, index: int, root: dict[str, str], buffers: dict[str, Buffer]
) -> str | None:
    """The input an elementwise step may write over: one of its output's type whose buffer's last
    reader is this step (so not a graph output)."""
    rule = spec_for(node.op).int8
    if rule is None or not rule.in_place:
        return None
    out_type = graph.type_of(node.outputs[0])
    for name in node.inputs:
        if not name or graph.values[name].is_const:
            continue
        in_type = graph.type_of(name)
        if (in_type.dtype, in_type.shape) != (out_type.dtype, out_type.shape):
            continue
        buffer = buffers.get(root.get(name, name))
        if buffer is not None and buffer.last == index:
            return name
    return None


WRITE_AHEAD = 32  # output pixels a conv kernel may write before it reads the next pixels' windows


def _conv_write_lag(graph: Graph, node: Node) -> int | None:
    """For an int8 convolution, how far below its input its output must start so that the kernels,
    which go through the output pixels in order and write each block of up to WRITE_AHEAD pixels
    after reading its windows, never overwrite an input byte a later window reads (None: not such a
    convolution). A 1x1 convolution with unit steps and no padding is left out: the C kernel reads
    those windows in place, output channel pairs outside."""
    if node.op != "Conv":
        return None
    attrs = spec_for(node.op).attrs_of(node)
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    xt, yt = graph.type_of(x), graph.type_of(y)
    if not attrs["channels_last"] or len(xt.shape) not in (3, 4):
        return None
    if xt.dtype != DType.INT8 or yt.dtype != DType.INT8:
        return None

    def pair(values, one_d_first: int = 1) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        return (one_d_first, values[0]) if len(xt.shape) == 3 else (values[0], values[1])

    width, (oh, ow) = pair(xt.shape[1:-1])[1], pair(yt.shape[1:-1])
    c, oc = xt.shape[-1], yt.shape[-1]
    (kh, kw), (sh, sw), (pt, pl) = (
        pair(graph.type_of(w).shape[1:-1]),
        pair(attrs["strides"]),
        pair(attrs["pads"], 0),
    )
    if (kh, kw, sh, sw, pt, pl) == (1, 1, 1, 1, 0, 0):
        return None
    pixel = np.arange(oh * ow)
    iy0 = np.maximum(pixel // ow * sh - pt, 0)
    ix0 = np.maximum(pixel % ow * sw - pl, 0)
    lowest = (iy0 * width + ix0) * c  # the lowest input byte each window reads (or past it)
    still_read = np.minimum.accumulate(lowest[::-1])[::-1]  # by the windows from that pixel on
    written = np.minimum(pixel + WRITE_AHEAD, oh * ow) * oc
    return align(max(int((written - still_read).max(initial=0)), 0))


def _written_over(
    graph: Graph,
    node: Node,
    index: int,
    root: dict[str, str],
    buffers: dict[str, Buffer],
    lag: int | None,
) -> tuple[str, int] | None:
    """(input, lag) when a step's output may go over that input's bytes, starting `lag` bytes
    below it: an elementwise step's output exactly over an input (lag 0), or a convolution's over
    its input as its kernels go (`lag`: its `_conv_write_lag`, None where not to), where the input's
    last reader is this step and the overlap saves bytes."""
    if node.outputs[0] not in buffers:
        return None
    over = _in_place_input(graph, node, index, root, buffers)
    if over is not None or lag is None:
        return (over, 0) if over is not None else None
    source = buffers.get(root.get(node.inputs[0], node.inputs[0]))
    if source is None or source.last != index:
        return None
    return (node.inputs[0], lag) if lag < buffers[node.outputs[0]].size else None


def _planned(
    graph: Graph, steps: list[Node], lags: dict[int, int]
) -> tuple[ArenaPlan, dict[str, str], dict[str, int]]:
    """The arena plan with each step's output folded into an input's buffer where it may go over
    it (elementwise steps, and the convolutions at the step indices of `lags`, each that many bytes
    below its input), and the maps from each value to its buffer and to its bytes from that
    buffer's start."""
    root = _alias_roots(graph)
    buffers = {b.name: b for b in _lifetimes(graph, steps, root)}
    members: dict[str, list[str]] = {}  # the values each buffer holds
    for name in graph.values:
        members.setdefault(root.get(name, name), []).append(name)
    shift: dict[str, int] = {}  # bytes from a value's buffer's start (0 unless merged)
    for index, node in enumerate(steps):  # in order: an earlier merge may enable a later one
        found = _written_over(graph, node, index, root, buffers, lags.get(index))
        if found is None:
            continue
        # the output's buffer (and its aliases) folds into the input's, `lag` bytes below the input
        over, lag = found
        shared, out = root.get(over, over), node.outputs[0]
        at = shift.get(over, 0) - lag
        bump = max(-at, 0)  # the output would start before the buffer: everything moves up
        for name in members[shared]:
            shift[name] = shift.get(name, 0) + bump
        for name in members[out]:
            root[name], shift[name] = shared, at + bump
        members[shared] += members.pop(out)
        merged, written = buffers[shared], buffers.pop(out)
        buffers[shared] = replace(
            merged,
            size=max(merged.size + bump, at + bump + written.size),
            last=max(merged.last, written.last),
        )
    return plan_arena(list(buffers.values())), root, shift


def _smallest_plan(
    graph: Graph, steps: list[Node]
) -> tuple[ArenaPlan, dict[str, str], dict[str, int]]:
    """_planned with the convolutions written over their inputs that make the arena smaller: from
    all of them, each dropped in step order where the arena does not grow without it (a conv's lag
    grows the buffer it joins, which can cost more than it saves), and none if that is no larger."""
    every = {}
    for index, node in enumerate(steps):
        lag = _conv_write_lag(graph, node)
        if lag is not None:
            every[index] = lag
    none = _planned(graph, steps, {})
    if not every:
        return none
    lags, best = dict(every), _planned(graph, steps, every)
    for index in every:
        fewer = {i: lag for i, lag in lags.items() if i != index}
        trial = _planned(graph, steps, fewer)
        if trial[0].size <= best[0].size:
            lags, best = fewer, trial
    return none if none[0].size <= best[0].size else best


def build_program(graph: Graph, block: int = 1) -> Program:
    """The program of a graph of one sample (or, `block` > 1, of a dense model's block of samples,
    runtime/batched.py)."""
    for name in (*graph.inputs, *graph.outputs):
        if graph.type_of(name).dtype not in (DType.INT8, DType.INT16):
            raise QuantizationError(
                f"tensor '{name}' is {graph.type_of(name).dtype.value}; the runtime needs int8 or int16"
            )
    if graph.batch_size() != block:
        raise QuantizationError(
            "the runtime plans one sample at a time: import the model with batch size 1"
        )
    steps = [n for n in graph.nodes if runs_kernel(n.op)]
    plan, root, shift = _smallest_plan(graph, steps)
    check_bytes(plan.size, f"the arena of '{graph.name}'")
    offsets = {
        name: plan.offsets[root.get(name, name)] + shift.get(name, 0)
        for name in graph.values
        if root.get(name, name) in plan.offsets
    }
    builder = ProgramBuilder(graph, offsets)
    rows = np.zeros((max(len(steps), 1), ROW_WIDTH), np.int64)
    lengths = []
    for i, node in enumerate(steps):
        builder.node = node
        try:
            fields = prepare_step(node, graph, builder)
        except QuantizationError as err:
            if str(err).startswith("node '"):
                raise
            raise QuantizationError(f"node '{node.name}' ({node.op}): {err}") from None
        except (
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            ZeroDivisionError,
            OverflowError,
        ) as err:
            # attributes of the wrong type or range in a damaged file (a string where a number goes)
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): malformed attributes or parameters "
                f"({type(err).__name__}: {' '.join(str(err).split())})"
            ) from None
        if len(fields) > ROW_WIDTH:
            raise QuantizationError(
                f"node '{node.name}' ({node.op}): too many operands for one program row"
            )
        check_row(fields, node)
        rows[i, : len(fields)] = fields
        lengths.append(len(fields))
    weights, biases, mults, shifts = builder.blobs()

    def table(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([offsets[n] for n in names], np.int64),
            np.array([graph.type_of(n).nbytes for n in names], np.int64),  # bytes: int16 is 2
        )

    in_off, in_size = table(graph.inputs)
    out_off, out_size = table(graph.outputs)
    return Program(
        rows[: len(steps)],
        weights,
        biases,
        mults,
        shifts,
        plan,
        offsets,
        tuple(n.outputs[0] for n in steps),
        in_off,
        in_size,
        out_off,
        out_size,
        builder.patch_size,
        builder.accumulator_size,
        tuple(lengths),
        builder.tables_for({int(row[0]) for row in rows[: len(steps)]}),
        builder.state_size,
        builder.state_offsets,
    )
