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
from typing import Any

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
    """A bundled profile by name, or a profile file by path; every field's type and range is checked,
    naming the field (a string "false" is not a boolean, a RAM size is a non-negative integer)."""
    path = Path(name) if name.endswith(".toml") else profiles_dir() / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"unknown target '{name}' (bundled: {', '.join(target_names())})")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a valid target profile ({err})") from None
    fields = _Fields(path, data)
    build = fields.table("build")
    run = fields.table("run", required=False)
    kind = fields.text(data, "kind", "mcu")
    if kind not in ("mcu", "linux"):
        raise InputError(f"{path}: field 'kind' must be 'mcu' or 'linux', got '{kind}'")
    return Target(
        name=fields.text(data, "name"),
        description=fields.text(data, "description", ""),
        kind=kind,
        flash_bytes=fields.size(data, "flash_bytes"),
        ram_bytes=fields.size(data, "ram_bytes"),
        dsp=fields.flag(data, "dsp"),
        cc=fields.text(build, "cc", where="build."),
        cflags=fields.texts(build, "cflags", where="build."),
        ldflags=fields.texts(build, "ldflags", where="build."),
        size_tool=fields.text(build, "size", None, where="build."),
        nm_tool=fields.text(build, "nm", None, where="build."),
        run_command=fields.texts(run, "command", where="run.", required=True) if run else None,
        timeout_s=fields.seconds(run, "timeout_s") if run else 300.0,
    )


class _Fields:
    """Typed reads of a profile's fields; errors name the file and the field."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, field: str, want: str, got: Any) -> InputError:
        return InputError(f"{self.path}: field '{field}' must be {want}, got {got!r}")

    def table(self, key: str, required: bool = True) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "a [table]", value)
        return value

    def text(self, table: dict[str, Any], key: str, default: Any = ..., where: str = "") -> Any:
        if key not in table:
            if default is ...:
                raise InputError(
                    f"{self.path}: not a valid target profile (missing field '{where}{key}')"
                )
            return default
        if not isinstance(table[key], str) or not table[key]:
            raise self.fail(where + key, "a non-empty string", table[key])
        return table[key]

    def texts(
        self, table: dict[str, Any], key: str, where: str = "", required: bool = False
    ) -> tuple[str, ...]:
        value = table.get(key, None if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where + key, "a list of strings", value)
        if required and not value:
            raise self.fail(where + key, "a non-empty list of strings", value)
        return tuple(value)

    def size(self, table: dict[str, Any], key: str) -> int:
        value = table.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**48:
            raise self.fail(key, "a byte count (an integer, 0 for no limit)", value)
        return value

    def flag(self, table: dict[str, Any], key: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def seconds(self, table: dict[str, Any], key: str) -> float:
        value = table.get(key, 300)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise self.fail(f"run.{key}", "a positive number of seconds", value)
        return float(value)
