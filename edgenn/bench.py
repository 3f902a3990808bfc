"""Side-by-side benchmark of edgenn's int8 runtime against the established runtimes, in one process.

Backends (all single-threaded):
- edgenn: the Numba int8 runtime on the fixed-point graph (input already int8, as the others get their
  own input type; quantizing floats costs the same for every int8 backend).
- ort_float: onnxruntime on the float ONNX model.
- ort_int8_qdq: onnxruntime's own static quantization, QDQ format, per-channel int8 weights and int8
  activations (S8S8), calibrated on the same data. On CPUs without VNNI its kernels saturate int16 pair
  sums, so its accuracy is reported beside its speed.
- litert: the LiteRT interpreter (default XNNPACK kernels) on edgenn's own .tflite export of the same
  fixed-point graph, so both run the identical int8 model.

A .tflite file (int8 made elsewhere, e.g. the MLPerf Tiny models) is read into edgenn's fixed-point
graph and timed beside LiteRT running that same file; onnxruntime has no model to run then.

Honest on a shared machine: the backends alternate in short rounds (the order rotated each round), and
every ratio is the ratio of the backends' medians over the rounds, printed with the spread of the
per-round ratios. Latency: median of single-sample calls after warm-up. Throughput: batches of 256,
samples per second; edgenn runs a batch of a model of dense layers layer by layer in blocks (GEMM),
any other sample by sample through one arena (reported as the mode), LiteRT one invoke over an input
resized to the batch. The CPU and the kernel path each of edgenn's kernels
took are reported. Also (unless skipped) the wall time of a fresh process that loads a .edgenn file and
produces one result, with the JIT cache warm and cold.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.compile import accuracy, convert
from edgenn.errors import InputError
from edgenn.ir import Graph
from edgenn.quant.quantize import quantize_array
from edgenn.runtime import Runtime
from edgenn.serialize import save_graph

BATCH = 256
ROUNDS = 5


@dataclass
class Timed:
    """A backend as the rounds see it: one sample, and one batch of BATCH."""

    name: str
    one: Callable[[], object]
    batch: Callable[[], object]


def alternate(timed: list[Timed], rounds: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    """Per-round median latency (us) and throughput (samples/s) of every backend, the backends taking
    turns in each round (the order rotated), `seconds` per backend and mode in all."""
    share = seconds / rounds
    measured: dict[str, dict[str, list[float]]] = {
        t.name: {"latency_us": [], "throughput_sps": []} for t in timed
    }
    for r in range(rounds):
        for t in timed[r % len(timed) :] + timed[: r % len(timed)]:
            m = measured[t.name]
            m["latency_us"].append(median_latency_us(t.one, share, warmup=20))
            m["throughput_sps"].append(throughput_sps(t.batch, BATCH, share))
    return measured


def ratio(ours: list[float], theirs: list[float]) -> dict[str, float]:
    """The ratio of medians, and the lowest and highest per-round ratio (the spread)."""
    per_round = [a / b for a, b in zip(ours, theirs)]
    return {
        "ratio": float(np.median(ours) / np.median(theirs)),
        "low": min(per_round),
        "high": max(per_round),
    }


def cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def median_latency_us(call: Callable[[], object], seconds: float = 1.0, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 50:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def throughput_sps(call: Callable[[], object], batch: int, seconds: float = 1.0) -> float:
    call()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        call()
        count += 1
    return batch * count / (time.perf_counter() - start)


def _batch(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def edgenn_backend(fixed: Graph, xq: np.ndarray) -> tuple[Timed, Runtime]:
    runtime = Runtime(fixed)
    flat = np.ascontiguousarray(xq.reshape(len(xq), -1)).view(np.int8)
    width = int(runtime.program.output_sizes.sum())
    one, one_out = np.ascontiguousarray(flat[:1]), np.empty((1, width), np.int8)
    batch, batch_out = _batch(flat, BATCH), np.empty((BATCH, width), np.int8)
    timed = Timed(
        "edgenn",
        lambda: runtime.run_flat(one, one_out),
        lambda: runtime.run_flat(batch, batch_out),
    )
    return timed, runtime


def _ort_session(model: bytes | str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def ort_backend(
    name: str, model: bytes | str, x: np.ndarray, labels: np.ndarray | None
) -> tuple[Timed, dict[str, Any]]:
    session = _ort_session(model)
    source = session.get_inputs()[0].name
    one, batch = {source: np.ascontiguousarray(x[:1])}, {source: _batch(x, BATCH)}
    extra = {}
    if labels is not None:
        extra["accuracy"] = accuracy(session.run(None, {source: x})[0], labels)
    return Timed(name, lambda: session.run(None, one), lambda: session.run(None, batch)), extra


def ort_qdq_model(model: Path, calibration: np.ndarray, folder: Path) -> str:
    """onnxruntime's static int8 quantization (QDQ, per-channel, S8S8) calibrated on our data."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            name = _ort_session(str(model)).get_inputs()[0].name
            self.items = iter([{name: calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    out = folder / "ort_qdq.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is not ours to print
    quantize_static(
        str(model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return str(out)


def litert_backend(
    model: bytes, xq: np.ndarray, labels: np.ndarray | None, out_qp: Any
) -> tuple[Timed, dict[str, Any]]:
    """LiteRT with its default kernels (XNNPACK), one thread: set + invoke + get per sample, and one
    invoke over a batch resized to 256."""
    from edgenn.interop import litert_interpreter
    from edgenn.quant.quantize import dequantize_array

    single = litert_interpreter(model)
    source, target = single.get_input_details()[0]["index"], single.get_output_details()[0]["index"]
    one = np.ascontiguousarray(xq[:1])

    def invoke_one() -> np.ndarray:
        single.set_tensor(source, one)
        single.invoke()
        return single.get_tensor(target)

    batched = litert_interpreter(model)
    batched.resize_tensor_input(source, [BATCH, *xq.shape[1:]])
    batched.allocate_tensors()
    batch = _batch(xq, BATCH)

    def invoke_batch() -> np.ndarray:
        batched.set_tensor(source, batch)
        batched.invoke()
        return batched.get_tensor(target)

    extra: dict[str, Any] = {"kernels": "default (XNNPACK)"}
    if labels is not None:
        outputs = []
        for i in range(len(xq)):
            single.set_tensor(source, np.ascontiguousarray(xq[i : i + 1]))
            single.invoke()
            outputs.append(single.get_tensor(target).copy())
        extra["accuracy"] = accuracy(dequantize_array(np.concatenate(outputs), out_qp), labels)
    return Timed("litert", invoke_one, invoke_batch), extra


def fresh_process_seconds(fixed_model: Path, cache_dir: str | None) -> float:
    """Wall time of a new Python process that loads the fixed-point file and runs one sample."""
    script = (
        "import numpy as np\n"
        "from edgenn.serialize import load_graph\n"
        "from edgenn.runtime import Runtime\n"
        f"g = load_graph({str(fixed_model)!r})\n"
        "t = g.type_of(g.inputs[0])\n"
        "Runtime(g).run(np.zeros((1, *t.shape[1:]), t.dtype.numpy))\n"
    )
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def first_result_seconds(fixed: Graph, folder: Path) -> dict[str, float]:
    path = folder / "model.edgenn"
    save_graph(fixed, path)
    fresh_process_seconds(path, None)  # fill the regular cache
    return {
        "warm_jit_cache": round(fresh_process_seconds(path, None), 3),
        "cold_jit_cache": round(fresh_process_seconds(path, str(folder / "empty_cache")), 3),
    }


def tflite_inputs(
    model: Path, fixed: Graph, data: Path | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer inputs for a .tflite model: the data file's (floats quantized with the model's input
    parameters), else 256 seeded random samples over the input type's range."""
    from edgenn.compile import load_dataset
    from edgenn.frontend.tflite import read_boundary_types

    t = fixed.type_of(fixed.inputs[0])
    if t.qparams is None or any(read_boundary_types(model.read_bytes())):
        raise InputError(
            f"{model}: the benchmark times .tflite files whose input and output are integers "
            "(this one takes or gives float32)"
        )
    if data is None:
        info = np.iinfo(t.dtype.numpy)
        rng = np.random.default_rng(0)
        shape = (256, *t.shape[1:])
        return rng.integers(info.min, info.max + 1, shape).astype(t.dtype.numpy), None
    x, labels = load_dataset(data)
    x = np.asarray(x)
    per_sample = int(np.prod(t.shape[1:]))
    if x.ndim == 0 or len(x) == 0 or x.size // len(x) != per_sample:
        want = "x".join(map(str, t.shape[1:]))
        raise InputError(f"{data}: x is {list(x.shape)}; the model takes samples of {want}")
    if np.issubdtype(x.dtype, np.floating):
        x = quantize_array(x.astype(np.float32), t.qparams)
    return x.astype(t.dtype.numpy).reshape(len(x), *t.shape[1:]), labels


def run_bench(
    model: Path,
    data: Path | None = None,
    seconds: float = 1.0,
    rounds: int = ROUNDS,
    cold: bool = True,
    **calib: Any,
) -> dict[str, Any]:
    from edgenn.codegen.tflite import to_tflite
    from edgenn.compile import bundled_test_set, load_dataset
    from edgenn.frontend.tflite import is_tflite_file, load_tflite

    timed: list[Timed] = []
    extras: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if is_tflite_file(model):
            fixed = load_tflite(model)
            if len(fixed.inputs) != 1:
                raise InputError(f"{model}: the benchmark times one-input models")
            xq, labels = tflite_inputs(model, fixed, data)
            ours, runtime = edgenn_backend(fixed, xq)
            timed.append(ours)
            out_qp = fixed.type_of(fixed.outputs[0]).qparams
            theirs, extras["litert"] = litert_backend(model.read_bytes(), xq, labels, out_qp)
            timed.append(theirs)
            if labels is not None:
                extras["edgenn"] = {"accuracy": accuracy(runtime.run_float(xq), labels)}
        else:
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise InputError(
                    "the benchmark needs onnxruntime: pip install 'edgenn[bench]'"
                ) from None
            converted = convert(model, **calib)
            if len(converted.float_graph.inputs) != 1:
                raise InputError(f"{model}: the benchmark times one-input models")
            fixed = converted.fixed_graph
            calib_x = next(iter(converted.data.values()))
            source = data or bundled_test_set(model)
            if source is not None:
                x, labels = load_dataset(source)
                x = x.astype(np.float32)
            else:
                x, labels = calib_x, None
            in_qp = fixed.type_of(fixed.inputs[0]).qparams
            out_qp = fixed.type_of(fixed.outputs[0]).qparams
            assert in_qp is not None
            xq = quantize_array(x, in_qp)
            ours, runtime = edgenn_backend(fixed, xq)
            timed.append(ours)
            if labels is not None:
                out = runtime.run_float(x)
                assert isinstance(out, np.ndarray)
                extras["edgenn"] = {"accuracy": accuracy(out, labels)}
            backend, extras["ort_float"] = ort_backend("ort_float", str(model), x, labels)
            timed.append(backend)
            qdq = ort_qdq_model(model, calib_x, folder)
            backend, extras["ort_int8_qdq"] = ort_backend("ort_int8_qdq", qdq, x, labels)
            timed.append(backend)
            backend, extras["litert"] = litert_backend(to_tflite(fixed), xq, labels, out_qp)
            timed.append(backend)
        measured = alternate(timed, rounds, seconds)
        results: dict[str, Any] = {
            "model": str(model),
            "samples": len(xq),
            "batch": BATCH,
            "threads": 1,
            "rounds": rounds,
            "cpu": cpu_name(),
            "edgenn_kernels": runtime.kernel_paths,
            "edgenn_batch_mode": runtime.batch_mode,
            "arena_bytes": runtime.arena_bytes,
        }
        if cold:
            results["first_result_seconds"] = first_result_seconds(fixed, folder)
    backends: dict[str, Any] = {}
    for t in timed:
        m = measured[t.name]
        backends[t.name] = {
            "latency_us": float(np.median(m["latency_us"])),
            "throughput_sps": float(np.median(m["throughput_sps"])),
            "rounds": m,
            **extras.get(t.name, {}),
        }
    results["backends"] = backends
    ours_m = measured["edgenn"]
    for other in [t.name for t in timed[1:]]:
        key = {"litert": "litert", "ort_float": "ort_float", "ort_int8_qdq": "ort_int8"}[other]
        theirs_m = measured[other]
        latency = ratio(ours_m["latency_us"], theirs_m["latency_us"])
        throughput = ratio(ours_m["throughput_sps"], theirs_m["throughput_sps"])
        results[f"latency_ratio_vs_{key}"] = latency["ratio"]
        results[f"latency_spread_vs_{key}"] = [latency["low"], latency["high"]]
        results[f"throughput_ratio_vs_{key}"] = throughput["ratio"]
        results[f"throughput_spread_vs_{key}"] = [throughput["low"], throughput["high"]]
    return results


def format_bench(results: dict[str, Any]) -> str:
    lines = [
        f"{results['model']}: {results['samples']} samples, batch {results['batch']}, 1 thread, "
        f"{results['rounds']} alternating rounds",
        f"CPU: {results['cpu']}",
        f"{'backend':<14} {'latency us':>11} {'throughput/s':>13} {'accuracy':>9}",
    ]
    for name, r in results["backends"].items():
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "n/a"
        lines.append(f"{name:<14} {r['latency_us']:>11.1f} {r['throughput_sps']:>13,.0f} {acc:>9}")
    names = {"litert": "LiteRT", "ort_float": "ort float", "ort_int8": "ort int8"}
    for key, label in names.items():
        if f"latency_ratio_vs_{key}" not in results:
            continue
        low, high = results[f"latency_spread_vs_{key}"]
        t_low, t_high = results[f"throughput_spread_vs_{key}"]
        lines.append(
            f"edgenn / {label}: latency {results[f'latency_ratio_vs_{key}']:.2f} "
            f"(rounds {low:.2f}-{high:.2f}), throughput "
            f"{results[f'throughput_ratio_vs_{key}']:.2f} (rounds {t_low:.2f}-{t_high:.2f})"
        )
    paths = ", ".join(f"{k} {v}" for k, v in sorted(results["edgenn_kernels"].items()))
    lines.append(f"edgenn kernels: {paths}; batches run {results['edgenn_batch_mode']}")
    if "first_result_seconds" in results:
        first = results["first_result_seconds"]
        lines.append(
            f"fresh process to first result: {first['warm_jit_cache']:.2f} s (warm JIT cache), "
            f"{first['cold_jit_cache']:.2f} s (cold)"
        )
    return "\n".join(lines)
