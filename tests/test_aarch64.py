"""edgenn on aarch64 under user-mode QEMU (a Raspberry Pi 4 and 5 by NUMBA_CPU_NAME), against this
machine: every output byte of the bundled models' test sets and of the MLPerf Tiny files, and the
bytes of a converted model. The work is tools/aarch64_emulated.py; the arm64 root is built once and
cached (EDGENN_ARM64_ROOT, default ~/.cache/edgenn/arm64-root)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import aarch64_emulated  # noqa: E402

LACKS = aarch64_emulated.missing()


@pytest.mark.skipif(bool(LACKS), reason=f"cannot emulate aarch64 here: {', '.join(LACKS)}")
def test_aarch64_outputs_and_conversions_equal_x86() -> None:
    try:
        report = aarch64_emulated.check()
    except aarch64_emulated.RootUnavailableError as err:  # the machine, not edgenn: say so, visibly
        pytest.skip(str(err)[:300])
    print(report)
    comparisons = report["comparisons"]
    assert {c["cpu"] for c in comparisons} == set(aarch64_emulated.CPUS)
    assert len(comparisons) >= 2 * 8  # 3 bundled models + 5 MLPerf files, on each CPU setting
    assert [c for c in comparisons if c["differing_bytes"]] == []
    assert report["convert"] == {"model.edgenn": True, "model.tflite": True}
