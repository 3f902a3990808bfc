"""`edgenn verify`: one .tflite file on edgenn's Numba runtime, TensorFlow Lite Micro and LiteRT (default
and reference kernels), with the number of differing output elements and the largest difference in LSBs
of each against edgenn's result."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import InputError
from edgenn.fileio import load_array
from edgenn.frontend.tflite import load_tflite
from edgenn.quant.quantize import quantize_array
from edgenn.runtime import Runtime


def _compare(name: str, got: np.ndarray, ours: np.ndarray) -> dict[str, Any]:
    diff = np.abs(got.astype(np.int32) - ours.astype(np.int32))
    return {
        "backend": name,
        "elements": int(diff.size),
        "differing": int(np.count_nonzero(diff)),
        "max_lsb": int(diff.max(initial=0)),
    }


def verify_tflite(
    model: str | os.PathLike[str], data: str | os.PathLike[str], rounding: str = "double"
) -> dict[str, Any]:
    from edgenn.interop import run_litert, run_tflm

    path = Path(model)
    graph = load_tflite(path)
    x = load_array(data)
    in_type = graph.type_of(graph.inputs[0])
    if x.ndim != in_type.rank or x.shape[1:] != in_type.shape[1:]:
        raise InputError(
            f"{data}: inputs have shape {x.shape}; expected [N, {', '.join(map(str, in_type.shape[1:]))}]"
        )
    assert in_type.qparams is not None
    xq = x if x.dtype == np.int8 else quantize_array(x.astype(np.float32), in_type.qparams)
    ours = Runtime(graph, rounding).run(xq)
    assert isinstance(ours, np.ndarray)
    buffer = path.read_bytes()
    rows = [
        {
            "backend": f"edgenn ({rounding} rounding)",
            "elements": int(ours.size),
            "differing": 0,
            "max_lsb": 0,
        },
        _compare("TFLM (tflite-micro)", run_tflm(buffer, xq).reshape(ours.shape), ours),
        _compare("LiteRT default kernels", run_litert(buffer, xq).reshape(ours.shape), ours),
        _compare(
            "LiteRT reference kernels",
            run_litert(buffer, xq, reference_kernels=True).reshape(ours.shape),
            ours,
        ),
    ]
    return {"model": str(path), "samples": len(xq), "backends": rows}


def format_verification(result: dict[str, Any]) -> str:
    lines = [
        f"{result['model']}: {result['samples']} samples, outputs compared with edgenn's runtime",
        f"{'backend':<28} {'elements':>9} {'differing':>10} {'max LSB':>8}",
    ]
    for row in result["backends"]:
        lines.append(
            f"{row['backend']:<28} {row['elements']:>9,} {row['differing']:>10,} {row['max_lsb']:>8}"
        )
    return "\n".join(lines)
