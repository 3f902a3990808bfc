"""Compile a model's kernels into Numba's cache in parallel, before its dispatch is compiled.

Numba compiles one function at a time per process (a global lock), and a cold first run spends most
of its time compiling kernels. Each kernel is its own cached function, so child processes can compile
them side by side (one per CPU); the parent then loads them from the cache and compiles only the
dispatch that links them. Children compile exactly the signature the generated dispatch calls a
kernel with (every array C-contiguous, as `segment` views them).

`python -m edgenn.runtime.precompile FEATURES` is what each child runs: it compiles each kernel named
on a line of its input, and answers each with a line.
"""

from __future__ import annotations

import os
import selectors
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
    """Compile `kernels` into the cache in up to one child process per CPU, each taking the next
    kernel when it has finished one (nothing is started on one CPU, where it would gain nothing).
    A child that fails changes nothing: the dispatch then compiles what is missing itself."""
    waiting = [k.name for k in kernels if not _in_cache(k, features)]  # heavy conv kernels first
    count = min(workers(), len(waiting))
    if count < 2:
        return
    command = [sys.executable, "-m", "edgenn.runtime.precompile", ",".join(sorted(features))]
    children = [
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        for _ in range(count)
    ]
    try:
        _share(children, waiting)
    finally:  # done, failed or interrupted: no child keeps running
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()


def _in_cache(kernel: Kernel, features: frozenset[str]) -> bool:
    """Whether Numba's cache holds this kernel variant already (its index file exists; Numba
    checks it against the source when loading). Unknown: say no, and let a child load it."""
    try:
        index = kernel.function_for(features)[1]._cache._cache_file._index_path
    except AttributeError:  # another Numba's internals
        return False
    return os.path.exists(index)


def _share(children: list[subprocess.Popen], waiting: list[str]) -> None:
    """Hand each child a kernel name, and another each time it reports one done."""
    with selectors.DefaultSelector() as selector:
        for child in children:
            selector.register(child.stdout, selectors.EVENT_READ, child)
            _hand(child, waiting)
        busy = len(children)
        while busy:
            for key, _ in selector.select():
                child = key.data
                if not child.stdout.readline():  # exited (or failed): it takes no more
                    selector.unregister(child.stdout)
                    busy -= 1
                else:
                    _hand(child, waiting)


def _hand(child: subprocess.Popen, waiting: list[str]) -> None:
    """The next kernel to this child, or the end of its work (it then exits)."""
    try:
        if waiting:
            child.stdin.write(waiting.pop(0) + "\n")
            child.stdin.flush()
        else:
            child.stdin.close()
    except (BrokenPipeError, ValueError):  # the child is gone; the parent compiles the rest
        pass


def _serve(features: frozenset[str]) -> None:
    """A child: compile each kernel named on stdin, and say so on stdout."""
    for line in sys.stdin:
        compile_kernels([line.strip()], features)
        print("done", flush=True)


if __name__ == "__main__":
    _serve(frozenset(f for f in sys.argv[1].split(",") if f))
