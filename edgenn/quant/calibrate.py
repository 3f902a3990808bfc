"""Calibration: run the float reference over sample inputs and choose a clipping range per activation.

Observers:
- minmax: the observed minimum and maximum.
- percentile: the p-th and (100-p)-th percentiles of the observed values (clips rare outliers).
- mse: the range (the min-max range shrunk by a factor) minimizing the expected squared error of int8
  quantization: clipping error outside the range plus uniform rounding noise scale^2 / 12 inside.
The last two take a second pass over the data to fill a 2048-bin histogram over the min-max range.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext

import click
import numpy as np

from edgenn.errors import InputError
from edgenn.ir import DType, Graph
from edgenn.limits import max_bytes
from edgenn.reference import run_reference

OBSERVERS = ("minmax", "percentile", "mse")
BINS = 2048
PROGRESS_FROM = 300  # samples: show a progress bar from here on
Ranges = dict[str, tuple[float, float]]
Samples = dict[str, np.ndarray]  # one [N, ...] array per graph input, in the graph's input order
SampleData = np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]


def as_samples(graph: Graph, data: SampleData, what: str = "calibration data") -> Samples:
    """Data for every graph input: one array for a one-input model, else arrays by input name (or in
    input order); each finite, float32, shaped [N, *input shape], all with the same N."""
    names = list(graph.inputs)
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise InputError(
                f"{what}: the model takes {len(names)} inputs {names}; give one array per input "
                "(an .npz keyed by input name)"
            )
        data = {names[0]: data}
    elif not isinstance(data, Mapping):
        if len(data) != len(names):
            raise InputError(f"{what}: {len(data)} arrays for the model's inputs {names}")
        data = dict(zip(names, data))
    missing = [n for n in names if n not in data]
    if missing:
        raise InputError(f"{what}: no array for input(s) {missing} (has {sorted(data)})")
    samples = {
        n: _checked(graph, n, data[n], f"{what} for '{n}'" if len(names) > 1 else what)
        for n in names
    }
    counts = sorted({len(a) for a in samples.values()})
    if len(counts) > 1:
        raise InputError(f"{what}: the inputs have different sample counts {counts}")
    return samples


def sample_count(samples: Samples) -> int:
    return len(next(iter(samples.values())))


def take(samples: Samples, start: int, stop: int) -> Samples:
    return {name: array[start:stop] for name, array in samples.items()}


def _checked(graph: Graph, name: str, data: np.ndarray, what: str) -> np.ndarray:
    want = graph.type_of(name).shape
    expected = f"[N, {', '.join(map(str, want[1:]))}]"
    array = np.asarray(data)
    if array.dtype.kind not in "fiub":
        raise InputError(f"{what} has dtype {array.dtype}; expected numbers shaped {expected}")
    if array.ndim != len(want) or array.shape[1:] != tuple(want[1:]):
        raise InputError(f"{what} has shape {array.shape}; expected {expected}")
    if array.shape[0] == 0:
        raise InputError(f"{what} is empty; expected at least one sample shaped {expected}")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0][0])
        raise InputError(f"{what} contains NaN or Inf (first in sample {bad})")
    return array


def _batches(data: Samples, batch: int, label: str) -> Iterator[Samples]:
    total = sample_count(data)
    starts = range(0, total, batch)
    show = total >= PROGRESS_FROM
    bar = click.progressbar(starts, label=label, file=sys.stderr) if show else nullcontext(starts)
    with bar as steps:
        for start in steps:
            yield take(data, start, start + batch)


def _activations(graph: Graph, x: Samples) -> dict[str, np.ndarray]:
    values = run_reference(graph, x, keep_all=True)
    return {
        n: a for n, a in values.items() if not graph.values[n].is_const and a.dtype == np.float32
    }


def memory_batch(graph: Graph, batch: int) -> int:
    """The samples one reference run may take: all its float activations are kept (for their ranges),
    so their sum per sample times the batch stays within the memory limit."""
    per_batch = sum(
        v.type.nbytes
        for v in graph.values.values()
        if not v.is_const and v.type.dtype == DType.FLOAT32
    )
    per_sample = max(1, per_batch // max(graph.batch_size(), 1))
    return max(1, min(batch, max_bytes() // per_sample))


def calibrate(
    graph: Graph,
    data: SampleData,
    observer: str = "minmax",
    percentile: float = 99.99,
    batch: int = 256,
) -> Ranges:
    """Per-tensor (lo, hi) clipping ranges of every float activation of `graph` (0 always inside)."""
    if observer not in OBSERVERS:
        raise InputError(f"unknown observer '{observer}' (choose from {', '.join(OBSERVERS)})")
    if not 50.0 < percentile <= 100.0:
        raise InputError(f"percentile must be in (50, 100], got {percentile}")
    data = as_samples(graph, data)
    batch = memory_batch(graph, batch)
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    for x in _batches(data, batch, "calibrating (ranges)"):
        for name, a in _activations(graph, x).items():
            lows[name] = min(lows.get(name, 0.0), float(a.min()))
            highs[name] = max(highs.get(name, 0.0), float(a.max()))
    if observer == "minmax":
        return {n: (lows[n], highs[n]) for n in lows}
    hists = {n: np.zeros(BINS, np.int64) for n in lows}
    for x in _batches(data, batch, f"calibrating ({observer})"):
        for name, a in _activations(graph, x).items():
            if highs[name] > lows[name]:
                hists[name] += np.histogram(a, BINS, (lows[name], highs[name]))[0]
    choose = _percentile_range if observer == "percentile" else _mse_range
    return {n: choose(hists[n], lows[n], highs[n], percentile) for n in lows}


def _bin_centers(lo: float, hi: float) -> np.ndarray:
    edges = np.linspace(lo, hi, BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def _percentile_range(
    hist: np.ndarray, lo: float, hi: float, percentile: float
) -> tuple[float, float]:
    total = hist.sum()
    if total == 0 or hi <= lo:
        return lo, hi
    cumulative = np.cumsum(hist) / total
    edges = np.linspace(lo, hi, BINS + 1)
    low = float(edges[np.searchsorted(cumulative, (100.0 - percentile) / 100.0)])
    high = float(edges[min(np.searchsorted(cumulative, percentile / 100.0) + 1, BINS)])
    return min(low, 0.0), max(high, 0.0)


def _mse_range(hist: np.ndarray, lo: float, hi: float, percentile: float) -> tuple[float, float]:
    if hist.sum() == 0 or hi <= lo:
        return lo, hi
    centers = _bin_centers(lo, hi)
    best, best_error = (lo, hi), np.inf
    for factor in np.linspace(0.2, 1.0, 81):
        a, b = lo * factor, hi * factor
        scale = (b - a) / 255.0
        clipped = np.clip(centers, a, b)
        error = float(np.sum(hist * ((centers - clipped) ** 2 + scale**2 / 12.0)))
        if error < best_error:
            best, best_error = (float(a), float(b)), error
    return best
