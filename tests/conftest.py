from __future__ import annotations

import os
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


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the reference output's range."""
    span = float(np.max(want) - np.min(want)) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / span


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
