"""The sensor-loop API (Runtime.session): float or integer samples through preallocated buffers,
the same results as Runtime.run_float / run, latency statistics; `edgenn run --repeat` and
`edgenn precompile`."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MODELS, run_cli
from test_codegen_c import fixed_model

from edgenn.errors import InputError
from edgenn.runtime import Runtime


def test_session_matches_the_batch_runtime() -> None:
    fixed, xq = fixed_model("digits_cnn")
    runtime = Runtime(fixed)
    session = runtime.session()
    x = np.load(MODELS / "digits_cnn_test.npz")["x"][:20]
    floats = np.stack([session.infer(sample) for sample in x])
    assert np.array_equal(floats.reshape(len(x), -1), runtime.run_float(x).reshape(len(x), -1))
    first = session.infer_int8(xq[0])
    kept = first.copy()
    session.infer_int8(xq[1])  # the buffer is the session's: the next call overwrites it
    assert np.array_equal(kept.reshape(-1), runtime.run(xq[:1]).reshape(-1))
    assert np.array_equal(first.reshape(-1), runtime.run(xq[1:2]).reshape(-1))


def test_session_refuses_what_it_cannot_take() -> None:
    session = Runtime(fixed_model("digits_mlp")[0]).session()
    with pytest.raises(InputError, match="shape"):
        session.infer(np.zeros((3, 64), np.float32))
    with pytest.raises(InputError, match="int8"):
        session.infer_int8(np.zeros(64, np.float32))
    with pytest.raises(InputError, match="at least 1"):
        session.latency(0)


def test_latency_statistics() -> None:
    stats = Runtime(fixed_model("digits_mlp")[0]).session().latency(50)
    assert stats.runs == 50
    assert 0 < stats.min_us <= stats.median_us <= stats.p90_us <= stats.p99_us <= stats.max_us
    assert "latency over 50 runs" in str(stats)


def test_run_repeat_and_precompile_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = MODELS / "digits_mlp_test.npz"
    done = run_cli("run", str(MODELS / "digits_mlp.onnx"), "-i", str(data), "-o", str(tmp_path / "y.npy"), "--backend", "int8", "--repeat", "20")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "latency over 20 runs: median" in done.stdout
    out = tmp_path / "m"
    assert run_cli("convert", str(MODELS / "digits_mlp.onnx"), "-o", str(out)).returncode == 0
    done = run_cli("precompile", str(out / "model.edgenn"))
    assert done.returncode == 0, done.stderr
    assert "kernels compiled in" in done.stdout and "model.edgenn: ready in" in done.stdout
