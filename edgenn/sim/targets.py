"""Target profiles: what a device offers (flash, RAM, DSP extension) and how to build and run C for it.

Profiles are TOML files in targets/ (installed as the edgenn.targets package); a path to any such file
works too. Fields: name, description, kind (mcu | linux), flash_bytes, ram_bytes (0: no limit), dsp,
[build] cc, cflags, ldflags, size and nm (binutils), [run] command ("{program}" is replaced),
timeout_s.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgenn.errors import InputError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    kind: str
    flash_bytes: int
    ram_bytes: int
    dsp: bool
    cc: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    size_tool: str | None
    nm_tool: str | None
    run_command: tuple[str, ...] | None
    timeout_s: float


def profiles_dir() -> Path:
    """Installed: the edgenn.targets package; imported from a source tree: its targets/ folder."""
    try:
        return Path(str(resources.files("edgenn.targets")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "targets"


def harness_source() -> Path:
    return profiles_dir() / "harness" / "harness.c"


def instruction_counter_source() -> Path:
    return profiles_dir() / "qemu" / "insncount.c"


def target_names() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.toml"))


def load_target(name: str) -> Target:
    """A bundled profile by name, or a profile file by path."""
    path = Path(name) if name.endswith(".toml") else profiles_dir() / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"unknown target '{name}' (bundled: {', '.join(target_names())})")
    try:
        data = tomllib.loads(path.read_text())
        build = data["build"]
        run = data.get("run")
        return Target(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            kind=str(data.get("kind", "mcu")),
            flash_bytes=int(data.get("flash_bytes", 0)),
            ram_bytes=int(data.get("ram_bytes", 0)),
            dsp=bool(data.get("dsp", False)),
            cc=str(build["cc"]),
            cflags=tuple(map(str, build.get("cflags", ()))),
            ldflags=tuple(map(str, build.get("ldflags", ()))),
            size_tool=build.get("size"),
            nm_tool=build.get("nm"),
            run_command=tuple(map(str, run["command"])) if run else None,
            timeout_s=float(run.get("timeout_s", 300)) if run else 300.0,
        )
    except KeyError as err:
        raise InputError(f"{path}: not a valid target profile (missing field {err})") from None
    except (tomllib.TOMLDecodeError, TypeError, ValueError) as err:
        raise InputError(f"{path}: not a valid target profile ({err})") from None
