"""Build generated C for a target with its toolchain, run the test harness on it (natively or under
QEMU), and measure footprint (binutils size, stack painting)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenn.codegen.c import CSources
from edgenn.errors import EdgennError
from edgenn.sim.targets import Target, harness_source, instruction_counter_source


class ToolchainError(EdgennError):
    """A compiler or emulator is missing, or a build or run failed."""


def missing_tools(target: Target) -> list[str]:
    tools = [target.cc, *([target.size_tool] if target.size_tool else [])]
    if target.run_command:
        tools.append(target.run_command[0])
    return [t for t in tools if "{" not in t and shutil.which(t) is None]


def write_sources(sources: CSources, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.files.items():
        (folder / name).write_text(text)
    return sorted(folder / n for n in sources.files if n.endswith(".c"))


def harness_data(sources: CSources, inputs: np.ndarray) -> str:
    """harness_data.h: the model's header, its invoke function and int8 test inputs [N, input size]."""
    flat = np.asarray(inputs, np.int8).reshape(len(inputs), -1)
    upper = sources.name.upper()
    rows = ",\n".join("    {" + ", ".join(map(str, r.tolist())) + "}" for r in flat)
    return f"""#include "{sources.name}_model.h"
#define HARNESS_INVOKE {sources.name}_invoke
#define HARNESS_OUTPUT_SIZE {upper}_OUTPUT_SIZE
#define HARNESS_SAMPLES {len(flat)}
static const int8_t harness_inputs[{len(flat)}][{upper}_INPUT_SIZE] = {{
{rows}
}};
"""


def _call(command: Sequence[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ToolchainError(f"{what}: '{command[0]}' is not installed") from None
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise ToolchainError(f"{what} failed (exit {done.returncode}):\n" + "\n".join(detail))
    return done


def build_harness(
    sources: CSources,
    inputs: np.ndarray,
    target: Target,
    folder: Path,
    extra_cflags: Sequence[str] = (),
    measure_stack: bool = False,
) -> Path:
    """Compile the model with the harness into folder/harness.elf."""
    c_files = write_sources(sources, folder)
    (folder / "harness_data.h").write_text(harness_data(sources, inputs))
    program = folder / "harness.elf"
    flags = [*target.cflags, *extra_cflags, *(["-DHARNESS_MEASURE_STACK"] if measure_stack else [])]
    command = [
        target.cc,
        *flags,
        f"-I{folder}",
        str(harness_source()),
        *map(str, c_files),
        *target.ldflags,
        "-o",
        str(program),
    ]
    _call(command, f"building for {target.name}", 600)
    return program


@dataclass(frozen=True)
class HarnessRun:
    outputs: np.ndarray  # int8 [N, output size]
    stack_bytes: int | None


def run_harness(program: Path, target: Target, output_size: int) -> HarnessRun:
    if target.run_command is None:
        raise ToolchainError(f"target {target.name} has no run command (build only)")
    command = [part.replace("{program}", str(program)) for part in target.run_command]
    done = _call(command, f"running on {target.name}", target.timeout_s)
    text = done.stdout + done.stderr  # QEMU's semihosting console writes to stderr
    lines = [line.split()[1:] for line in text.splitlines() if line.startswith("out")]
    outputs = np.array([[int(v, 16) for v in line] for line in lines], np.uint8).view(np.int8)
    if outputs.ndim != 2 or outputs.shape[1] != output_size:
        raise ToolchainError(f"running on {target.name}: unexpected output\n{text[-2000:]}")
    stack = re.search(r"^stack (\d+)$", text, re.MULTILINE)
    return HarnessRun(outputs, int(stack.group(1)) if stack else None)


@dataclass(frozen=True)
class Footprint:
    flash_bytes: int  # text + data of the model's objects (code, rodata, initialized data)
    ram_bytes: int  # data + bss (the arena)
    by_file: dict[str, tuple[int, int, int]]  # object -> (text, data, bss)


def compile_objects(
    c_files: Sequence[Path], target: Target, folder: Path, extra_cflags: Sequence[str] = ()
) -> list[Path]:
    """Each source compiled alone (-c) with the target's flags, beside it as .o."""
    objects = []
    for source in c_files:
        obj = source.with_suffix(".o")
        flags = [*target.cflags, *extra_cflags, f"-I{folder}", "-c", str(source), "-o", str(obj)]
        _call([target.cc, *flags], f"compiling {source.name} for {target.name}", 300)
        objects.append(obj)
    return objects


def model_footprint(sources: CSources, target: Target, folder: Path) -> Footprint:
    """Compile the model's files alone (no harness, no libc) and sum binutils size over them."""
    if target.size_tool is None:
        raise ToolchainError(f"target {target.name} has no size tool")
    c_files = write_sources(sources, folder)
    objects = compile_objects(c_files, target, folder)
    done = _call([target.size_tool, *map(str, objects)], "measuring sizes", 60)
    by_file: dict[str, tuple[int, int, int]] = {}
    for line in done.stdout.splitlines()[1:]:
        fields = line.split()
        by_file[Path(fields[-1]).name] = (int(fields[0]), int(fields[1]), int(fields[2]))
    text = sum(v[0] for v in by_file.values())
    data = sum(v[1] for v in by_file.values())
    bss = sum(v[2] for v in by_file.values())
    return Footprint(text + data, data + bss, by_file)


def _model_address_range(program: Path, objects: Sequence[Path], target: Target) -> tuple[int, int]:
    """[lo, hi) spanning the linked code of the model's own functions (kernels, helpers, invoke)."""
    assert target.nm_tool is not None
    defined: set[str] = set()
    for obj in objects:
        listing = _call([target.nm_tool, "--defined-only", str(obj)], "listing symbols", 60).stdout
        defined.update(f[-1] for f in map(str.split, listing.splitlines()) if f[-2] in "tTwW")
    listing = _call([target.nm_tool, "-S", "--defined-only", str(program)], "listing symbols", 60)
    spans = [
        (int(f[0], 16), int(f[0], 16) + int(f[1], 16))
        for f in map(str.split, listing.stdout.splitlines())
        if len(f) == 4 and f[2] in "tTwW" and f[3] in defined  # kernels are weak (W)
    ]
    if not spans:
        raise ToolchainError(f"no model code found in {program.name}")
    return min(a for a, _ in spans), max(b for _, b in spans)


def instructions_per_inference(
    sources: CSources, target: Target, folder: Path, extra_cflags: Sequence[str] = ()
) -> int:
    """Guest instructions one inference executes in the model's code, counted exactly by a QEMU plugin
    (QEMU has no cycle model; this is the input a latency model scales by cycles per instruction)."""
    if target.run_command is None or not target.run_command[0].startswith("qemu"):
        raise ToolchainError(f"target {target.name} does not run under QEMU")
    if target.nm_tool is None:
        raise ToolchainError(f"target {target.name} has no nm tool")
    sample = np.zeros((1, int(sources.program.input_sizes.sum())), np.int8)
    program = build_harness(sources, sample, target, folder, extra_cflags)
    c_files = sorted(folder / n for n in sources.files if n.endswith(".c"))
    objects = compile_objects(c_files, target, folder, extra_cflags)
    lo, hi = _model_address_range(program, objects, target)
    plugin = folder / "libinsncount.so"
    counter = instruction_counter_source()
    _call(["gcc", "-O2", "-shared", "-fPIC", str(counter), "-o", str(plugin)], "building", 120)
    command = [part.replace("{program}", str(program)) for part in target.run_command]
    command[1:1] = ["-plugin", f"{plugin},lo={lo:#x},hi={hi:#x}", "-d", "plugin"]
    done = _call(command, f"counting instructions on {target.name}", target.timeout_s)
    found = re.search(r"^insns (\d+)$", done.stdout + done.stderr, re.MULTILINE)
    if found is None:
        raise ToolchainError(f"{target.run_command[0]} printed no instruction count (no plugins?)")
    return int(found.group(1))
