"""Compile a model's kernels into Numba's cache in parallel, before its dispatch is compiled.

Numba compiles one function at a time per process (a global lock), and a cold first run spends most
of its time compiling kernels. Each kernel is its own cached function, so child processes can compile
them side by side (one per CPU); the parent then loads them from the cache and compiles only the
dispatch that links them. Children compile exactly the signature the generated dispatch calls a
kernel with (every array C-contiguous, as `segment` views them).

`python -m edgenn.runtime.precompile FEATURES KERNEL...` is what each child runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from edgenn.ops import KERNELS, TABLES, Kernel

# what each shared argument of a kernel is, as the dispatch passes it
SHARED_TYPES = {
    "row": np.int64,
    "arena": np.int8,
    "weights": np.int8,
    "biases": np.int32,
    "mults": np.int64,
    "shifts": np.int64,
    "patch": np.int8,
    "acc": np.int32,
    "state": np.int8,
}


def kernel_signature(kernel: Kernel) -> tuple:
    """The Numba argument types of `kernel` in the dispatch: 1-D C arrays, and the int64 rounding."""
    from numba import from_dtype, types

    def array(dtype: type) -> types.Array:
        return types.Array(from_dtype(np.dtype(dtype)), 1, "C")

    return tuple(
        types.int64
        if name == "rounding"
        else array(TABLES[name].dtype if name in TABLES else SHARED_TYPES[name])
        for name in kernel.arguments
    )


def compile_kernels(names: list[str], features: frozenset[str]) -> None:
    for name in names:
        kernel = KERNELS[name]
        kernel.function_for(features)[1].compile(kernel_signature(kernel))


def workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def precompile(kernels: list[Kernel], features: frozenset[str]) -> None:
    """Compile `kernels` into the cache in up to one child process per CPU (a no-op gain on one
    CPU, so nothing is started there). A child that fails changes nothing: the dispatch then
    compiles what is missing itself."""
    count = min(workers(), len(kernels))
    if count < 2:
        return
    groups: list[list[str]] = [[] for _ in range(count)]
    for i, kernel in enumerate(kernels):  # the heaviest (conv, fc) are registered early
        groups[i % count].append(kernel.name)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "edgenn.runtime.precompile", ",".join(sorted(features)), *group],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for group in groups
    ]
    try:
        for child in children:
            child.wait()
    finally:  # interrupted: no orphan keeps compiling
        for child in children:
            if child.poll() is None:
                child.kill()


if __name__ == "__main__":
    compile_kernels(sys.argv[2:], frozenset(f for f in sys.argv[1].split(",") if f))
