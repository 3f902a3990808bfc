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

Latency: median of single-sample calls after warm-up. Throughput: batches of 256, samples per second.
Also the wall time of a fresh process that loads a .edgenn file and produces one result, with the JIT
cache warm and cold.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.compile import Converted, accuracy, convert
from edgenn.errors import InputError
from edgenn.quant.quantize import quantize_array
from edgenn.runtime import Runtime
from edgenn.serialize import save_graph

BATCH = 256


def median_latency_us(call: Callable[[], object], seconds: float = 1.0, warmup: int = 50) -> float:
    for _ in range(warmup):
        call()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 200:
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


def bench_edgenn(
    converted: Converted, x: np.ndarray, labels: np.ndarray | None, seconds: float
) -> dict[str, Any]:
    runtime = Runtime(converted.fixed_graph)
    qp = converted.fixed_graph.type_of(converted.fixed_graph.inputs[0]).qparams
    assert qp is not None
    xq = quantize_array(x, qp).reshape(len(x), -1)
    width = int(runtime.program.output_sizes.sum())
    one, one_out = np.ascontiguousarray(xq[:1]), np.empty((1, width), np.int8)
    batch, batch_out = _batch(xq, BATCH), np.empty((BATCH, width), np.int8)
    result = {
        "latency_us": median_latency_us(lambda: runtime.run_flat(one, one_out), seconds),
        "throughput_sps": throughput_sps(
            lambda: runtime.run_flat(batch, batch_out), BATCH, seconds
        ),
        "arena_bytes": runtime.arena_bytes,
        "scratch_bytes": runtime.scratch_bytes,
    }
    if labels is not None:
        out = runtime.run_float(x)
        assert isinstance(out, np.ndarray)
        result["accuracy"] = accuracy(out, labels)
    return result


def _ort_session(model: bytes | str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def bench_ort(
    model: bytes | str, x: np.ndarray, labels: np.ndarray | None, seconds: float
) -> dict[str, Any]:
    session = _ort_session(model)
    name = session.get_inputs()[0].name
    one, batch = {name: np.ascontiguousarray(x[:1])}, {name: _batch(x, BATCH)}
    result = {
        "latency_us": median_latency_us(lambda: session.run(None, one), seconds),
        "throughput_sps": throughput_sps(lambda: session.run(None, batch), BATCH, seconds),
    }
    if labels is not None:
        result["accuracy"] = accuracy(session.run(None, {name: x})[0], labels)
    return result


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


def bench_litert(
    model: bytes, xq: np.ndarray, labels: np.ndarray | None, out_qp: Any, seconds: float
) -> dict[str, Any]:
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

    result = {
        "latency_us": median_latency_us(invoke_one, seconds),
        "throughput_sps": throughput_sps(invoke_batch, BATCH, seconds),
        "kernels": "default (XNNPACK)",
    }
    if labels is not None:
        outputs = []
        for i in range(len(xq)):
            single.set_tensor(source, np.ascontiguousarray(xq[i : i + 1]))
            single.invoke()
            outputs.append(single.get_tensor(target).copy())
        result["accuracy"] = accuracy(dequantize_array(np.concatenate(outputs), out_qp), labels)
    return result


def fresh_process_seconds(fixed_model: Path, cache_dir: str | None) -> float:
    """Wall time of a new Python process that loads the fixed-point file and runs one sample."""
    script = (
        "import numpy as np\n"
        "from edgenn.serialize import load_graph\n"
        "from edgenn.runtime import Runtime\n"
        f"g = load_graph({str(fixed_model)!r})\n"
        "t = g.type_of(g.inputs[0])\n"
        "Runtime(g).run(np.zeros((1, *t.shape[1:]), np.int8))\n"
    )
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def run_bench(
    model: Path, data: Path | None = None, seconds: float = 1.0, **calib: Any
) -> dict[str, Any]:
    from edgenn.codegen.tflite import to_tflite
    from edgenn.compile import bundled_test_set, load_dataset

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError("the benchmark needs onnxruntime: pip install 'edgenn[bench]'") from None
    converted = convert(model, **calib)
    if len(converted.float_graph.inputs) != 1:
        raise InputError(f"{model}: the benchmark times one-input models")
    calib_x = next(iter(converted.data.values()))
    source = data or bundled_test_set(model)
    if source is not None:
        x, labels = load_dataset(source)
        x = x.astype(np.float32)
    else:
        x, labels = calib_x, None
    results: dict[str, Any] = {"model": str(model), "samples": len(x), "batch": BATCH, "threads": 1}
    backends: dict[str, Any] = {}
    backends["edgenn"] = bench_edgenn(converted, x, labels, seconds)
    backends["ort_float"] = bench_ort(str(model), x, labels, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backends["ort_int8_qdq"] = bench_ort(
            ort_qdq_model(model, calib_x, folder), x, labels, seconds
        )
        fixed = converted.fixed_graph
        in_qp, out_qp = (
            fixed.type_of(fixed.inputs[0]).qparams,
            fixed.type_of(fixed.outputs[0]).qparams,
        )
        backends["litert"] = bench_litert(
            to_tflite(fixed), quantize_array(x, in_qp), labels, out_qp, seconds
        )
        fixed_path = folder / "model.edgenn"
        save_graph(converted.fixed_graph, fixed_path)
        fresh_process_seconds(fixed_path, None)  # fill the regular cache
        results["first_result_seconds"] = {
            "warm_jit_cache": round(fresh_process_seconds(fixed_path, None), 3),
            "cold_jit_cache": round(
                fresh_process_seconds(fixed_path, str(folder / "empty_cache")), 3
            ),
        }
    results["backends"] = backends
    ours = backends["edgenn"]
    results["latency_ratio_vs_litert"] = ours["latency_us"] / backends["litert"]["latency_us"]
    results["throughput_ratio_vs_litert"] = (
        ours["throughput_sps"] / backends["litert"]["throughput_sps"]
    )
    results["latency_ratio_vs_ort_float"] = ours["latency_us"] / backends["ort_float"]["latency_us"]
    results["latency_ratio_vs_ort_int8"] = (
        ours["latency_us"] / backends["ort_int8_qdq"]["latency_us"]
    )
    results["throughput_ratio_vs_ort_int8"] = (
        ours["throughput_sps"] / backends["ort_int8_qdq"]["throughput_sps"]
    )
    return results


def format_bench(results: dict[str, Any]) -> str:
    lines = [
        f"{results['model']}: {results['samples']} samples, batch {results['batch']}, 1 thread",
        f"{'backend':<14} {'latency us':>11} {'throughput/s':>13} {'accuracy':>9}",
    ]
    for name, r in results["backends"].items():
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "n/a"
        lines.append(f"{name:<14} {r['latency_us']:>11.1f} {r['throughput_sps']:>13,.0f} {acc:>9}")
    lines.append(
        f"latency ratio edgenn / LiteRT: {results['latency_ratio_vs_litert']:.2f}, "
        f"/ ort float: {results['latency_ratio_vs_ort_float']:.2f}, "
        f"/ ort int8: {results['latency_ratio_vs_ort_int8']:.2f}"
    )
    lines.append(
        f"throughput ratio edgenn / ort int8: {results['throughput_ratio_vs_ort_int8']:.2f}, "
        f"/ LiteRT: {results['throughput_ratio_vs_litert']:.2f}"
    )
    first = results["first_result_seconds"]
    lines.append(
        f"fresh process to first result: {first['warm_jit_cache']:.2f} s (warm JIT cache), "
        f"{first['cold_jit_cache']:.2f} s (cold)"
    )
    return "\n".join(lines)
