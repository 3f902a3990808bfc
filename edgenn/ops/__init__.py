"""The op registry: one `OpSpec` per IR op, declared in the module of its op family.

An OpSpec holds everything the compiler knows about an op: how it is read from ONNX, its shape inference,
its float reference (numpy, the source of truth), its MAC count, and how it behaves under the channels-last
layout change. Later stages (integer kernels, C and TFLite emitters) add their fields here.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgenn.errors import EdgennError, GraphError, ShapeError, UnsupportedOpError
from edgenn.ir import Attrs, Node, TensorType
from edgenn.limits import check_bytes

InferFn = Callable[[Sequence[TensorType | None], Attrs], list[TensorType]]
ReferenceFn = Callable[[Sequence[np.ndarray | None], Attrs], list[np.ndarray]]
MacsFn = Callable[[Sequence[TensorType | None], Sequence[TensorType], Attrs], int]


class ImportContext(Protocol):
    """What an op's ONNX reader may ask of the importer."""

    opset: int

    def const(self, name: str) -> np.ndarray | None: ...

    def type_of(self, name: str) -> TensorType: ...


@dataclass(frozen=True)
class OnnxNode:
    """An ONNX node reduced to plain Python: attribute values decoded, omitted inputs as ""."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]

    def input(self, i: int) -> str:
        return self.inputs[i] if i < len(self.inputs) else ""


@dataclass(frozen=True)
class Imported:
    """What an op's ONNX reader returns: the IR op, its inputs (a subset/reordering of the ONNX ones) and
    normalized attributes. `n_outputs` says how many ONNX outputs the IR node keeps."""

    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    n_outputs: int = 1


class Layout:
    """How an op reacts to the channels-last rewrite (passes/channels_last.py)."""

    FIXED = "fixed"  # needs its input in the original (channels-first) layout
    SPATIAL = "spatial"  # has a channels_last attribute; its same-rank inputs are permuted
    ELEMENTWISE = "elementwise"  # any layout, as long as all non-constant inputs share it
    AXES = "axes"  # any layout, after `permute_attrs` maps its axis attributes


CALIBRATED, SAME, FIXED = "calibrated", "same", "fixed"


@dataclass(frozen=True)
class Int8Spec:
    """How an op is quantized and run in integers.

    output: how its output's quantization parameters are chosen: CALIBRATED from the observed range, SAME
      as its first input (data movement, max/avg pooling), FIXED (Softmax, Logistic, Tanh: `fixed`).
    weights: input 1 is a weight tensor quantized per output channel (axis 0), input 2 an int32 bias.
    same_inputs: every input is requantized to the output's parameters first (Concat).
    alias: the output is the input's bytes under another shape; no kernel runs (Reshape and friends).
    in_place: elementwise: the kernel reads element i of its inputs before writing element i of the
      output, so the output may take the bytes of an equally shaped input that dies at this op.
    prepare: (node, graph, builder) -> the program row: opcode, then integer fields (computed once, in
      float64 where scales are involved, as TFLM's Prepare does). The kernel lives beside it.
    prepare16: the same for int16 activations (ops/wide.py); None where the op has no 16x8 kernel.
    """

    output: str = CALIBRATED
    fixed: tuple[float, int] | None = None
    weights: bool = False
    same_inputs: bool = False
    alias: bool = False
    in_place: bool = False
    prepare: Callable[..., list[int]] | None = None
    prepare16: Callable[..., list[int]] | None = (
        None  # the 16x8 kernel's row, for int16 activations
    )


KernelFn = Callable[..., None]  # (row, arena, weights, biases, mults, shifts, rounding, patch, acc)


def row_layout(name: str, fields: str) -> Any:
    """A kernel's program row declared once, by field name: a named tuple of each field's index
    (the opcode is field 0). Numba reads a global named tuple as constants, so a kernel writes
    `row[CONV_ROW.stride]` at no cost, and the C generator emits the same indices as #defines."""
    names = ("op", *fields.split())
    if len(set(names)) != len(names):
        raise GraphError(f"row layout '{name}' names a field twice")
    layout = namedtuple(name, names)  # type: ignore[misc]  # the type's name is the layout's
    return layout(*range(len(names)))


@dataclass(frozen=True)
class Table:
    """A named, typed constant segment of the program that kernels declare beside the four shared
    blobs (int8 weights, int32 biases, int64 multipliers and shifts): a resize's source indices, a
    sparse layer's indices, a spiking layer's thresholds. Prepare appends to it with
    `ProgramBuilder.table(name, values)`; a kernel declaring it receives it as an argument after the
    shared ones, and the C kernels read it as `ctx-><name>`. A host-only table (the weights laid
    out for a host vector core) is never written into generated C."""

    name: str
    dtype: Any  # a numpy integer type: np.int8, np.int16 or np.int32 (C has no 64-bit tables)
    doc: str
    host_only: bool = False

    @property
    def c_type(self) -> str:
        return f"{np.dtype(self.dtype).name}_t"


TABLES: dict[str, Table] = {}


def register_table(name: str, dtype: Any, doc: str, host_only: bool = False) -> Table:
    if name in TABLES or name in SHARED_SEGMENTS:
        raise GraphError(f"program table '{name}' registered twice")
    if np.dtype(dtype) not in (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32)):
        raise GraphError(f"program table '{name}': {np.dtype(dtype)} is not int8, int16 or int32")
    if not name.isidentifier() or name != name.lower():
        raise GraphError(f"program table '{name}' must be a lower-case identifier")
    TABLES[name] = Table(name, dtype, doc, host_only)
    return TABLES[name]


# what every kernel receives, in order, before its own tables and state
SHARED_SEGMENTS = (
    "row",
    "arena",
    "weights",
    "biases",
    "mults",
    "shifts",
    "rounding",
    "patch",
    "acc",
)


@dataclass(frozen=True)
class Variant:
    """Another implementation of a kernel for CPUs with `feature` (an LLVM feature name as
    llvmlite reports the host's: "avx512vnni", "avxvnni", "avx2", "dotprod"), giving the same
    integers as the generic function; the runtime takes the first variant the CPU has."""

    feature: str
    function: KernelFn


@dataclass(frozen=True)
class Kernel:
    """An integer kernel, declared in its op family's file: its Numba function, its row layout (see
    `row_layout`), the C kernel it maps to (a function in codegen/c_kernels/<c_source>), and
    `c_only`: trailing fields that only the C generator fills (a conv's tap-sum table offset).
    `tables`: the program tables (see `Table`) it reads, passed in this order after the shared
    arguments; `state`: it keeps bytes across calls (`ProgramBuilder.state`), passed last as an int8
    array that `Runtime.reset_state()` zeroes. Opcodes are given by the registry in registration
    order, so no two kernels share one."""

    name: str
    function: KernelFn
    layout: Any
    opcode: int
    c_function: str | None = None
    c_source: str | None = None
    c_only: tuple[str, ...] = ()
    tail: bool = False  # groups of fields follow the declared ones (Concat: one per input)
    tables: tuple[str, ...] = ()
    state: bool = False
    variants: tuple[Variant, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """The row's fields after the opcode, in order."""
        return tuple(self.layout._fields[1:])

    @property
    def prepared_fields(self) -> int:
        """How many fields prepare writes (the C-only ones come after)."""
        return len(self.fields) - len(self.c_only)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The names its Numba function takes, in order."""
        return (*SHARED_SEGMENTS, *self.tables, *(("state",) if self.state else ()))

    def function_for(self, features: frozenset[str]) -> tuple[str, KernelFn]:
        """(variant name, function) for a CPU with `features`: the first variant it can run, else
        the generic function."""
        for variant in self.variants:
            if variant.feature in features:
                return variant.feature, variant.function
        return "generic", self.function

    def row(self, **values: int) -> list[int]:
        """The row from its fields by name; a missing or unknown field is a bug in prepare."""
        names = self.fields[: self.prepared_fields]
        if set(values) != set(names):
            wrong = sorted(set(values) ^ set(names))
            raise GraphError(f"kernel '{self.name}': row fields {wrong} missing or unknown")
        return [self.opcode, *(int(values[n]) for n in names)]

    def retag(self, row: list[int]) -> list[int]:
        """Another kernel's row under this kernel's opcode: kernels that share a layout (the int16
        variant of an int8 kernel) share their prepare."""
        if kernel_for(row[0]).layout is not self.layout:
            raise GraphError(f"kernel '{self.name}' does not share the layout of opcode {row[0]}")
        return [self.opcode, *row[1:]]


KERNELS: dict[str, Kernel] = {}


def spread(names: str, values: Sequence[int]) -> dict[str, int]:
    """Row fields from a group of values (`**spread("d0 d1 d2 d3", shape)` in a Kernel.row call)."""
    keys = names.split()
    if len(keys) != len(values):
        raise GraphError(f"fields {keys} take {len(keys)} values, got {len(values)}")
    return {k: int(v) for k, v in zip(keys, values)}


def register_kernel(
    name: str,
    function: KernelFn,
    layout: Any,
    c: tuple[str, str] | None = None,
    c_only: tuple[str, ...] = (),
    tail: bool = False,
    tables: tuple[str, ...] = (),
    state: bool = False,
    variants: Mapping[str, KernelFn] | None = None,
) -> Kernel:
    """Register a kernel; `variants` maps a CPU feature to a faster function with the same results
    (tried in the order given)."""
    if name in KERNELS:
        raise GraphError(f"kernel '{name}' registered twice")
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise GraphError(f"kernel '{name}' reads unregistered program tables {unknown}")
    c_function, c_source = c if c is not None else (None, None)
    kernel = Kernel(
        name,
        function,
        layout,
        len(KERNELS) + 1,
        c_function,
        c_source,
        c_only,
        tail,
        tuple(tables),
        state,
        tuple(Variant(f, fn) for f, fn in (variants or {}).items()),
    )
    KERNELS[name] = kernel
    return kernel


def kernel_for(opcode: int) -> Kernel:
    for kernel in KERNELS.values():
        if kernel.opcode == opcode:
            return kernel
    raise GraphError(f"no kernel has opcode {opcode}")


def _no_macs(
    inputs: Sequence[TensorType | None], outputs: Sequence[TensorType], attrs: Attrs
) -> int:
    return 0


@dataclass(frozen=True)
class OpSpec:
    name: str
    infer: InferFn
    reference: ReferenceFn
    from_onnx: Callable[[OnnxNode, ImportContext], Imported] | None = None
    onnx_ops: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)  # defaults of IR attributes
    macs: MacsFn = _no_macs
    layout: str = Layout.FIXED
    # maps attributes to a permuted input layout; returns None when the op cannot follow it
    permute_attrs: Callable[[Attrs, tuple[int, ...]], Attrs | None] | None = None
    # the output's layout for an input permuted by perm (original attributes); default: the same perm
    output_layout: Callable[[Attrs, tuple[int, ...]], tuple[int, ...] | None] | None = None
    fuses_activation: bool = False  # has clip_min/clip_max attributes (fused Relu/Clip)
    examples: Callable[[], list[OpExample]] = list
    int8: Int8Spec | None = None  # None: no integer kernel

    def attrs_of(self, node: Node) -> dict[str, Any]:
        return {**self.attrs, **node.attrs}

    def infer_checked(self, node: Node, in_types: Sequence[TensorType | None]) -> list[TensorType]:
        """Shape inference with errors that name the node."""
        try:
            out = self.infer(in_types, self.attrs_of(node))
        except EdgennError as err:
            raise type(err)(f"node '{node.name}' ({node.op}): {err}") from None
        except (ValueError, IndexError, TypeError, ZeroDivisionError, AssertionError) as err:
            # AssertionError: a required input is missing (e.g. from a damaged file)
            raise ShapeError(
                f"node '{node.name}' ({node.op}): cannot infer shapes: {err or 'a required input is missing'}"
            ) from None
        for t in out:
            if any(d <= 0 for d in t.shape):
                raise ShapeError(
                    f"node '{node.name}' ({node.op}) would produce a zero or negative dimension {t.shape}"
                )
            check_bytes(t.nbytes, f"node '{node.name}' ({node.op}): output {t.shape}")
        return out

    def run(self, node: Node, inputs: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """The float reference; numpy's complaints about odd attributes (repeated axes, indices out
        of range) become one error naming the node."""
        try:
            return self.reference(inputs, self.attrs_of(node))
        except EdgennError:
            raise
        except (ValueError, IndexError, TypeError, ZeroDivisionError) as err:  # AxisError is one
            raise ShapeError(
                f"node '{node.name}' ({node.op}): cannot compute: {' '.join(str(err).split())}"
            ) from None


@dataclass(frozen=True)
class OpExample:
    """A single-node ONNX case used by the contract tests: the op checked against onnxruntime."""

    name: str
    op_type: str
    input_shapes: tuple[tuple[int, ...], ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    constants: Mapping[int, np.ndarray] = field(default_factory=dict)  # input index -> initializer
    opset: int = 17


LowerFn = Callable[[Any, Node], None]  # (codegen.tflite.Lowering, node): emits TFLite operators


@dataclass(frozen=True)
class TFLiteForm:
    """How the writer lowers an op to TFLite (declared in the op's family file): the lowering and the
    builtins it may emit, with the operator version each needs for int8/int16 tensors."""

    lower: LowerFn
    versions: Mapping[str, int]


TFLITE_FORMS: dict[str, TFLiteForm] = {}


def register_tflite(*ops: str, lower: LowerFn, versions: Mapping[str, int]) -> None:
    for op in ops:
        if op in TFLITE_FORMS:
            raise GraphError(f"op '{op}' has two TFLite lowerings")
        TFLITE_FORMS[op] = TFLiteForm(lower, dict(versions))


def tflite_unary(
    builtin: str, options: Callable[[Node], tuple[str, dict[str, Any]] | None] = lambda n: None
) -> LowerFn:
    """The lowering of an op that is one builtin over the same inputs and output."""

    def lower(lw: Any, node: Node) -> None:
        lw.emit(
            builtin,
            [lw.tensor(i) for i in node.inputs],
            [lw.tensor(node.outputs[0])],
            options(node),
        )

    return lower


ReadFn = Callable[..., None]  # (frontend.tflite reader, name, inputs, outputs, operator)
TFLITE_READERS: dict[str, ReadFn] = {}  # TFLite builtin -> its reader, declared by the op families


def register_tflite_reader(*builtins: str, read: ReadFn) -> None:
    for builtin in builtins:
        if builtin in TFLITE_READERS:
            raise GraphError(f"TFLite builtin {builtin} has two readers")
        TFLITE_READERS[builtin] = read


def tflite_read_as(op: str, **attrs: Any) -> ReadFn:
    """The reader of a builtin that is one IR op over its first input, with fixed attributes."""

    def read(r: Any, name: str, ins: list[str], outs: list[str], operator: Any) -> None:
        r.emit(name, op, ins[:1], outs, **attrs)

    return read


REGISTRY: dict[str, OpSpec] = {}
ONNX_OPS: dict[str, OpSpec] = {}


def register(*specs: OpSpec) -> None:
    for spec in specs:
        if spec.name in REGISTRY:
            raise GraphError(f"op '{spec.name}' registered twice")
        REGISTRY[spec.name] = spec
        for onnx_op in spec.onnx_ops:
            ONNX_OPS[onnx_op] = spec


def spec_for(op: str, node_name: str = "?") -> OpSpec:
    spec = REGISTRY.get(op)
    if spec is None:
        raise UnsupportedOpError(f"node '{node_name}': op '{op}' is not registered")
    return spec


# ---- helpers shared by the op families ----


def same_type(inputs: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    """Shape inference of ops whose output looks like their first input."""
    return [inputs[0]]


def positive_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        raise ShapeError(f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def clip_range(values: np.ndarray, attrs: Attrs) -> np.ndarray:
    """Apply a fused activation (clip_min/clip_max attributes; ±inf when absent)."""
    lo, hi = attrs.get("clip_min", -math.inf), attrs.get("clip_max", math.inf)
    if lo == -math.inf and hi == math.inf:
        return values
    return np.clip(values, lo, hi).astype(values.dtype, copy=False)


def set_channels_last(attrs: Attrs, perm: tuple[int, ...]) -> Attrs:
    """permute_attrs of the spatial ops: they carry the layout as a flag."""
    return {**attrs, "channels_last": True}


CLIP_ATTRS = {"clip_min": -math.inf, "clip_max": math.inf}


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int], rank: int = 4) -> list[int]:
    """Element strides of a row-major tensor read at every index of `out_shape` (numpy broadcasting):
    0 along broadcast dimensions; both shapes left-padded with 1s to `rank`."""
    full = [1] * (rank - len(shape)) + list(shape)
    out = [1] * (rank - len(out_shape)) + list(out_shape)
    strides, step = [0] * rank, 1
    for axis in range(rank - 1, -1, -1):
        strides[axis] = 0 if full[axis] == 1 and out[axis] != 1 else step
        step *= full[axis]
    return strides


def checked_int32(values: np.ndarray, node: Node) -> np.ndarray:
    """Values that must fit an int32 blob (folded biases); QuantizationError naming the node if not."""
    if values.size and int(np.abs(values).max()) > 2**31 - 1:
        from edgenn.errors import QuantizationError

        raise QuantizationError(f"node '{node.name}' ({node.op}): folded bias exceeds int32")
    return values.astype(np.int32)


def padded_shape(shape: Sequence[int], rank: int = 4) -> list[int]:
    if len(shape) > rank:
        raise ShapeError(f"rank {len(shape)} is above the integer kernels' limit of {rank}")
    return [1] * (rank - len(shape)) + list(shape)


def const_input(node: OnnxNode, i: int, ctx: ImportContext, what: str) -> np.ndarray | None:
    """An input that edgenn needs as a constant (after folding); None when the input is omitted."""
    name = node.input(i)
    if not name:
        return None
    data = ctx.const(name)
    if data is None:
        raise UnsupportedOpError(
            f"node '{node.name}' ({node.op_type}): input {i} ({what}) must be a constant, "
            f"but '{name}' is computed at run time"
        )
    return data


def int_tuple(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


def passthrough_import(
    op: str, n_inputs: int | None = None
) -> Callable[[OnnxNode, ImportContext], Imported]:
    """ONNX reader for ops whose ONNX form is already the IR form (attributes copied as they are)."""

    def read(node: OnnxNode, ctx: ImportContext) -> Imported:
        inputs = node.inputs if n_inputs is None else node.inputs[:n_inputs]
        return Imported(op, tuple(inputs), dict(node.attrs))

    return read


def _load_families() -> None:
    """Import every op family module of this package (each registers its specs): a new family is a
    new file here, listed nowhere else. Names starting with _ (the template) are not families."""
    import importlib
    import pkgutil

    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_load_families()
