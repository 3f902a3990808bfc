from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

# first calls compile Numba kernels (or load them from the cache): no per-example deadline.
# CI draws the same examples every run (derandomized), so a red CI always reproduces; local runs explore.
settings.register_profile("edgenn", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "edgenn")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
# a bound against a hung child only: far above any cold JIT compile on a loaded machine
HANG_LIMIT = 3600


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run in this process (no interpreter start, kernels already compiled), its result as a
    subprocess would give it. Tests about processes (signals, start-up, concurrency) spawn their own."""
    import signal
    from contextlib import redirect_stderr, redirect_stdout

    from edgenn.cli import main
    from edgenn.limits import max_bytes, set_max_bytes

    out, err = io.StringIO(), io.StringIO()
    limit, on_term = max_bytes(), signal.getsignal(signal.SIGTERM)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    except Exception:  # --debug lets the exception out: Python would print it and exit 1
        import traceback

        err.write(traceback.format_exc())
        code = 1
    finally:  # what main changes for the process: the memory limit, the SIGTERM handler
        set_max_bytes(limit)
        signal.signal(signal.SIGTERM, on_term)
    return subprocess.CompletedProcess(["edgenn", *args], code, out.getvalue(), err.getvalue())


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the reference output's range."""
    span = float(np.max(want) - np.min(want)) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / span


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
