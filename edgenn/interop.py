"""Running .tflite files in Google's interpreters: TensorFlow Lite Micro (`tflite-micro`) and LiteRT
(`ai-edge-litert`). Used by the benchmark and the tests that prove bit-exactness; both are optional."""

from __future__ import annotations

import re

import numpy as np

from edgenn.errors import InputError

TFLM_ARENA = 1 << 20  # bytes; generous, TFLM takes what it needs from it


def run_tflm(model: bytes, x: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """One sample at a time (TFLM cannot resize its input), outputs stacked; a list feeds the
    model's inputs in order."""
    try:
        import tflite_micro  # its runtime is an attribute of the package, not an importable submodule

        Interpreter = tflite_micro.runtime.Interpreter  # noqa: N806
    except ImportError:
        raise InputError(
            "TensorFlow Lite Micro is not installed: pip install tflite-micro"
        ) from None
    interpreter = Interpreter.from_bytes(model, arena_size=TFLM_ARENA)
    inputs = x if isinstance(x, list) else [x]
    outputs = []
    for i in range(len(inputs[0])):
        for k, array in enumerate(inputs):
            interpreter.set_input(np.ascontiguousarray(array[i : i + 1]), k)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).copy())
    return np.concatenate(outputs)


def litert_interpreter(model: bytes, reference_kernels: bool = False):  # type: ignore[no-untyped-def]
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise InputError("LiteRT is not installed: pip install ai-edge-litert") from None
    resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    interpreter = Interpreter(
        model_content=model, num_threads=1, experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    return interpreter


def run_litert(model: bytes, x: np.ndarray, reference_kernels: bool = False) -> np.ndarray:
    interpreter = litert_interpreter(model, reference_kernels)
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for i in range(len(x)):
        interpreter.set_tensor(source, np.ascontiguousarray(x[i : i + 1]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target).copy())
    return np.concatenate(outputs)


TFLM_ALLOCATIONS = """
import sys, tflite_micro
interpreter = tflite_micro.runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=%d)
interpreter.print_allocations()
"""


def tflm_arena_bytes(model: bytes) -> dict[str, int]:
    """TFLM's arena use (total, head, tail) for a .tflite, as its allocator reports it. TFLM prints it
    from C++ to file descriptor 2 and may crash on odd models, so it runs in a child process."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(model)
        f.flush()
        done = subprocess.run(
            [sys.executable, "-c", TFLM_ALLOCATIONS % TFLM_ARENA, f.name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", done.stderr))
    if done.returncode != 0 or len(found) != 3:
        raise InputError(
            "TensorFlow Lite Micro did not report its arena (is tflite-micro installed?): "
            + (done.stderr.strip().splitlines() or ["no output"])[-1]
        )
    return {key: int(value) for key, value in found.items()}
