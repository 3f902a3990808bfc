"""A session for a sensor or camera loop: one sample at a time through preallocated buffers.

    session = Runtime(graph).session()
    probabilities = session.infer(frame)          # float in, float out (quantized with the model's
                                                  # own parameters, as Runtime.run_float)
    raw = session.infer_int8(q)                   # integers in, a view of the output buffer out
    print(session.latency(1000))                  # statistics of N timed calls

After the first call nothing is allocated on the integer path: the input and output byte buffers
are the session's, and the compiled entry point writes into them directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgenn.errors import InputError
from edgenn.quant.quantize import dequantize_array, quantize_array


@dataclass(frozen=True)
class Latency:
    """Wall-clock statistics of N single-sample calls, in microseconds."""

    runs: int
    median_us: float
    mean_us: float
    p90_us: float
    p99_us: float
    min_us: float
    max_us: float

    def __str__(self) -> str:
        return (
            f"latency over {self.runs} runs: median {self.median_us:.1f} us, mean "
            f"{self.mean_us:.1f}, p90 {self.p90_us:.1f}, p99 {self.p99_us:.1f}, min "
            f"{self.min_us:.1f}, max {self.max_us:.1f}"
        )


class Session:
    def __init__(self, runtime) -> None:  # type: ignore[no-untyped-def]
        if len(runtime.input_types) != 1:
            raise InputError("a session takes models with one input (Runtime.run takes several)")
        self.runtime = runtime
        self.input_type, self.output_types = runtime.input_types[0], runtime.output_types
        self._in = np.zeros((1, runtime._in_width), np.int8)
        self._out = np.zeros((1, runtime._out_width), np.int8)
        t = self.input_type
        self._in_view = self._in.view(t.dtype.numpy).reshape(1, *t.shape[1:])
        self._outputs, position = [], 0
        for o in self.output_types:
            size = o.nbytes // o.shape[0]
            part = self._out[:, position : position + size].view(o.dtype.numpy)
            self._outputs.append(part.reshape(1, *o.shape[1:]))
            position += size

    def _check(self, x: np.ndarray) -> np.ndarray:
        want = self.input_type.shape[1:]
        if x.shape == want:
            return x[None]
        if x.shape == (1, *want):
            return x
        raise InputError(f"session input has shape {list(x.shape)}; expected {list(want)}")

    def infer_int8(self, q: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """One sample in the model's integer type; returns views of the session's output buffer
        (overwritten by the next call: copy what you keep)."""
        q = self._check(np.asarray(q))
        if q.dtype != self.input_type.dtype.numpy:
            raise InputError(f"infer_int8 takes {self.input_type.dtype.value}, got {q.dtype}")
        self._in_view[...] = q
        self.runtime.run_flat(self._in, self._out)
        return self._outputs[0] if len(self._outputs) == 1 else self._outputs

    def infer(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """One sample of real numbers in, real numbers out (new arrays)."""
        x = self._check(np.asarray(x))
        if x.dtype.kind not in "fiu":
            raise InputError(f"session input has dtype {x.dtype}; expected real numbers")
        self._in_view[...] = quantize_array(x, self.input_type.qparams, self.input_type.dtype)  # type: ignore[arg-type]
        self.runtime.run_flat(self._in, self._out)
        real = [dequantize_array(o, t.qparams) for o, t in zip(self._outputs, self.output_types)]  # type: ignore[arg-type]
        return real[0] if len(real) == 1 else real

    def latency(self, runs: int, q: np.ndarray | None = None) -> Latency:
        """Time `runs` single-sample calls of the integer path (input q, default zeros)."""
        if runs < 1:
            raise InputError(f"latency needs at least 1 run, got {runs}")
        sample = (
            np.zeros(self.input_type.shape[1:], self.input_type.dtype.numpy) if q is None else q
        )
        self.infer_int8(sample)  # warm: the first call may compile or page in
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter()
            self.infer_int8(sample)
            times[i] = time.perf_counter() - start
        us = times * 1e6
        return Latency(
            runs,
            float(np.median(us)),
            float(us.mean()),
            float(np.percentile(us, 90)),
            float(np.percentile(us, 99)),
            float(us.min()),
            float(us.max()),
        )
