"""Footprint of the generated C on a target, beside TensorFlow Lite Micro's for the same model.

flash: text + data of the model's own objects (kernels, rows, weights) compiled for the target, as
binutils `size` reports them (text includes rodata); RAM: the static arena plus the stack measured by
painting it under the target's emulator (the harness's HARNESS_MEASURE_STACK); TFLM: its arena as its
allocator reports it (head + tail) for the .tflite export of the same graph. Under QEMU, also the exact
number of guest instructions one inference executes in the model's code (targets/qemu/insncount.c).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.codegen.c import generate_c
from edgenn.ir import Graph
from edgenn.sim.targets import Target
from edgenn.sim.toolchain import (
    build_harness,
    instructions_per_inference,
    model_footprint,
    run_harness,
)


def measure_footprint(graph: Graph, name: str, target: Target, tflm: bool = True) -> dict[str, Any]:
    sources = generate_c(graph, name, dsp=target.dsp)
    weights = sum(v.type.nbytes for v in graph.values.values() if v.is_const)
    with tempfile.TemporaryDirectory(prefix="edgenn-footprint-") as tmp:
        folder = Path(tmp)
        sizes = model_footprint(sources, target, folder / "objects")
        stack = None
        if target.run_command is not None:
            sample = np.zeros((1, int(sources.program.input_sizes.sum())), np.int8)
            program = build_harness(sources, sample, target, folder / "run", measure_stack=True)
            stack = run_harness(
                program, target, int(sources.program.output_sizes.sum())
            ).stack_bytes
        instructions = {}
        if target.run_command is not None and target.run_command[0].startswith("qemu"):
            instructions["default"] = instructions_per_inference(sources, target, folder / "count")
            if target.dsp:  # the same code without the DSP extension, for comparison
                instructions["portable"] = instructions_per_inference(
                    sources, target, folder / "portable", ["-DEDGENN_USE_DSP=0"]
                )
    report: dict[str, Any] = {
        "model": name,
        "target": target.name,
        "weights_bytes": weights,
        "flash_bytes": sizes.flash_bytes,
        "flash_over_weights_bytes": sizes.flash_bytes - weights,
        "arena_bytes": sources.arena_bytes,
        "static_ram_bytes": sizes.ram_bytes,
        "stack_bytes": stack,
        "ram_bytes": sizes.ram_bytes + (stack or 0),
        "instructions_per_inference": instructions or None,
        "objects": {k: dict(zip(("text", "data", "bss"), v)) for k, v in sizes.by_file.items()},
    }
    if tflm:
        from edgenn.codegen.tflite import to_tflite
        from edgenn.interop import tflm_arena_bytes

        arena = tflm_arena_bytes(to_tflite(graph))
        report["tflm_arena"] = arena
        report["ram_ratio_vs_tflm"] = round(report["ram_bytes"] / arena["total"], 3)
    return report


def format_footprint(report: dict[str, Any]) -> str:
    stack = "n/a" if report["stack_bytes"] is None else f"{report['stack_bytes']:,}"
    lines = [
        f"{report['model']} on {report['target']}:",
        f"  flash {report['flash_bytes']:,} B = weights {report['weights_bytes']:,} B "
        f"+ {report['flash_over_weights_bytes']:,} B (code, multipliers, shifts, rows)",
        f"  RAM {report['ram_bytes']:,} B = arena/static {report['static_ram_bytes']:,} B "
        f"+ stack {stack} B",
    ]
    counts = report["instructions_per_inference"]
    if counts:
        portable = f" (without the DSP path {counts['portable']:,})" if "portable" in counts else ""
        lines.append(f"  instructions per inference (QEMU count) {counts['default']:,}{portable}")
    if "tflm_arena" in report:
        arena = report["tflm_arena"]
        lines.append(
            f"  TFLM arena {arena['total']:,} B (head {arena['head']:,} + tail {arena['tail']:,}) "
            f"-> RAM ratio vs TFLM {report['ram_ratio_vs_tflm']:.3f}"
        )
    return "\n".join(lines)
