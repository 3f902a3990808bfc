"""`edgenn verify`: one .tflite file on edgenn's Numba runtime, TensorFlow Lite Micro and LiteRT (default
and reference kernels), and optionally edgenn's generated C built for a target, with the number of
differing output elements and the largest difference in LSBs of each against edgenn's result.

Outputs are compared as the integers edgenn's graph produces: a file with float edges (QUANTIZE /
DEQUANTIZE at its boundary) gets float inputs, and its float outputs are quantized back with the
output's own parameters (exact: a dequantized integer quantizes to itself)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import InputError
from edgenn.fileio import load_array
from edgenn.frontend.tflite import load_tflite, read_boundary_types
from edgenn.ir import Graph, TensorType
from edgenn.quant.quantize import dequantize_array, quantize_array
from edgenn.runtime import Runtime


def _compare(name: str, got: np.ndarray, ours: np.ndarray) -> dict[str, Any]:
    diff = np.abs(got.astype(np.int64) - ours.astype(np.int64))
    return {
        "backend": name,
        "elements": int(diff.size),
        "differing": int(np.count_nonzero(diff)),
        "max_lsb": int(diff.max(initial=0)),
    }


def random_inputs(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Seeded integers over the input type's whole range, [count, ...] in the model's input shape."""
    if count < 1:
        raise InputError(f"--random takes a positive sample count, got {count}")
    t = graph.type_of(graph.inputs[0])
    info = np.iinfo(t.dtype.numpy)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max + 1, (count, *t.shape[1:])).astype(t.dtype.numpy)


def _integer_inputs(x: np.ndarray, in_type: TensorType, source: str) -> np.ndarray:
    if x.ndim != in_type.rank or x.shape[1:] != in_type.shape[1:]:
        raise InputError(
            f"{source}: inputs have shape {x.shape}; expected [N, {', '.join(map(str, in_type.shape[1:]))}]"
        )
    assert in_type.qparams is not None
    if x.dtype == in_type.dtype.numpy:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(
            f"{source}: inputs are {x.dtype}; the model takes {in_type.dtype.value} or float"
        )
    return quantize_array(x.astype(np.float32), in_type.qparams, in_type.dtype)


def verify_tflite(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    rounding: str = "double",
    random: int = 0,
    seed: int = 0,
    c_target: str | None = None,
) -> dict[str, Any]:
    from edgenn.interop import run_litert, run_tflm

    path = Path(model)
    graph = load_tflite(path)
    in_type, out_type = (graph.type_of(n) for n in (graph.inputs[0], graph.outputs[0]))
    if (data is None) == (random == 0):
        raise InputError("verify needs inputs: --data FILE or --random N")
    xq = (
        random_inputs(graph, random, seed)
        if data is None
        else _integer_inputs(load_array(data), in_type, str(data))
    )
    ours = Runtime(graph, rounding).run(xq)
    assert isinstance(ours, np.ndarray)
    buffer = path.read_bytes()
    float_in, float_out = read_boundary_types(buffer)
    assert in_type.qparams is not None and out_type.qparams is not None
    file_x = dequantize_array(xq, in_type.qparams) if float_in else xq

    def as_ours(run: Callable[[], np.ndarray]) -> np.ndarray:
        got = run().reshape(ours.shape)
        return quantize_array(got, out_type.qparams, out_type.dtype) if float_out else got  # type: ignore[arg-type]

    rows = [
        {
            "backend": f"edgenn ({rounding} rounding)",
            "elements": int(ours.size),
            "differing": 0,
            "max_lsb": 0,
        },
        _compare("TFLM (tflite-micro)", as_ours(lambda: run_tflm(buffer, file_x)), ours),
        _compare("LiteRT default kernels", as_ours(lambda: run_litert(buffer, file_x)), ours),
        _compare(
            "LiteRT reference kernels",
            as_ours(lambda: run_litert(buffer, file_x, reference_kernels=True)),
            ours,
        ),
    ]
    if c_target is not None:
        rows.append(
            _compare(
                f"generated C ({c_target})",
                _c_outputs(graph, xq, rounding, c_target),
                ours.reshape(len(xq), -1),
            )
        )
    return {"model": str(path), "samples": len(xq), "backends": rows}


def _c_outputs(graph: Graph, xq: np.ndarray, rounding: str, target_name: str) -> np.ndarray:
    """The generated C built for the target with its toolchain and run on the same inputs."""
    from edgenn.codegen.c import generate_c
    from edgenn.sim.targets import load_target
    from edgenn.sim.toolchain import ToolchainError, build_harness, missing_tools, run_harness

    target = load_target(target_name)
    missing = missing_tools(target)
    if missing:
        raise ToolchainError(f"--c {target_name} needs {', '.join(missing)} (not installed)")
    sources = generate_c(graph, "model", rounding, dsp=target.dsp)
    with tempfile.TemporaryDirectory(prefix="edgenn-verify-") as folder:
        program = build_harness(sources, xq, target, Path(folder))
        return run_harness(program, target, int(sources.program.output_sizes.sum())).outputs


def format_verification(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']}: {result['samples']} samples, outputs compared with edgenn's runtime",
        f"{'backend':<34} {'elements':>9} {'differing':>10} {'max LSB':>8}",
    ]
    for row in result["backends"]:
        lines.append(
            f"{row['backend']:<34} {row['elements']:>9,} {row['differing']:>10,} {row['max_lsb']:>8}"
        )
    return "\n".join(lines)
