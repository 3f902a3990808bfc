"""The hostile-input battery: bad, extreme or malicious inputs through the CLI, each case in its own
process under an address-space cap, tallied by the class of failure it probes.

    python tools/hostile_battery.py [--jobs 2] [--only WORD] [--keep FOLDER] [--json FILE]

Every case states what a well-behaved tool does with it: refuse it (exit 2, one line, no traceback,
nothing written), run it (exit 0, and the result checked against an independent reference where one
exists: TensorFlow Lite Micro, the arithmetic itself), or either. An outcome is "clean" when it is
what the case expects; anything else is listed by kind (internal error, killed, accepted, wrong
answer, memory, timeout, ...). Needs the test extras (tflite, tflite-micro) and gcc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402

MODELS = ROOT / "models"
MLP = MODELS / "digits_mlp.onnx"
MLP_DATA = MODELS / "digits_mlp_test.npz"
CNN = MODELS / "digits_cnn.onnx"  # slower to convert: signals land mid-way
CAP = 8 << 30  # address space per case: a cold JIT compile fits, a blow-up is caught
RSS_BOUND = 4 << 30  # a case that grows past this is a memory failure even if it ends
TIMEOUT = 600
CAPPED = f"""
import atexit, os, resource, runpy, sys
resource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))
atexit.register(lambda: open(os.environ["BATTERY_RSS"], "w").write(
    str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))
sys.argv = ["edgenn", *sys.argv[1:]]
runpy.run_module("edgenn", run_name="__main__")
"""

Check = Callable[[], "str | None"]  # after a run: what is wrong with its result, or None


@dataclass
class Case:
    group: str
    name: str
    args: list[str] = field(default_factory=list)
    expect: str = "refuse"  # refuse | ok | either
    words: str = ""  # what a refusal must say
    check: Check | None = None
    absent: Path | None = None  # must not exist after a refusal
    procedure: Callable[[], tuple[str, str]] | None = None  # (outcome, detail) for signal cases


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str
    seconds: float
    peak_bytes: int


def run_cli(args: list[str], folder: Path) -> tuple[subprocess.CompletedProcess[str], int, float]:
    rss = folder / f".rss-{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "BATTERY_RSS": str(rss)}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CAPPED, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=folder,
    )
    peak = int(rss.read_text()) if rss.exists() else 0
    rss.unlink(missing_ok=True)
    return done, peak, time.monotonic() - start


def message_lines(stderr: str) -> list[str]:
    """The lines of a refusal, click's usage banner aside."""
    skip = ("Usage:", "Try '")
    return [line for line in stderr.strip().splitlines() if line and not line.startswith(skip)]


def judge(case: Case, done: subprocess.CompletedProcess[str], peak: int) -> tuple[str, str]:
    err = done.stderr.strip()
    last = err.splitlines()[-1] if err else ""
    if done.returncode < 0:
        return "killed", f"signal {-done.returncode}"
    if "Traceback" in err or "MemoryError" in err or done.returncode not in (0, 2):
        return "internal error", last[:200]
    if peak > RSS_BOUND:
        return "memory", f"peak {peak / 2**30:.1f} GiB"
    if done.returncode == 2:
        if case.expect == "ok":
            return "refused wrongly", last[:200]
        if len(message_lines(err)) > 1:
            return "not one line", " | ".join(message_lines(err))[:200]
        if case.words and case.words not in err:
            return "unclear message", last[:200]
        if case.absent is not None and case.absent.exists():
            return "half-written", f"{case.absent.name} exists after the refusal"
        return "clean", last[:200]
    if case.expect == "refuse":
        return "accepted", (done.stdout.strip().splitlines() or [""])[-1][:200]
    problem = case.check() if case.check else None
    return ("wrong answer", problem) if problem else ("clean", "ran")


def run_case(case: Case, folder: Path) -> Result:
    start = time.monotonic()
    if case.procedure is not None:
        outcome, detail = case.procedure()
        return Result(case, outcome, detail, time.monotonic() - start, 0)
    try:
        done, peak, seconds = run_cli(case.args, folder)
    except subprocess.TimeoutExpired:
        return Result(case, "timeout", f"over {TIMEOUT} s", TIMEOUT, 0)
    outcome, detail = judge(case, done, peak)
    return Result(case, outcome, detail, seconds, peak)


# ---- the files the cases use ----


class Files:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rng = np.random.default_rng(2026)

    def path(self, name: str) -> Path:
        return self.folder / name

    def write(self, name: str, data: bytes) -> Path:
        self.path(name).write_bytes(data)
        return self.path(name)

    def npy(self, name: str, array: np.ndarray) -> Path:
        np.save(self.path(name), array, allow_pickle=False)
        return self.path(name)

    def onnx(
        self,
        name: str,
        nodes: list[onnx.NodeProto],
        inputs: dict[str, list[int | str]],
        inits: dict[str, np.ndarray] | None = None,
        outputs: tuple[str, ...] = ("y",),
        opset: int = 17,
        elem: int = TensorProto.FLOAT,
    ) -> Path:
        """A model written as given: no checker, no shape inference (they would fix what is meant
        to be broken)."""
        graph = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info(k, elem, v) for k, v in inputs.items()],
            [helper.make_tensor_value_info(o, elem, None) for o in outputs],
            [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        path = self.path(f"{name.replace('/', '_')}.onnx")
        onnx.save(model, str(path))
        return path

    def weights(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)


def out(files: Files, case: str) -> Path:
    return files.path(f"out-{case}")


def convert(files: Files, group: str, name: str, model: Path, *extra: str, **kw: object) -> Case:
    target = out(files, name)
    args = ["convert", str(model), "-o", str(target), "--calib", "random", *extra]
    return Case(group, name, args, absent=target, **kw)  # type: ignore[arg-type]


def run_int8(files: Files, group: str, name: str, model: Path, x: Path, **kw: object) -> Case:
    target = files.path(f"y-{name}.npy")
    args = ["run", str(model), "-i", str(x), "-o", str(target)]
    if model.suffix == ".onnx":
        args += ["--backend", "int8"]
    return Case(group, name, args, absent=target, **kw)  # type: ignore[arg-type]


def equals_tflm(model: Path, x: np.ndarray, result: Path) -> Check:
    def check() -> str | None:
        from edgenn.interop import run_tflm

        want = run_tflm(model.read_bytes(), x)
        got = np.load(result)
        if got.shape != want.shape and got.size == want.size:
            got = got.reshape(want.shape)
        differ = int(np.sum(got != want)) if got.shape == want.shape else -1
        return None if differ == 0 else f"{differ} elements differ from TFLM"

    return check


# ---- 1-3: integer ranges, scale counts, shifts ----


def range_cases(f: Files) -> list[Case]:
    g = "1-3 integer ranges"
    fc140 = f.write("fc140k.tflite", hostile.dense_file(140_000, 127, 0.01, 0.01, 1.0))
    x140 = f.npy("x140k.npy", np.full((1, 140_000), 127, np.int8))
    fc60 = f.write("fc60k.tflite", hostile.dense_file(60_000, 127, 0.01, 0.01, 20.0))
    x60 = f.rng.integers(-128, 128, (4, 60_000)).astype(np.int8)
    x60[0] = 127
    x60_path = f.npy("x60k.npy", x60)
    pool8 = f.write("pool2910.tflite", hostile.average_pool_file(2910))
    xp8 = f.npy("xpool8.npy", np.full((1, 2910, 2910, 1), 127, np.int8))
    pool16 = f.write("pool182.tflite", hostile.average_pool_file(182, hostile.DType.INT16))
    xp16 = f.npy("xpool16.npy", np.full((1, 182, 182, 1), 32767, np.int16))
    conv_ok = f.write("conv4of4.tflite", hostile.conv_file(4, 4))
    xc = f.rng.integers(-128, 128, (3, 8, 8, 2)).astype(np.int8)
    xc_path = f.npy("xconv.npy", xc)
    huge_mult = f.write("mult1e58.tflite", hostile.dense_file(16, 1, 1e15, 1e15, 1e-28))
    tiny_mult = f.write("mult1e-25.tflite", hostile.dense_file(16, 127, 1e-10, 1e-10, 1e5))
    x16 = f.npy("x16.npy", np.full((2, 16), 127, np.int8))
    wide = f.onnx(
        "gemm140k",
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        {"x": ["N", 140_000]},
        {"w": np.full((140_000, 1), 0.5, np.float32)},
    )
    gap = f.onnx(
        "gap4200", [helper.make_node("GlobalAveragePool", ["x"], ["y"])], {"x": [1, 1, 4200, 4200]}
    )
    clip = f.onnx(
        "gemm_clip_tiny",
        [
            helper.make_node("Gemm", ["x", "w"], ["g"]),
            helper.make_node("Clip", ["g", "lo", "hi"], ["y"]),
        ],
        {"x": ["N", 8]},
        {"w": f.weights(8, 4), "lo": np.float32(0), "hi": np.float32(1e-25)},
    )

    def zero_point_only() -> str | None:
        got = np.load(f.path("y-tiny-multiplier.npy"))
        return None if np.all(got == 0) else f"outputs {np.unique(got)[:5]} where 0 is exact"

    edgenn_fc140 = f.path("fc140k.edgenn")
    from edgenn.frontend.tflite import read_tflite
    from edgenn.serialize import save_graph

    save_graph(read_tflite(fc140.read_bytes(), "fc"), edgenn_fc140)
    limit = "exceeds int32"
    return [
        run_int8(f, g, "fc-140k-inputs.tflite", fc140, x140, words=limit),
        run_int8(f, g, "fc-140k-inputs.edgenn", edgenn_fc140, x140, words=limit),
        Case(g, "verify fc-140k", ["verify", str(fc140), "--random", "2"], words=limit),
        Case(g, "footprint fc-140k", ["footprint", str(fc140), "--target", "host", "--no-tflm"]),
        run_int8(
            f,
            g,
            "fc-60k-inputs",
            fc60,
            x60_path,
            expect="ok",
            check=equals_tflm(fc60, x60, f.path("y-fc-60k-inputs.npy")),
        ),
        run_int8(f, g, "avgpool-8.5M-taps-int8", pool8, xp8, words="can exceed int32"),
        run_int8(f, g, "avgpool-33k-taps-int16", pool16, xp16, words="can exceed int32"),
        convert(f, g, "onnx-matmul-140k", wide, "--calib-samples", "4", words=limit),
        convert(f, g, "onnx-global-pool-17M-taps", gap, "--calib-samples", "2"),
        run_int8(
            f,
            g,
            "scales-3-for-4-channels",
            f.write("c3.tflite", hostile.conv_file(4, 3)),
            xc_path,
            words="3 quantization scales for 4 channels",
        ),
        run_int8(
            f,
            g,
            "scales-5-for-4-channels",
            f.write("c5.tflite", hostile.conv_file(4, 5)),
            xc_path,
            words="5 quantization scales for 4 channels",
        ),
        Case(g, "verify scales-3-for-4", ["verify", str(f.path("c3.tflite")), "--random", "2"]),
        run_int8(
            f,
            g,
            "conv-4-scales-control",
            conv_ok,
            xc_path,
            expect="ok",
            check=equals_tflm(conv_ok, xc, f.path("y-conv-4-scales-control.npy")),
        ),
        run_int8(f, g, "multiplier-1e58", huge_mult, x16, words="out of the kernels' range"),
        run_int8(f, g, "tiny-multiplier", tiny_mult, x16, expect="ok", check=zero_point_only),
        convert(f, g, "onnx-clip-1e-25", clip, expect="either"),
    ]


# ---- 4: memory from tiny files ----


def memory_cases(f: Files) -> list[Case]:
    g = "4 memory"
    pad = f.onnx(
        "pad_bomb",
        [helper.make_node("Pad", ["x", "p"], ["y"])],
        {"x": [1, 4]},
        {"p": np.array([0, 10**9, 0, 10**9], np.int64)},
    )
    conv = f.onnx(
        "conv_30000",
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[30000] * 4, strides=[30000] * 2)],
        {"x": [1, 1, 8, 8]},
        {"w": np.ones((1, 1, 3, 3), np.float32)},
    )
    expand = f.onnx(
        "expand_bomb",
        [helper.make_node("Expand", ["x", "s"], ["y"])],
        {"x": [1, 1]},
        {"s": np.array([1, 10**6, 10**6], np.int64)},
    )
    tile = f.onnx(
        "tile_bomb",
        [helper.make_node("Tile", ["x", "r"], ["y"])],
        {"x": [1, 4]},
        {"r": np.array([1, 10**9], np.int64)},
    )
    wide_in = f.onnx("input_1e12", [helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 10**12]})
    huge = f.write("huge_tensor.tflite", hostile.huge_tensor_file())
    stride = f.write("stride_16M.tflite", hostile.conv_file(4, 4, stride=16_777_216))
    xc = f.rng.integers(-128, 128, (2, 8, 8, 2)).astype(np.int8)
    xc_path = f.npy("xstride.npy", xc)
    limit = "byte limit"
    data = str(MLP_DATA)
    return [
        convert(f, g, "pad-1e9 convert", pad, words=limit),
        Case(g, "pad-1e9 inspect", ["inspect", str(pad)], words=limit),
        Case(
            g,
            "pad-1e9 run float",
            [
                "run",
                str(pad),
                "-i",
                str(f.npy("x4.npy", np.ones((1, 4), np.float32))),
                "-o",
                str(f.path("y-pad.npy")),
                "--backend",
                "float",
            ],
            words=limit,
        ),
        convert(f, g, "conv-pads-strides-30000", conv, words=limit),
        convert(f, g, "expand-1e12", expand),
        convert(f, g, "tile-1e9", tile),
        Case(g, "input-dim-1e12 inspect", ["inspect", str(wide_in)], words=limit),
        Case(g, "tflite-tensor-10GB inspect", ["inspect", str(huge)], words=limit),
        Case(
            g,
            "tflite-tensor-10GB run",
            ["run", str(huge), "-i", data, "-o", str(f.path("y-huge.npy"))],
        ),
        run_int8(
            f,
            g,
            "tflite-stride-16.7M",
            stride,
            xc_path,
            expect="either",
            check=equals_tflm(stride, xc, f.path("y-tflite-stride-16.7M.npy")),
        ),
        Case(
            g,
            "max-memory 1K",
            [
                "--max-memory",
                "1K",
                "run",
                str(MLP),
                "-i",
                data,
                "-o",
                str(f.path("y-1k.npy")),
                "--backend",
                "int8",
            ],
            words=limit,
        ),
        Case(g, "max-memory abc", ["--max-memory", "abc", "inspect", str(MLP)]),
        Case(g, "max-memory -5", ["--max-memory", "-5", "inspect", str(MLP)]),
    ]


# ---- 5: artifact sets under signals and concurrency ----


def consistent(folder: Path) -> str | None:
    if not folder.exists():
        return None
    try:
        hostile.set_is_consistent(folder)
    except (AssertionError, FileNotFoundError, json.JSONDecodeError) as err:
        return f"inconsistent set: {err!r}"[:200]
    return None


def interrupted(f: Files, sig: signal.Signals, delay: float) -> Callable[[], tuple[str, str]]:
    def procedure() -> tuple[str, str]:
        folder = out(f, f"{sig.name}-{delay}")
        first = subprocess.run(
            [sys.executable, "-c", CAPPED, "convert", str(CNN), "-o", str(folder), "--emit", "c"],
            capture_output=True,
            text=True,
            env={**os.environ, "BATTERY_RSS": os.devnull},
        )
        if first.returncode != 0:
            return "internal error", first.stderr[-200:]
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CAPPED,
                "convert",
                str(MLP),
                "-o",
                str(folder),
                "--emit",
                "tflite",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "BATTERY_RSS": os.devnull},
        )
        time.sleep(delay)
        child.send_signal(sig)
        _, err = child.communicate(timeout=TIMEOUT)
        if "Traceback" in err:
            return "internal error", err.strip().splitlines()[-1][:200]
        problem = consistent(folder)
        return ("half-written", problem) if problem else ("clean", f"exit {child.returncode}")

    return procedure


def concurrent(f: Files) -> tuple[str, str]:
    folder = out(f, "concurrent")
    emits = ([], ["--emit", "c"], ["--emit", "tflite"], ["--emit", "c", "--emit", "tflite"])
    env = {**os.environ, "BATTERY_RSS": os.devnull}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CAPPED, "convert", str(CNN), "-o", str(folder), *emit],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for emit in emits
    ]
    failed = [
        err for run in runs if (err := run.communicate(timeout=TIMEOUT)[1]) and run.returncode
    ]
    if failed:
        return "internal error", failed[0].strip().splitlines()[-1][:200]
    problem = consistent(folder)
    return ("half-written", problem) if problem else ("clean", "4 of 4 converts exit 0")


def artifact_cases(f: Files) -> list[Case]:
    g = "5 artifact sets"
    cases = [
        Case(g, f"{sig.name} at {delay} s", procedure=interrupted(f, sig, delay))
        for sig in (signal.SIGINT, signal.SIGTERM)
        for delay in (0.3, 1.0, 2.0, 3.0)
    ]
    return [*cases, Case(g, "4 concurrent converts", procedure=lambda: concurrent(f))]


# ---- 6: bad numbers ----


def number_cases(f: Files) -> list[Case]:
    g = "6 numbers"
    cases = []
    # NaN is refused at import naming the initializer; Inf and huge values (which a float model may
    # mean) when they are quantized, naming the layer
    named = {"nan": "initializer 'w'", "inf": "node 'MatMul_0'", "3e38": "node 'MatMul_0'"}
    for label, value in (("nan", np.nan), ("inf", np.inf), ("3e38", 3e38)):
        w = f.weights(8, 4)
        w[2, 1] = value
        model = f.onnx(
            f"weights_{label}",
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            {"x": ["N", 8]},
            {"w": w},
        )
        cases.append(convert(f, g, f"weight {label}", model, words=named[label]))
    x = np.load(MLP_DATA)["x"][:4]
    for label, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        bad = x.copy()
        bad[1, 3] = value
        path = f.npy(f"x_{label}.npy", bad)
        cases.append(run_int8(f, g, f"input {label} int8", MLP, path))
        cases.append(run_int8(f, g, f"input {label} .edgenn", f.path("mlp-set/model.edgenn"), path))
    cases.append(
        run_int8(f, g, "input complex", MLP, f.npy("x_complex.npy", x.astype(np.complex64)))
    )
    cases.append(run_int8(f, g, "input strings", MLP, f.npy("x_str.npy", x.astype(str))))
    cases.append(run_int8(f, g, "input bool", MLP, f.npy("x_bool.npy", x > 0), expect="either"))
    cases.append(run_int8(f, g, "input 1e30", MLP, f.npy("x_huge.npy", x * 1e30), expect="either"))
    nan = f.path("x_nan.npy")
    cases.append(
        Case(
            g,
            "input nan float backend",
            [
                "run",
                str(MLP),
                "-i",
                str(nan),
                "-o",
                str(f.path("y-nanf.npy")),
                "--backend",
                "float",
            ],
            expect="either",
        )
    )
    return cases


# ---- 7-8: fit before codegen, target profiles ----


def fit_cases(f: Files) -> list[Case]:
    g = "7 fit check"
    big = f.onnx(
        "big_mlp",
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        {"x": ["N", 4096]},
        {"w": f.weights(4096, 2048)},
    )
    fit = "exceed cortex-m4-qemu's flash"
    return [
        Case(
            g,
            "footprint 8M weights on M4",
            [
                "footprint",
                str(big),
                "--target",
                "cortex-m4-qemu",
                "--no-tflm",
                "--calib",
                "random",
                "--calib-samples",
                "4",
            ],
            words=fit,
        ),
        convert(
            f,
            g,
            "convert --emit c 8M weights on M4",
            big,
            "--calib-samples",
            "4",
            "--emit",
            "c",
            "--target",
            "cortex-m4-qemu",
            words=fit,
        ),
    ]


def profile_cases(f: Files) -> list[Case]:
    g = "8 target profiles"
    base = (ROOT / "targets" / "host.toml").read_text()
    edits = {
        "dsp-string": ("dsp = false", 'dsp = "false"'),
        "ram-inf": ("ram_bytes = 0", "ram_bytes = inf"),
        "ram-negative": ("ram_bytes = 0", "ram_bytes = -1"),
        "flash-string": ("flash_bytes = 0", 'flash_bytes = "1MB"'),
        "cflags-string": ('cflags = ["-std=c99"', 'cflags = "-std=c99" #'),
        "kind-unknown": ('kind = "linux"', 'kind = "toaster"'),
        "timeout-negative": ("timeout_s = 300", "timeout_s = -5"),
        "not-toml": ("[build]", "[build"),
    }
    cases = []
    for label, (old, new) in edits.items():
        assert old in base, label
        path = f.path(f"profile-{label}.toml")
        path.write_text(base.replace(old, new, 1))
        cases.append(Case(g, label, ["footprint", str(MLP), "--target", str(path), "--no-tflm"]))
    control = f.path("profile-control.toml")
    control.write_text(base)
    return [
        *cases,
        Case(g, "no such target", ["footprint", str(MLP), "--target", "nosuchboard", "--no-tflm"]),
        Case(
            g,
            "valid copy (control)",
            ["footprint", str(MLP), "--target", str(control), "--no-tflm"],
            expect="ok",
        ),
    ]


# ---- 9: files and arguments that used to end in internal errors ----


def file_cases(f: Files) -> list[Case]:
    g = "9 malformed files"
    cases = []
    for label, offset, location in (
        ("offset abc", "abc", "w.bin"),
        ("location NUL", "0", "w\x00.bin"),
        ("location ../..", "0", "../../../../etc/passwd"),
        ("location absolute", "0", "/etc/passwd"),
        ("location folder", "0", "."),
        ("offset past end", "4096", "w.bin"),
        ("offset negative", "-8", "w.bin"),
    ):
        folder = f.path(f"ext-{label.replace(' ', '_').replace('/', '_')}")
        folder.mkdir()
        cases.append(
            convert(
                f,
                g,
                f"external data {label}",
                hostile.external_data_model(folder, offset, location),
            )
        )
    mlp_edgenn = f.path("mlp-set/model.edgenn")
    mlp_tflite = f.path("mlp-set/model.tflite")
    x = str(MLP_DATA)
    for source, suffix in ((mlp_edgenn, "edgenn"), (mlp_tflite, "tflite"), (MLP, "onnx")):
        data = source.read_bytes()
        for share in (0.1, 0.5, 0.9, 0.999):
            bad = f.write(f"cut{int(share * 1000)}.{suffix}", data[: int(len(data) * share)])
            cases.append(
                Case(
                    g,
                    f"truncated {share:.1%} .{suffix}",
                    [
                        "run",
                        str(bad),
                        "-i",
                        x,
                        "-o",
                        str(f.path(f"y-cut-{suffix}.npy")),
                        "--backend",
                        "int8",
                    ],
                )
            )
        noise = f.write(f"noise.{suffix}", f.rng.bytes(2000))
        cases.append(Case(g, f"random bytes .{suffix}", ["inspect", str(noise)]))
        cases.append(Case(g, f"empty .{suffix}", ["inspect", str(f.write(f"empty.{suffix}", b""))]))
    body = b'{"format": 1, "name": "m", "values": [], "nodes": {}, "inputs": [], "outputs": []}'
    import struct

    from edgenn.serialize import MAGIC

    for label, header in (
        ("lists for objects", body),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ):
        path = f.write(
            f"{label.replace(' ', '_')}.edgenn", MAGIC + struct.pack("<Q", len(header)) + header
        )
        cases.append(Case(g, f".edgenn {label}", ["inspect", str(path)], words="corrupt edgenn"))
    gather = hostile.tiny_onnx(
        f.path("gather.onnx"),
        helper.make_node("Gather", ["x", "i"], ["y"], axis=1),
        [1, 4],
        [numpy_helper.from_array(np.array([7], np.int64), "i")],
    )
    cases.append(Case(g, "gather index 7 of 4", ["inspect", str(gather)], words="out of range"))
    for builtin in ("MEAN", "CONCATENATION"):
        path = f.write(f"scalar_{builtin}.tflite", hostile.scalar_file(builtin))
        cases.append(Case(g, f"tflite {builtin} of a scalar", ["inspect", str(path)]))
    cases.append(Case(g, "model is a folder", ["inspect", str(f.folder)]))
    cases.append(Case(g, "model missing", ["inspect", str(f.path("nothing.onnx"))]))
    cases.append(Case(g, "model .txt", ["inspect", str(f.write("m.txt", b"hello"))]))
    return cases


def data_cases(f: Files) -> list[Case]:
    g = "9 bad data"
    cases = []
    bad = hostile.bad_inputs(f.folder)
    for label, path in bad.items():
        cases.append(run_int8(f, g, f"input {label}", MLP, path))
    x = np.load(MLP_DATA)["x"]
    y = np.load(MLP_DATA)["y"]
    shapes = {"1-d": x[0], "features 63": x[:4, :63], "rank 3": x[:4, None, :], "scalar": x[0, 0]}
    for label, array in shapes.items():
        cases.append(
            run_int8(f, g, f"input {label}", MLP, f.npy(f"x_{label.replace(' ', '')}.npy", array))
        )
    npz = f.path("x_wrongkey.npz")
    np.savez(npz, z=x[:4])
    cases.append(run_int8(f, g, "npz without x", MLP, npz))
    for label, labels in (
        ("count 10 of 360", y[:10]),
        ("negative", -y - 1),
        ("fractions", y + 0.5),
        ("2-d", np.stack([y, y], 1)),
    ):
        path = f.path(f"eval_{label.replace(' ', '_')}.npz")
        np.savez(path, x=x, y=labels)
        cases.append(Case(g, f"labels {label}", ["eval", str(MLP), "--data", str(path)]))
    two = hostile.two_input_model(f.path("two.onnx"))
    rng = np.random.default_rng(1)
    np.savez(
        f.path("two.npz"),
        a=rng.uniform(-1, 1, (64, 6)).astype(np.float32),
        b=rng.uniform(-1, 1, (64, 3)).astype(np.float32),
    )
    np.savez(f.path("two_missing.npz"), a=np.zeros((64, 6), np.float32))

    def counted() -> str | None:
        report = json.loads((out(f, "two-inputs") / "report.json").read_text())
        return (
            None
            if report["calibration_samples"] == 64
            else f"report says {report['calibration_samples']}"
        )

    cases.append(
        Case(
            g,
            "two inputs calibrate",
            [
                "convert",
                str(two),
                "-o",
                str(out(f, "two-inputs")),
                "--calib",
                str(f.path("two.npz")),
            ],
            expect="ok",
            check=counted,
        )
    )
    cases.append(
        Case(
            g,
            "two inputs, one array",
            [
                "convert",
                str(two),
                "-o",
                str(out(f, "two-miss")),
                "--calib",
                str(f.path("two_missing.npz")),
            ],
            words="has no array 'b'",
            absent=out(f, "two-miss"),
        )
    )
    return cases


def argument_cases(f: Files) -> list[Case]:
    g = "9 arguments"
    mlp, data = str(MLP), str(MLP_DATA)
    o = str(out(f, "args"))
    blocker = f.write("a_file", b"x")
    return [
        Case(g, "--seed -1", ["convert", mlp, "-o", o, "--calib", "random", "--seed", "-1"]),
        Case(
            g,
            "--calib-samples 1e11",
            ["convert", mlp, "-o", o, "--calib", "random", "--calib-samples", "100000000000"],
        ),
        Case(
            g,
            "--calib-samples 0",
            ["convert", mlp, "-o", o, "--calib", "random", "--calib-samples", "0"],
        ),
        Case(
            g,
            "--percentile 200",
            ["convert", mlp, "-o", o, "--observer", "percentile", "--percentile", "200"],
        ),
        Case(
            g,
            "--max-drop -1",
            ["convert", mlp, "-o", o, "--precision", "auto", "--max-drop", "-1", "--data", data],
        ),
        Case(
            g, "--calib missing file", ["convert", mlp, "-o", o, "--calib", str(f.path("none.npz"))]
        ),
        Case(g, "-o empty (convert)", ["convert", mlp, "-o", ""]),
        Case(g, "-o empty (run)", ["run", mlp, "-i", data, "-o", ""]),
        Case(g, "-o a folder (run)", ["run", mlp, "-i", data, "-o", str(f.folder)]),
        Case(g, "-o under a file", ["convert", mlp, "-o", str(blocker / "sub")]),
        Case(g, "-o is a file", ["convert", mlp, "-o", str(blocker)]),
        Case(g, "run without -i", ["run", mlp]),
        Case(g, "eval without --data", ["eval", str(f.path("two.onnx"))]),
        Case(g, "bench --seconds -1", ["bench", mlp, "--seconds", "-1"]),
        Case(g, "inspect --batch-size 0", ["inspect", mlp, "--batch-size", "0"]),
        Case(
            g, "verify --random 0", ["verify", str(f.path("mlp-set/model.tflite")), "--random", "0"]
        ),
        Case(
            g,
            "verify --seed -1",
            ["verify", str(f.path("mlp-set/model.tflite")), "--random", "2", "--seed", "-1"],
            expect="either",
        ),
        Case(g, "verify an .onnx", ["verify", mlp, "--random", "2"]),
        Case(
            g,
            "--emit c --target nosuch",
            ["convert", mlp, "-o", o, "--emit", "c", "--target", "nosuch"],
        ),
    ]


def name_cases(f: Files) -> list[Case]:
    g = "9 names"
    names = ["allow_pickle", "file", "../../x"]
    model = f.onnx(
        "names",
        [helper.make_node("Relu", ["x"], [n]) for n in names],
        {"x": [1, 4]},
        outputs=tuple(names),
    )
    x = f.npy("x_names.npy", np.arange(8, dtype=np.float32).reshape(2, 4) - 4)
    result = f.path("y-names.npz")

    def members() -> str | None:
        import zipfile

        got = sorted(zipfile.ZipFile(result).namelist())
        want = ["_.._x.npy", "allow_pickle.npy", "file.npy"]
        with np.load(result) as saved:
            same = np.array_equal(saved["file"], np.maximum(np.arange(8).reshape(2, 4) - 4, 0))
        return None if got == want and same else f"members {got}"

    twice = f.onnx(
        "twice", [helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 4]}, outputs=("y", "y")
    )
    evil = ['a*/ #include "x" //', 'q"\n#define int float', "\\", "", "ünïcødé", "x" * 300]
    nodes, prev = [], 'in */ "put\\'

    for i, name in enumerate(evil):
        nodes.append(helper.make_node("Relu", [prev], [f"t{i}"], name=name))
        prev = f"t{i}"
    nodes.append(helper.make_node("Gemm", [prev, "w"], ["y"], name="*/ }"))
    injected = f.onnx("in*/jected", nodes, {'in */ "put\\': ["N", 8]}, {"w": f.weights(8, 4)})
    c_folder = out(f, "injection") / "c"

    def compiles() -> str | None:
        sources = sorted(str(p) for p in c_folder.glob("*.c"))
        done = subprocess.run(
            ["gcc", "-std=c99", "-Wall", "-Werror", "-fsyntax-only", *sources],
            capture_output=True,
            text=True,
        )
        return None if done.returncode == 0 else done.stderr.strip().splitlines()[0][:200]

    return [
        Case(
            g,
            "outputs allow_pickle, file, ../../x",
            ["run", str(model), "-i", str(x), "-o", str(result)],
            expect="ok",
            check=members,
        ),
        Case(g, "output listed twice", ["inspect", str(twice)], words="listed 2 times"),
        Case(
            g,
            "C injection through names",
            [
                "convert",
                str(injected),
                "-o",
                str(out(f, "injection")),
                "--calib",
                "random",
                "--emit",
                "c",
            ],
            expect="ok",
            check=compiles,
        ),
    ]


def structure_cases(f: Files) -> list[Case]:
    """ONNX graphs broken in one structural way each."""
    g = "9 ONNX structure"
    n = helper.make_node
    w = f.weights
    specs: dict[str, tuple[list[onnx.NodeProto], dict, dict, str]] = {
        "broadcast 3 vs 4": ([n("Add", ["x", "b"], ["y"])], {"x": ["N", 4]}, {"b": w(3)}, "refuse"),
        "squeeze axis of size 4": (
            [n("Squeeze", ["x", "a"], ["y"])],
            {"x": [1, 4]},
            {"a": np.array([1], np.int64)},
            "refuse",
        ),
        "maxpool window 9 on 4": (
            [n("MaxPool", ["x"], ["y"], kernel_shape=[9, 9])],
            {"x": [1, 1, 4, 4]},
            {},
            "refuse",
        ),
        "reshape to 70 dims": (
            [n("Reshape", ["x", "s"], ["y"])],
            {"x": [1, 1]},
            {"s": np.ones(70, np.int64)},
            "refuse",
        ),
        "reduce repeated axes": (
            [n("ReduceMean", ["x", "a"], ["y"])],
            {"x": [1, 4, 4]},
            {"a": np.array([1, 1], np.int64)},
            "refuse",
        ),
        "transpose bad perm": (
            [n("Transpose", ["x"], ["y"], perm=[0, 0, 1])],
            {"x": [1, 2, 3]},
            {},
            "refuse",
        ),
        "concat axis 5": ([n("Concat", ["x", "x"], ["y"], axis=5)], {"x": [1, 4]}, {}, "refuse"),
        "split sizes 3+3 of 4": (
            [n("Split", ["x", "s"], ["y", "z"], axis=1)],
            {"x": [1, 4]},
            {"s": np.array([3, 3], np.int64)},
            "refuse",
        ),
        "slice step 0": (
            [n("Slice", ["x", "b", "e", "a", "s"], ["y"])],
            {"x": [1, 4]},
            {
                "b": np.array([0], np.int64),
                "e": np.array([4], np.int64),
                "a": np.array([1], np.int64),
                "s": np.array([0], np.int64),
            },
            "refuse",
        ),
        "conv group 3 of 4 channels": (
            [n("Conv", ["x", "w"], ["y"], group=3)],
            {"x": [1, 4, 8, 8]},
            {"w": w(6, 1, 3, 3)},
            "refuse",
        ),
        "matmul 4 by 5": (
            [n("MatMul", ["x", "w"], ["y"])],
            {"x": ["N", 4]},
            {"w": w(5, 3)},
            "refuse",
        ),
        "softmax axis 3": ([n("Softmax", ["x"], ["y"], axis=3)], {"x": [1, 4]}, {}, "refuse"),
        "flatten axis 4": ([n("Flatten", ["x"], ["y"], axis=4)], {"x": [1, 4]}, {}, "refuse"),
        "unsupported op": ([n("NonMaxSuppression", ["x"], ["y"])], {"x": [1, 4]}, {}, "refuse"),
        "cycle": ([n("Relu", ["z"], ["y"]), n("Relu", ["y"], ["z"])], {"x": [1, 4]}, {}, "refuse"),
        "undefined input": ([n("Add", ["x", "ghost"], ["y"])], {"x": [1, 4]}, {}, "refuse"),
        "two producers of y": (
            [n("Relu", ["x"], ["y"]), n("Sigmoid", ["x"], ["y"])],
            {"x": [1, 4]},
            {},
            "refuse",
        ),
        "no nodes": ([], {"y": [1, 4]}, {}, "either"),
        "zero-size dim": ([n("Relu", ["x"], ["y"])], {"x": [1, 0]}, {}, "refuse"),
        "custom domain": (
            [helper.make_node("Relu", ["x"], ["y"], domain="com.evil")],
            {"x": [1, 4]},
            {},
            "refuse",
        ),
        "conv kernel 5 on 3": (
            [n("Conv", ["x", "w"], ["y"])],
            {"x": [1, 1, 3, 3]},
            {"w": w(1, 1, 5, 5)},
            "refuse",
        ),
        "negative pads": (
            [n("Conv", ["x", "w"], ["y"], pads=[-2, -2, -2, -2])],
            {"x": [1, 1, 8, 8]},
            {"w": w(1, 1, 3, 3)},
            "either",
        ),
        "dilation 0": (
            [n("Conv", ["x", "w"], ["y"], dilations=[0, 0])],
            {"x": [1, 1, 8, 8]},
            {"w": w(1, 1, 3, 3)},
            "refuse",
        ),
        "stride 0": (
            [n("Conv", ["x", "w"], ["y"], strides=[0, 0])],
            {"x": [1, 1, 8, 8]},
            {"w": w(1, 1, 3, 3)},
            "refuse",
        ),
        "batchnorm scale of 3 for 4": (
            [n("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
            {"x": [1, 4, 2, 2]},
            {"s": w(3), "b": w(4), "m": w(4), "v": np.ones(4, np.float32)},
            "refuse",
        ),
        "reshape -1 twice": (
            [n("Reshape", ["x", "s"], ["y"])],
            {"x": [1, 4]},
            {"s": np.array([-1, -1], np.int64)},
            "refuse",
        ),
        "gemm transB mismatch": (
            [n("Gemm", ["x", "w"], ["y"], transB=1)],
            {"x": ["N", 4]},
            {"w": w(4, 3)},
            "refuse",
        ),
        "leaky relu alpha nan": (
            [n("LeakyRelu", ["x"], ["y"], alpha=float("nan"))],
            {"x": ["N", 4]},
            {},
            "refuse",
        ),
        "clip min > max": (
            [n("Clip", ["x", "lo", "hi"], ["y"])],
            {"x": ["N", 4]},
            {"lo": np.float32(2), "hi": np.float32(-2)},
            "either",
        ),
        "int64 weights": (
            [n("MatMul", ["x", "w"], ["y"])],
            {"x": ["N", 4]},
            {"w": np.ones((4, 3), np.int64)},
            "refuse",
        ),
    }
    cases = []
    for label, (nodes, inputs, inits, expect) in specs.items():
        outputs = ("y", "z") if label.startswith("split") else ("y",)
        model = f.onnx(label.replace(" ", "_"), nodes, inputs, inits, outputs)
        cases.append(convert(f, g, label, model, "--calib-samples", "4", expect=expect))
    relu = [n("Relu", ["x"], ["y"])]
    for label, opset in (("opset 1", 1), ("opset 99", 99)):
        cases.append(
            convert(
                f,
                g,
                label,
                f.onnx(label.replace(" ", ""), relu, {"x": [1, 4]}, opset=opset),
                expect="either",
            )
        )
    cases.append(
        convert(
            f,
            g,
            "float16 model",
            f.onnx("half", relu, {"x": [1, 4]}, elem=TensorProto.FLOAT16),
            expect="either",
        )
    )
    cases.append(
        convert(f, g, "int32 input", f.onnx("ints", relu, {"x": [1, 4]}, elem=TensorProto.INT32))
    )
    then = helper.make_graph(
        [n("Relu", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info("t", 1, None)]
    )
    cases.append(
        convert(
            f,
            g,
            "If with a subgraph",
            f.onnx(
                "if",
                [n("If", ["c"], ["y"], then_branch=then, else_branch=then)],
                {"x": [1, 4]},
                {"c": np.array(True)},
            ),
        )
    )
    return cases


# ---- driver ----


def all_cases(f: Files) -> list[Case]:
    baseline = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgenn",
            "convert",
            str(MLP),
            "-o",
            str(f.path("mlp-set")),
            "--emit",
            "tflite",
        ],
        capture_output=True,
        text=True,
    )
    if baseline.returncode != 0:
        raise SystemExit(f"baseline convert failed: {baseline.stderr}")
    makers = (
        range_cases,
        memory_cases,
        artifact_cases,
        number_cases,
        fit_cases,
        profile_cases,
        file_cases,
        data_cases,
        argument_cases,
        name_cases,
        structure_cases,
    )
    return [case for make in makers for case in make(f)]


def table(results: list[Result]) -> str:
    groups = sorted({r.case.group for r in results})
    kinds = sorted({r.outcome for r in results} - {"clean"})
    head = ["class", "cases", "clean", *kinds]
    rows = [head, ["---"] * len(head)]
    for group in [*groups, "all"]:
        chosen = [r for r in results if group in ("all", r.case.group)]
        counts = Counter(r.outcome for r in chosen)
        rows.append(
            [group, str(len(chosen)), str(counts["clean"]), *(str(counts[k]) for k in kinds)]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run the cases whose class or name holds this")
    parser.add_argument("--keep", type=Path, help="build the files in this folder and keep them")
    parser.add_argument("--json", type=Path, help="write every case's outcome here")
    options = parser.parse_args()
    folder = options.keep or Path(tempfile.mkdtemp(prefix="edgenn-battery-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        cases = [c for c in all_cases(Files(folder)) if options.only in f"{c.group} {c.name}"]
        print(f"{len(cases)} cases, {options.jobs} at a time", file=sys.stderr)
        results: list[Result] = []
        with ThreadPoolExecutor(options.jobs) as pool:
            for result in pool.map(lambda c: run_case(c, folder), cases):
                results.append(result)
                mark = "ok  " if result.outcome == "clean" else "FAIL"
                print(
                    f"{mark} [{result.case.group}] {result.case.name}: {result.outcome} "
                    f"({result.seconds:.1f} s) {result.detail}",
                    file=sys.stderr,
                    flush=True,
                )
        print(table(results))
        invocations = sum(1 if r.case.procedure is None else 2 for r in results)
        print(
            f"\n{len(results)} cases over about {invocations} CLI invocations; "
            f"{sum(r.outcome == 'clean' for r in results)} clean."
        )
        for r in results:
            if r.outcome != "clean":
                print(f"- [{r.case.group}] {r.case.name}: {r.outcome}: {r.detail}")
        if options.json:
            rows = [
                {
                    "group": r.case.group,
                    "name": r.case.name,
                    "outcome": r.outcome,
                    "detail": r.detail,
                    "seconds": round(r.seconds, 2),
                    "peak_bytes": r.peak_bytes,
                }
                for r in results
            ]
            options.json.write_text(json.dumps(rows, indent=1))
        sys.exit(0 if all(r.outcome == "clean" for r in results) else 1)
    finally:
        if options.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
