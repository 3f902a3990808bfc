"""The float -> fixed-point compile as one call, and the reports that compare the two."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import InputError, QuantizationError
from edgenn.fileio import load_array, load_labels
from edgenn.frontend.onnx import load_onnx
from edgenn.ir import Graph
from edgenn.limits import check_bytes
from edgenn.ops import CALIBRATED, spec_for
from edgenn.passes import optimize
from edgenn.quant.calibrate import Samples, as_samples, calibrate, sample_count, take
from edgenn.quant.quantize import (
    WIDE_SUFFIX,
    dequantize_array,
    quantize_graph,
    wide_capable,
)
from edgenn.reference import run_reference
from edgenn.runtime import Runtime

SQNR_SAMPLES = 128  # per-layer SQNR is measured on this many calibration samples at most


@dataclass
class Converted:
    float_graph: Graph  # optimized (fused, channels-last) float graph
    fixed_graph: Graph
    calibration: str  # where the calibration data came from
    data: Samples  # the calibration inputs, one array per model input
    observer: str
    precision: dict[str, Any] = field(default_factory=lambda: {"mode": "int8", "int16_layers": []})
    # a QDQ model: how many tensors kept the file's scales, which had none and were calibrated
    qdq: dict[str, Any] | None = None


def bundled_test_set(model: Path) -> Path | None:
    """models/<name>.onnx ships with models/<name>_test.npz."""
    candidate = model.with_name(f"{model.stem}_test.npz")
    return candidate if candidate.is_file() else None


def calibration_data(
    graph: Graph, model: Path, calib: str | None, samples: int, seed: int
) -> tuple[Samples, str]:
    """The calibration inputs, one array per model input: a file, `random` (uniform in [-1, 1],
    seeded) or the bundled test set."""
    if calib == "random":
        shapes = [graph.type_of(name).shape[1:] for name in graph.inputs]
        size = sum(math.prod(shape) for shape in shapes)
        check_bytes(8 * samples * size, f"{samples:,} random calibration samples")
        rng = np.random.default_rng(seed)
        data = {
            name: rng.uniform(-1, 1, (samples, *shape)).astype(np.float32)
            for name, shape in zip(graph.inputs, shapes)
        }
        return data, f"random uniform [-1, 1], {samples} samples, seed {seed}"
    source = Path(calib) if calib else bundled_test_set(model)
    if source is None:
        raise InputError(
            f"{model}: no calibration data; give --calib DATA.npz (array x, or one array per "
            "input name) or .npy, or --calib random"
        )
    return load_inputs(graph, source), str(source)


def load_inputs(graph: Graph, path: str | os.PathLike[str]) -> Samples:
    """A data file's arrays for the model's inputs: `x` (or a .npy) for a one-input model, one array
    per input name for several."""
    if len(graph.inputs) == 1:
        return as_samples(graph, load_array(path))
    return as_samples(graph, {name: load_array(path, name) for name in graph.inputs}, str(path))


PRECISIONS = ("int8", "int16", "auto")


def convert(
    model: str | os.PathLike[str],
    calib: str | None = None,
    observer: str = "minmax",
    percentile: float = 99.99,
    samples: int = 256,
    seed: int = 0,
    precision: str = "int8",
    max_drop: float = 0.5,
    data: str | os.PathLike[str] | None = None,
) -> Converted:
    """ONNX file -> optimized float graph -> calibrated fixed-point graph. precision: int8; int16 (16x8
    wherever a layer has such a kernel); auto (int8, then the layers with the worst SQNR promoted to
    16x8 one by one until the accuracy drop on labelled data is at most `max_drop` points)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    path = Path(model)
    float_graph = optimize(load_onnx(path))
    qdq = qdq_summary(float_graph)
    if qdq is not None and precision != "int8":
        raise InputError(
            f"{model}: a QDQ model keeps its own int8 scales; --precision {precision} does not apply"
        )
    unfolded = [n.name for n in float_graph.nodes if n.op == "BatchNormalization"]
    if qdq is not None and unfolded:
        raise QuantizationError(
            f"{model}: BatchNormalization '{unfolded[0]}' sits in float between quantized layers, and "
            "folding it would change the file's weights: fuse it before quantizing (onnxruntime's "
            "quant_pre_process does)"
        )
    if qdq is not None and calib is None and bundled_test_set(path) is None:
        calib = "random"  # only tensors the file left without scales take these ranges
    calib_inputs, origin = calibration_data(float_graph, path, calib, samples, seed)
    if qdq is not None and not qdq["calibrated_tensors"]:
        ranges = {}  # every tensor that needs parameters has the file's
    else:
        ranges = calibrate(float_graph, calib_inputs, observer=observer, percentile=percentile)
    if precision == "int8":
        fixed = quantize_graph(float_graph, ranges)
        if qdq is not None:
            left = qdq["calibrated_tensors"]
            origin = f"the file's QDQ scales ({qdq['tensors_with_file_scales']} tensors)" + (
                f"; {len(left)} tensor(s) without them calibrated on {origin}" if left else ""
            )
        return Converted(float_graph, fixed, origin, calib_inputs, observer, qdq=qdq)
    if precision == "int16":
        wide = wide_capable(float_graph)
        fixed = quantize_graph(float_graph, ranges, wide)
        report = {"mode": "int16", "int16_layers": wide}
        return Converted(float_graph, fixed, origin, calib_inputs, observer, report)
    eval_path = evaluation_set(path, calib, Path(data) if data else None)
    x, labels = load_dataset(eval_path, float_graph) if eval_path else (None, None)
    if x is None or labels is None:
        raise InputError(
            f"{model}: --precision auto needs labelled data (--data DATA.npz with x and y)"
        )
    fixed, report = promote_until_within(float_graph, ranges, x, labels, max_drop, calib_inputs)
    return Converted(float_graph, fixed, origin, calib_inputs, observer, report)


def qdq_summary(graph: Graph) -> dict[str, Any] | None:
    """For a model that carries QDQ scales: how many tensors have them, and which computed tensors
    (calibrated outputs) have none and so take calibrated ranges. None for a plain float model."""
    if not graph.quant_hints:
        return None
    calibrated = [
        out
        for node in graph.nodes
        if (rule := spec_for(node.op).int8) is not None and rule.output == CALIBRATED
        for out in node.outputs
        if out not in graph.quant_hints
    ]
    missing_inputs = [name for name in graph.inputs if name not in graph.quant_hints]
    return {
        "tensors_with_file_scales": len(graph.quant_hints),
        "calibrated_tensors": missing_inputs + calibrated,
    }


def promote_until_within(
    float_graph: Graph,
    ranges: dict,
    x: np.ndarray,
    labels: np.ndarray,
    max_drop: float,
    calib_inputs: np.ndarray,
) -> tuple[Graph, dict[str, Any]]:
    """Greedy mixed precision: promote the int8 layers with the lowest SQNR to 16x8, one at a time,
    until float accuracy - int8 accuracy <= max_drop percentage points (or every layer is promoted)."""
    x = as_samples(float_graph, x, "evaluation data")
    float_acc = accuracy(run_reference(float_graph, x)[float_graph.outputs[0]], labels)

    def drop_of(graph: Graph) -> float:
        out = Runtime(graph).run_float(*x.values())
        assert isinstance(out, np.ndarray)
        return 100.0 * (float_acc - accuracy(out, labels))

    fixed = quantize_graph(float_graph, ranges)
    trail: list[dict[str, Any]] = [{"int16_layers": 0, "drop_pp": round(drop_of(fixed), 3)}]
    capable = set(wide_capable(float_graph))
    rows = layer_sqnr(float_graph, fixed, calib_inputs)
    by_sqnr = sorted((row["sqnr_db"], row["layer"]) for row in rows if row["layer"] in capable)
    wide: list[str] = []
    best = (trail[0]["drop_pp"], 0)  # (drop, promotions): kept if the budget is never met
    for _, layer in by_sqnr:
        if trail[-1]["drop_pp"] <= max_drop:
            break
        wide.append(layer)
        drop = round(drop_of(quantize_graph(float_graph, ranges, wide)), 3)
        trail.append({"int16_layers": len(wide), "promoted": layer, "drop_pp": drop})
        best = min(best, (drop, len(wide)))
    if trail[-1]["drop_pp"] > max_drop:  # never within budget: the best configuration seen
        wide = wide[: best[1]]
    fixed = quantize_graph(float_graph, ranges, wide)
    report = {
        "mode": "auto",
        "max_drop_pp": max_drop,
        "float_accuracy": float_acc,
        "int16_layers": wide,
        "steps": trail,
        "within_budget": best[0] <= max_drop,
    }
    return fixed, report


def sqnr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    """10 log10(signal power / noise power); inf when equal."""
    noise = float(np.sum((reference.astype(np.float64) - approximation) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def layer_sqnr(float_graph: Graph, fixed_graph: Graph, x: np.ndarray) -> list[dict[str, Any]]:
    """Per-layer SQNR of the dequantized integer result against the float reference (same tensor names)."""
    x = take(as_samples(float_graph, x, "SQNR data"), 0, SQNR_SAMPLES)
    float_values = run_reference(float_graph, x, keep_all=True)
    runtime = Runtime(fixed_graph)
    traces = [
        runtime.trace(*runtime.quantize(*take(x, i, i + 1).values()))
        for i in range(sample_count(x))
    ]
    rows = []
    for node in fixed_graph.nodes:
        name = node.outputs[0]
        float_name = name.removesuffix(
            WIDE_SUFFIX
        )  # an int16 graph output renamed beside its int8 copy
        if float_name not in float_values or name not in traces[0]:
            continue
        qp = fixed_graph.type_of(name).qparams
        assert qp is not None
        approx = dequantize_array(np.concatenate([t[name] for t in traces]), qp)
        rows.append(
            {
                "layer": node.name,
                "op": node.op,
                "tensor": name,
                "sqnr_db": round(sqnr_db(float_values[float_name], approx), 2),
                "scale": qp.scale[0],
                "zero_point": qp.zero_point[0],
                "precision": fixed_graph.type_of(name).dtype.value,
            }
        )
    return rows


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.reshape(len(logits), -1).argmax(axis=1) == labels))


def evaluate(converted: Converted, data: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    """Float and int8 outputs on `data`; accuracies when labels are given."""
    data = as_samples(converted.float_graph, data, "evaluation data")
    count = sample_count(data)
    float_out = run_reference(converted.float_graph, data)[converted.float_graph.outputs[0]]
    int8_out = Runtime(converted.fixed_graph).run_float(*data.values())
    if isinstance(int8_out, list):
        int8_out = int8_out[0]
    result: dict[str, Any] = {
        "samples": count,
        "output_sqnr_db": round(sqnr_db(float_out, int8_out), 2),
    }
    if labels is not None:
        if len(labels) != count:
            raise InputError(f"{len(labels)} labels for {count} samples")
        result["float_accuracy"] = accuracy(float_out, labels)
        result["int8_accuracy"] = accuracy(int8_out, labels)
        result["agreement"] = float(np.mean(float_out.argmax(-1) == int8_out.argmax(-1)))
    return result


def evaluation_set(model: Path, calib: str | None, data: Path | None) -> Path | None:
    """Labelled data for accuracy: --data, else a bundled test set, else the calibration file if labelled."""
    if data is not None:
        return data
    if calib is None:
        return bundled_test_set(model)
    if calib != "random" and load_labels(calib) is not None:
        return Path(calib)
    return None


def load_dataset(
    path: str | os.PathLike[str], graph: Graph | None = None
) -> tuple[Any, np.ndarray | None]:
    """Inputs (array `x`, or one array per input name of a several-input `graph`) and labels `y`."""
    x = (
        load_inputs(graph, path)
        if graph is not None and len(graph.inputs) > 1
        else load_array(path)
    )
    return x, load_labels(path)


def fixed_point_report(fixed: Graph, model: Path) -> dict[str, Any]:
    """The report of a model that arrived already quantized (.tflite, .edgenn): sizes and arena plan."""
    from edgenn.serialize import to_bytes

    runtime = Runtime(fixed)
    return {
        "model": str(model),
        "arena_bytes": runtime.arena_bytes,
        "runtime_scratch_bytes": runtime.scratch_bytes,
        "weight_bytes": sum(v.type.nbytes for v in fixed.values.values() if v.is_const),
        "model_file_bytes": len(to_bytes(fixed)),
        "precision": {"mode": "int8", "int16_layers": []},
        "arena_plan": runtime.program.plan.describe(),
    }


def conversion_report(
    converted: Converted, model: Path, calib: str | None, data: Path | None
) -> dict[str, Any]:
    """What `edgenn convert` writes to report.json: sizes, arena plan, per-layer SQNR, accuracy."""
    from edgenn.serialize import to_bytes

    fixed = converted.fixed_graph
    eval_path = evaluation_set(model, calib, data)
    x_eval, labels = load_dataset(eval_path, converted.float_graph) if eval_path else (None, None)
    runtime = Runtime(fixed)
    report: dict[str, Any] = {
        "model": str(model),
        "observer": converted.observer,
        "calibration": converted.calibration,
        "calibration_samples": sample_count(converted.data),
        **({"qdq": converted.qdq} if converted.qdq is not None else {}),
        "rounding": "double",
        "precision": converted.precision,
        "arena_bytes": runtime.arena_bytes,
        "runtime_scratch_bytes": runtime.scratch_bytes,
        "weight_bytes": sum(v.type.nbytes for v in fixed.values.values() if v.is_const),
        "model_file_bytes": len(to_bytes(fixed)),
        "layers": layer_sqnr(
            converted.float_graph, fixed, converted.data if x_eval is None else x_eval
        ),
        "arena_plan": runtime.program.plan.describe(),
    }
    if x_eval is not None:
        report["evaluation"] = {"data": str(eval_path), **evaluate(converted, x_eval, labels)}
    return report
