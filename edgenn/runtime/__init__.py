"""The Numba runtime: loads a fixed-point graph once, then runs it with no allocation per inference.

All activations live in one int8 arena planned from tensor lifetimes; kernels share two small scratch
buffers. One compiled call runs every layer of every sample of a batch.
"""

from __future__ import annotations

import numpy as np

from edgenn.errors import InputError
from edgenn.ir import Graph
from edgenn.ops import kernel_for
from edgenn.quant.fixed_point import ROUNDING_MODES
from edgenn.quant.quantize import dequantize_array, quantize_array
from edgenn.runtime.batched import BLOCK, batchable, with_batch
from edgenn.runtime.interpreter import dispatch_for, host_features, pack_state
from edgenn.runtime.program import Program, build_program


def real_values(name: str, a: np.ndarray) -> np.ndarray:
    """Input `name` as float32 real numbers; complex, text and NaN/Inf values have no integer form."""
    if a.dtype.kind not in "fiub":
        raise InputError(f"input '{name}' has dtype {a.dtype}; expected real numbers")
    real = a.astype(np.float32)
    bad = ~np.isfinite(real)
    if bad.any():
        raise InputError(
            f"input '{name}' holds {int(bad.sum())} NaN or Inf value(s) (first at index "
            f"{tuple(int(i) for i in np.argwhere(bad)[0])}); they have no integer value"
        )
    return real


def check_inputs(graph: Graph, arrays: list[np.ndarray]) -> None:
    """Inputs for `graph` (float or fixed-point) before any work is spent on them: their count,
    per-sample shapes, a batch of at least one, and values with an integer form."""
    if len(arrays) != len(graph.inputs):
        raise InputError(f"model takes {len(graph.inputs)} input(s), got {len(arrays)}")
    for name, a in zip(graph.inputs, map(np.asarray, arrays)):
        t = graph.type_of(name)
        if a.ndim != t.rank or a.shape[1:] != t.shape[1:]:
            want = ", ".join(map(str, t.shape[1:]))
            raise InputError(f"input '{name}' has shape {list(a.shape)}; expected [N, {want}]")
        if len(a) == 0:
            raise InputError(f"input '{name}' holds no samples (a batch of 0)")
        if a.dtype != t.dtype.numpy or a.dtype.kind == "f":  # integers of the model's type pass
            real_values(name, a)


class Runtime:
    """Runs a fixed-point graph. `run` takes and returns int8 (batch in dimension 0); `run_float`
    quantizes float inputs and dequantizes outputs with the model's own parameters. A model whose
    kernels keep state (`state_bytes` > 0) sees the samples of a batch as consecutive steps of one
    stream, and its state carries over between calls until `reset_state()`."""

    def __init__(
        self,
        graph: Graph,
        rounding: str = "double",
        cpu_features: frozenset[str] | None = None,
        *,
        block: int = 1,
    ) -> None:
        """cpu_features: the CPU features whose kernel variants may be used (None: this machine's;
        frozenset() runs the generic kernels everywhere). Every variant gives the same integers.
        block: samples per pass, for the block program of a batchable model (runtime/batched.py)."""
        if rounding not in ROUNDING_MODES:
            raise InputError(f"rounding must be one of {sorted(ROUNDING_MODES)}, got '{rounding}'")
        self.graph = graph
        self._rounding, self._features = rounding, cpu_features
        self._block: Runtime | bool = block == 1 and batchable(graph)  # built at a large batch
        self.program: Program = build_program(graph, block)
        p = self.program
        state, views = pack_state(
            {
                "rows": p.rows,
                "arena": np.zeros(max(p.plan.size, 1), np.int8),
                "weights": p.weights,
                "biases": p.biases,
                "multipliers": p.multipliers,
                "shifts": p.shifts,
                "patch": np.zeros(p.patch_size, np.int8),
                "accumulators": np.zeros(p.accumulator_size, np.int32),
                "input_offsets": p.input_offsets,
                "input_sizes": p.input_sizes,
                "output_offsets": p.output_offsets,
                "output_sizes": p.output_sizes,
                "state": np.zeros(max(p.state_size, 1), np.int8),
                **p.tables,
            },
            ROUNDING_MODES[rounding],
        )
        self._packed = state
        self.arena = views["arena"]
        self.state = views["state"]  # persists across calls and samples until reset_state()
        # the model's own dispatch: only the kernels its rows use are compiled
        # a variant runs only where the CPU has its feature: the request is narrowed to this machine's
        features = None if cpu_features is None else frozenset(cpu_features) & host_features()
        opcodes = frozenset(int(op) for op in p.rows[:, 0])
        self._kernels = dispatch_for(opcodes, features)
        chosen = host_features() if features is None else features
        # which path each kernel of this model runs: a CPU feature's variant, or "generic"
        self.kernel_paths = {
            kernel_for(op).name: kernel_for(op).function_for(chosen)[0] for op in sorted(opcodes)
        }
        self.input_types = [graph.type_of(n) for n in graph.inputs]
        self.output_types = [graph.type_of(n) for n in graph.outputs]
        self._in_width = int(p.input_sizes.sum())
        self._out_width = int(p.output_sizes.sum())

    def session(self):  # type: ignore[no-untyped-def]
        """A one-sample-at-a-time session with preallocated buffers (a sensor or camera loop)."""
        from edgenn.runtime.session import Session

        return Session(self)

    def reset_state(self) -> None:
        """Zero the persistent state (a stream starts again); stateless models have none."""
        self.state[...] = 0

    @property
    def state_bytes(self) -> int:
        return self.program.state_size

    @property
    def arena_bytes(self) -> int:
        return self.program.plan.size

    @property
    def scratch_bytes(self) -> int:
        """Kernel scratch beside the arena (gathered windows, bordered input copies, a row's sums);
        the Numba runtime's alone: the generated C needs none."""
        return self.program.patch_size + 4 * self.program.accumulator_size

    def _inputs(self, arrays: list[np.ndarray]) -> np.ndarray:
        """The inputs as one byte matrix [N, sum of per-sample input bytes] (int16 inputs take two)."""
        if len(arrays) != len(self.input_types):
            raise InputError(f"model takes {len(self.input_types)} input(s), got {len(arrays)}")
        flat = []
        for name, t, a in zip(self.graph.inputs, self.input_types, arrays):
            if a.dtype != t.dtype.numpy or a.ndim != t.rank or a.shape[1:] != t.shape[1:]:
                want = ", ".join(map(str, t.shape[1:]))
                raise InputError(
                    f"input '{name}' is {a.dtype}{list(a.shape)}; expected {t.dtype.value}[N, {want}]"
                )
            if len(a) == 0:
                raise InputError(f"input '{name}' holds no samples (a batch of 0)")
            flat.append(np.ascontiguousarray(a).reshape(len(a), -1).view(np.int8))
        if len({len(f) for f in flat}) != 1:
            raise InputError(f"inputs have different batch sizes {sorted({len(f) for f in flat})}")
        return flat[0] if len(flat) == 1 else np.concatenate(flat, axis=1)

    @property
    def batch_mode(self) -> str:
        """How a batch runs: layer by layer in blocks of samples, or sample by sample."""
        if self._block is False:
            return "sample by sample through one arena"
        return f"layer by layer in blocks of {BLOCK} samples (dense layers as GEMM)"

    def _blocks(self, x: np.ndarray, out: np.ndarray) -> bool:
        """Run the whole blocks of a large batch on the batched program; False when it does not
        apply (the caller runs every sample)."""
        if self._block is False or np.ndim(x) != 2 or len(x) < BLOCK:
            return False
        if not (
            x.flags.c_contiguous and out.flags.c_contiguous and x.dtype == out.dtype == np.int8
        ):
            return False
        if x.shape[1] != self._in_width or np.shape(out) != (len(x), self._out_width):
            return False
        if self._block is True:
            batch = with_batch(self.graph, BLOCK)
            self._block = Runtime(batch, self._rounding, self._features, block=BLOCK)
        assert isinstance(self._block, Runtime)
        whole = len(x) - len(x) % BLOCK
        blocks = whole // BLOCK
        self._block.run_flat(
            x[:whole].reshape(blocks, BLOCK * self._in_width),
            out[:whole].reshape(blocks, BLOCK * self._out_width),
        )
        if whole < len(x):
            self.run_flat(x[whole:], out[whole:])
        return True

    def run_flat(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The fast path: x int8 [N, input bytes] in, out int8 [N, output bytes] filled. The compiled
        entry checks the widths; strided views work, through contiguous copies. A large batch of a
        model of dense layers runs in blocks, layer by layer (the same integers)."""
        if self._blocks(x, out):
            return out
        try:
            mismatch = self._kernels.run_packed(self._packed, x, out)
        except TypeError:  # not C-contiguous int8 matrices: the entry point takes no others
            if np.ndim(x) != 2 or np.ndim(out) != 2:
                raise InputError("run_flat takes 2-D int8 arrays [N, bytes]") from None
            copy = np.empty(np.shape(out), np.int8)
            mismatch = self._kernels.run_packed(
                self._packed, np.ascontiguousarray(x, np.int8), copy
            )
            out[...] = copy
        if mismatch:
            raise InputError(
                f"run_flat takes [N, {self._in_width}] in and [N, {self._out_width}] out, "
                f"got {list(np.shape(x))} and {list(np.shape(out))}"
            )
        return out

    def run(self, *inputs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """Integers in, integers out in the model's own types (int8, or int16 for a 16x8 file's edges);
        one array for a one-output model, else a list."""
        x = np.ascontiguousarray(self._inputs([np.asarray(a) for a in inputs]))
        out = self.run_flat(x, np.empty((len(x), self._out_width), np.int8))
        results, position = [], 0
        for t in self.output_types:
            size = t.nbytes // t.shape[0]
            part = np.ascontiguousarray(out[:, position : position + size]).view(t.dtype.numpy)
            results.append(part.reshape(len(x), *t.shape[1:]))
            position += size
        return results[0] if len(results) == 1 else results

    def quantize(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Inputs in the model's integer types: those already in it as they are, real numbers
        quantized with the input's parameters; complex, text or non-finite values are refused."""
        if len(inputs) != len(self.input_types):
            raise InputError(f"model takes {len(self.input_types)} input(s), got {len(inputs)}")
        quantized = []
        for name, t, a in zip(self.graph.inputs, self.input_types, map(np.asarray, inputs)):
            if a.dtype == t.dtype.numpy:
                quantized.append(a)
                continue
            quantized.append(quantize_array(real_values(name, a), t.qparams, t.dtype))  # type: ignore[arg-type]
        return quantized

    def run_float(self, *inputs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        outputs = self.run(*self.quantize(*inputs))
        outputs = outputs if isinstance(outputs, list) else [outputs]
        real = [dequantize_array(q, t.qparams) for q, t in zip(outputs, self.output_types)]  # type: ignore[arg-type]
        return real[0] if len(real) == 1 else real

    def trace(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every step's int8 output for one sample, by tensor name (for per-layer comparisons)."""
        x = self._inputs([np.asarray(a) for a in inputs])
        if len(x) != 1:
            raise InputError("trace takes one sample")
        p = self.program
        position = 0
        for offset, size in zip(p.input_offsets, p.input_sizes):
            self.arena[offset : offset + size] = x[0, position : position + size]
            position += size
        captured = {}
        for step, name in enumerate(p.step_outputs):
            self._kernels.run_steps(self._packed, step, step + 1)
            t = self.graph.type_of(name)
            start = p.offsets[name]
            raw = self.arena[start : start + t.nbytes]
            captured[name] = raw.view(t.dtype.numpy).reshape(t.shape).copy()
        return captured
