"""The op template (edgenn/ops/_template.py) works as written: loaded into the registry (in a
child process, so this session's registry stays as shipped), its kernel runs through the runtime,
and its table comes from the registry's program tables. Expected outputs are computed here from
the template's math, not by its code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import numpy as np
    import edgenn.ops as ops
    import edgenn.ops._template  # registers TemplateSquare, its table and its kernel
    from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value
    from edgenn.runtime import Runtime

    assert "TemplateSquare" in ops.REGISTRY and "template_lut" in ops.TABLES
    s_in, zp_in, s_out, zp_out = 0.05, 3, 0.04, -128
    x_t = TensorType(DType.INT8, (1, 7, 40), QParams((s_in,), (zp_in,)))
    y_t = TensorType(DType.INT8, (1, 7, 40), QParams((s_out,), (zp_out,)))
    graph = Graph(
        "template",
        (Node("square", "TemplateSquare", ("x",), ("y",)),),
        {"x": Value("x", x_t), "y": Value("y", y_t)},
        ("x",),
        ("y",),
    )
    runtime = Runtime(graph)
    assert set(runtime.program.tables) == {"template_lut"}
    x = np.random.default_rng(0).integers(-128, 128, (5, 7, 40)).astype(np.int8)
    real = (x.astype(np.float32) - zp_in) * np.float32(s_in)
    ratio = (real * real).astype(np.float32) / np.float32(s_out)
    want = np.clip(zp_out + np.sign(ratio) * np.floor(np.abs(ratio) + 0.5), -128, 127)
    got = runtime.run(x)
    assert np.array_equal(got, want.astype(np.int8)), int((got != want).sum())
    print("template op ok")
    """
)


def test_template_op_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=3600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "template op ok" in done.stdout
