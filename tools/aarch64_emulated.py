"""edgenn on aarch64 (a Raspberry Pi 4 / Pi 5) under user-mode QEMU, against this machine's run.

Builds (or reuses) an arm64 Debian root with debootstrap, installs edgenn from this checkout there
with its runtime dependencies only (numpy, numba, onnx, click, and the pure-Python tflite reader:
aarch64 wheels from the package index, the same versions as here), then:
- runs the bundled models' .edgenn files on their whole test sets and the MLPerf Tiny .tflite files
  on seeded inputs through `edgenn run`, with `NUMBA_CPU_NAME` set for a Pi 4 (cortex-a72) and a Pi 5 (cortex-a76), and
  compares every output byte with the x86 run;
- converts a bundled model there and compares the .edgenn and .tflite bytes with x86's;
- reports what Arm code LLVM makes of the dot-product kernel (SMULL/SADALP, SDOT).

Needs root (chroot), debootstrap, qemu-user-static and binfmt_misc for aarch64 (`.ci/run` installs
them). Usage: python tools/aarch64_emulated.py [--root DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = Path(os.environ.get("EDGENN_ARM64_ROOT", Path.home() / ".cache/edgenn/arm64-root"))
MIRROR = os.environ.get("EDGENN_DEBIAN_MIRROR", "")  # default: the first one apt is configured with
RUNTIME_PACKAGES = ("numpy", "numba", "onnx", "click", "tflite", "flatbuffers")
CPUS = {"cortex-a72": "cortex-a72", "cortex-a76": "cortex-a76"}  # NUMBA_CPU_NAME -> QEMU_CPU
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
MARKER = "opt/edgenn-root.json"  # what the cached root holds


def missing() -> list[str]:
    """What this machine lacks for the emulated run (empty: it can run)."""
    lacks = [tool for tool in ("debootstrap", "chroot") if shutil.which(tool) is None]
    if not BINFMT.exists():
        lacks.append("binfmt_misc for aarch64 (qemu-user-static + binfmt-support)")
    if os.geteuid() != 0:
        lacks.append("root (for chroot)")
    return lacks


def debian_mirror() -> str:
    if MIRROR:
        return MIRROR
    for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        for line in source.read_text().splitlines() if source.is_file() else []:
            words = line.split()
            if words[:1] == ["URIs:"] or words[:1] == ["deb"]:
                url = words[1] if words[0] == "URIs:" else words[-3]
                if url.startswith("http") and "security" not in url:
                    return url
    raise RootUnavailableError("no Debian mirror in apt's sources; set EDGENN_DEBIAN_MIRROR")


def versions() -> dict[str, str]:
    """The runtime packages pinned to this machine's versions (bit-exactness is per version)."""
    pinned = {name: metadata.version(name) for name in RUNTIME_PACKAGES}
    pinned["llvmlite"] = metadata.version("llvmlite")
    return pinned


def build_root(root: Path, log) -> float:  # type: ignore[no-untyped-def]
    """A fresh arm64 root with a venv holding the pinned runtime wheels; returns seconds taken."""
    start = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3-venv",
         "bookworm", str(root), debian_mirror()], log)  # fmt: skip
    wheels = root / "wheels"
    pins = [f"{name}=={version}" for name, version in versions().items()]
    run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
         "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64",
         "--python-version", "3.11", "-d", str(wheels), *pins, "setuptools>=68", "wheel"], log)  # fmt: skip
    chroot(root, ["python3", "-m", "venv", "/opt/venv"], log)
    chroot(root, ["/opt/venv/bin/pip", "install", "-q", "--no-index", "--find-links", "/wheels",
                  *pins, "setuptools>=68", "wheel"], log)  # fmt: skip
    (root / MARKER).write_text(json.dumps(versions()))
    return time.perf_counter() - start


class RootUnavailableError(RuntimeError):
    """The arm64 root could not be built here (no Debian mirror or package index reachable...)."""


def ensure_root(root: Path, log) -> tuple[float, bool]:  # type: ignore[no-untyped-def]
    """(seconds, built): the cached root when it holds these versions, else a new one."""
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == versions():
        return 0.0, False
    try:
        return build_root(root, log), True
    except (RuntimeError, OSError) as err:
        raise RootUnavailableError(f"building the arm64 root failed: {err}") from None


def install_checkout(root: Path, log) -> None:  # type: ignore[no-untyped-def]
    """This checkout's edgenn into the root's venv (no dependencies: they are the pinned wheels)."""
    source = root / "opt/edgenn-src"
    if source.exists():
        shutil.rmtree(source)
    ignore = shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", ".ci-venv", "*.nb[ic]"
    )
    shutil.copytree(REPO, source, ignore=ignore)
    chroot(root, ["/opt/venv/bin/pip", "install", "-q", "--no-index", "--no-deps",
                  "--no-build-isolation", "/opt/edgenn-src"], log)  # fmt: skip


def environment() -> dict[str, str]:
    """The host's pip settings must not leak into the root (its index, its find-links)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "NUMBA_"))}
    env["NUMBA_CACHE_DIR"] = "/opt/numba-cache"
    return env


def chroot(root: Path, command: list[str], log, extra: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    proc = root / "proc"
    mounted = proc.is_dir() and not any(proc.iterdir())
    if mounted:
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        return run(["chroot", str(root), *command], log, {**environment(), **(extra or {})})
    finally:
        if mounted:
            subprocess.run(["umount", str(proc)], check=False)


def run(command: list[str], log, env: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    log(f"$ {' '.join(command[:6])}{' ...' if len(command) > 6 else ''} -> {done.returncode}")
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {(done.stderr or done.stdout)[-1500:]}")
    return done.stdout


# ---- the models, their inputs and the x86 reference ----

RUNNER = """
import json, subprocess, sys, time

work, cpu = sys.argv[1], sys.argv[2]
timings = {}
for job in json.load(open(work + "/jobs.json")):
    start = time.perf_counter()
    subprocess.run(["/opt/venv/bin/edgenn", "run", work + "/" + job["file"], "-i",
                    work + "/" + job["inputs"], "-o", work + "/" + job["file"] + "." + cpu + ".npy"],
                   check=True, capture_output=True)
    timings[job["file"]] = time.perf_counter() - start
print(json.dumps(timings))
"""

ASSEMBLY = """
import re, sys
import numpy as np
from numba import njit
from edgenn.ops.dot import block_dot_1x4, dot_rows, block_dot_1x8

@njit
def dense(v, w, out):
    dot_rows(v, w, 0, 64, 16, out, block_dot_1x8, block_dot_1x4)

dense(np.zeros(64, np.int8), np.zeros(1024, np.int8), np.zeros(16, np.int32))
asm = dense.inspect_asm(dense.signatures[0]).lower()
print({op: len(re.findall(r"\\b" + op + r"\\b", asm)) for op in ("smull", "smull2", "sadalp", "saddlp", "smlal", "smlal2", "sdot", "mul", "addp")})
"""


def bundled_jobs(work: Path) -> list[dict]:
    """The bundled models as .edgenn files with their whole test sets, converted here."""
    from edgenn.compile import convert
    from edgenn.quant.quantize import quantize_array
    from edgenn.serialize import save_graph

    jobs = []
    for onnx_path in sorted((REPO / "models").glob("*.onnx")):
        fixed = convert(onnx_path).fixed_graph
        save_graph(fixed, work / f"{onnx_path.stem}.edgenn")
        x = np.load(REPO / "models" / f"{onnx_path.stem}_test.npz")["x"]
        np.save(
            work / f"{onnx_path.stem}.npy",
            quantize_array(x, fixed.type_of(fixed.inputs[0]).qparams),
        )
        jobs.append({"file": f"{onnx_path.stem}.edgenn", "inputs": f"{onnx_path.stem}.npy"})
    return jobs


def mlperf_jobs(work: Path, samples: int = 8) -> list[dict]:
    """The MLPerf Tiny .tflite files with seeded random int8 inputs."""
    from edgenn.frontend.tflite import load_tflite

    jobs = []
    for path in sorted((REPO / "tests/data/mlperf_tiny").glob("*.tflite")):
        graph = load_tflite(path)
        t = graph.type_of(graph.inputs[0])
        rng = np.random.default_rng(len(path.stem))
        info = np.iinfo(t.dtype.numpy)
        x = rng.integers(info.min, info.max + 1, (samples, *t.shape[1:])).astype(t.dtype.numpy)
        shutil.copy(path, work / path.name)
        np.save(work / f"{path.stem}.npy", x)
        jobs.append({"file": path.name, "inputs": f"{path.stem}.npy"})
    return jobs


def x86_outputs(work: Path, jobs: list[dict]) -> dict[str, np.ndarray]:
    from edgenn.frontend.tflite import load_tflite
    from edgenn.runtime import Runtime
    from edgenn.serialize import load_graph

    outputs = {}
    for job in jobs:
        path = work / job["file"]
        graph = load_tflite(path) if path.suffix == ".tflite" else load_graph(path)
        x = np.load(work / job["inputs"])
        out = Runtime(graph).run(x)
        out = out if isinstance(out, list) else [out]
        outputs[job["file"]] = np.concatenate(
            [np.ascontiguousarray(o).reshape(len(x), -1).view(np.int8) for o in out], 1
        )
    return outputs


def check(root: Path = DEFAULT_ROOT, log=print) -> dict:  # type: ignore[no-untyped-def]
    """The whole comparison; returns the report (figures for the note)."""
    report: dict = {"versions": versions()}
    seconds, built = ensure_root(root, log)
    report["root"] = {"built": built, "seconds": round(seconds, 1)}
    install_checkout(root, log)
    work = root / "edgenn-work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    jobs = bundled_jobs(work) + mlperf_jobs(work)
    (work / "jobs.json").write_text(json.dumps(jobs))
    (work / "runner.py").write_text(RUNNER)
    reference = x86_outputs(work, jobs)
    report["comparisons"] = []
    for cpu, qemu_cpu in CPUS.items():
        env = {"NUMBA_CPU_NAME": cpu, "QEMU_CPU": qemu_cpu}
        start = time.perf_counter()
        timings = json.loads(
            chroot(
                root,
                ["/opt/venv/bin/python", "/edgenn-work/runner.py", "/edgenn-work", cpu],
                log,
                env,
            )
        )
        wall = time.perf_counter() - start
        for job in jobs:
            got = np.load(work / f"{job['file']}.{cpu}.npy")  # edgenn run: the model's types
            got = np.ascontiguousarray(got).reshape(len(got), -1).view(np.int8)
            want = reference[job["file"]]
            report["comparisons"].append({
                "cpu": cpu, "model": job["file"], "samples": int(len(want)),
                "bytes": int(want.size), "differing_bytes": int(np.count_nonzero(got != want)),
                "edgenn_run_seconds": round(timings[job["file"]], 1),
            })  # fmt: skip
        report.setdefault("run_seconds", {})[cpu] = round(wall, 1)
        (work / "asm.py").write_text(ASSEMBLY)
        report.setdefault("assembly", {})[cpu] = chroot(
            root, ["/opt/venv/bin/python", "/edgenn-work/asm.py"], log, env
        ).strip()
    report["convert"] = convert_identical(root, work, log)
    return report


def convert_identical(root: Path, work: Path, log) -> dict:  # type: ignore[no-untyped-def]
    """`edgenn convert` on aarch64 and here: the .edgenn and .tflite files byte for byte."""
    model = "digits_cnn"
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp) / "out"
        subprocess.run([sys.executable, "-m", "edgenn", "convert", str(REPO / "models" / f"{model}.onnx"),
                        "-o", str(here), "--emit", "tflite"], check=True, capture_output=True)  # fmt: skip
        chroot(root, ["/opt/venv/bin/python", "-m", "edgenn", "convert",
                      f"/opt/edgenn-src/models/{model}.onnx", "-o", "/edgenn-work/convert", "--emit", "tflite"],
               log, {"NUMBA_CPU_NAME": "cortex-a72", "QEMU_CPU": "cortex-a72"})  # fmt: skip
        return {
            name: (here / name).read_bytes() == (work / "convert" / name).read_bytes()
            for name in ("model.edgenn", "model.tflite")
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lacks = missing()
    if lacks:
        sys.exit(f"cannot run here: {', '.join(lacks)}")
    report = check(args.root)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
