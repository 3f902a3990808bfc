from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

# first calls compile Numba kernels (or load them from the cache): no per-example deadline
settings.register_profile("edgenn", deadline=None, print_blob=True)
settings.load_profile("edgenn")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the reference output's range."""
    span = float(np.max(want) - np.min(want)) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / span


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
