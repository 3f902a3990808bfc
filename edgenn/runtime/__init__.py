"""The Numba runtime: loads a fixed-point graph once, then runs it with no allocation per inference."""

from __future__ import annotations

import numpy as np

from edgenn.errors import InputError
from edgenn.ir import Graph
from edgenn.quant.fixed_point import ROUNDING_MODES
from edgenn.quant.quantize import dequantize_array, quantize_array
from edgenn.runtime.interpreter import run_batch, run_steps
from edgenn.runtime.program import Program, build_program


class Runtime:
    """Runs a fixed-point graph. `run` takes and returns int8 (batch in dimension 0); `run_float`
    quantizes float inputs and dequantizes outputs with the model's own parameters."""

    def __init__(self, graph: Graph, rounding: str = "double") -> None:
        if rounding not in ROUNDING_MODES:
            raise InputError(f"rounding must be one of {sorted(ROUNDING_MODES)}, got '{rounding}'")
        self.graph = graph
        self.rounding = ROUNDING_MODES[rounding]
        self.program: Program = build_program(graph)
        self.arena = np.zeros(max(self.program.plan.size, 1), np.int8)
        self.input_types = [graph.type_of(n) for n in graph.inputs]
        self.output_types = [graph.type_of(n) for n in graph.outputs]
        self._single_out = np.zeros((1, int(self.program.output_sizes.sum())), np.int8)

    @property
    def arena_bytes(self) -> int:
        return self.program.plan.size

    def _inputs(self, arrays: list[np.ndarray]) -> np.ndarray:
        if len(arrays) != len(self.input_types):
            raise InputError(f"model takes {len(self.input_types)} input(s), got {len(arrays)}")
        flat = []
        for name, t, a in zip(self.graph.inputs, self.input_types, arrays):
            if a.dtype != np.int8 or a.ndim != t.rank or a.shape[1:] != t.shape[1:]:
                raise InputError(
                    f"input '{name}' is {a.dtype}{list(a.shape)}; expected int8[N, {', '.join(map(str, t.shape[1:]))}]"
                )
            flat.append(a.reshape(len(a), -1))
        batch = {len(f) for f in flat}
        if len(batch) != 1:
            raise InputError(f"inputs have different batch sizes {sorted(batch)}")
        return np.ascontiguousarray(np.concatenate(flat, axis=1))

    def run(self, *inputs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        """int8 in, int8 out; one array for a one-output model, else a list."""
        x = self._inputs([np.asarray(a) for a in inputs])
        p = self.program
        out = (
            self._single_out
            if len(x) == 1
            else np.empty((len(x), self._single_out.shape[1]), np.int8)
        )
        run_batch(
            p.rows,
            self.arena,
            p.weights,
            p.biases,
            p.multipliers,
            p.shifts,
            self.rounding,
            x,
            p.input_offsets,
            p.input_sizes,
            out,
            p.output_offsets,
            p.output_sizes,
        )
        results, position = [], 0
        for t in self.output_types:
            size = t.size // t.shape[0]
            results.append(out[:, position : position + size].reshape(len(x), *t.shape[1:]).copy())
            position += size
        return results[0] if len(results) == 1 else results

    def run_float(self, *inputs: np.ndarray) -> list[np.ndarray] | np.ndarray:
        quantized = [
            quantize_array(np.asarray(a, np.float32), t.qparams)
            for a, t in zip(inputs, self.input_types)
        ]  # type: ignore[arg-type]
        outputs = self.run(*quantized)
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
            run_steps(
                p.rows,
                self.arena,
                p.weights,
                p.biases,
                p.multipliers,
                p.shifts,
                self.rounding,
                step,
                step + 1,
            )
            t = self.graph.type_of(name)
            start = p.offsets[name]
            captured[name] = self.arena[start : start + t.size].reshape(t.shape).copy()
        return captured
