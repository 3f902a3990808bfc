"""File helpers for the CLI and API: atomic writes (never a half-written output) and array loading."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgenn.errors import InputError
from edgenn.limits import check_bytes


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> Path:
    """Write through a temporary file in the target folder, then rename it into place."""
    target = Path(path)
    if not str(path) or target.is_dir():
        raise InputError(f"output path '{path}' is empty or a folder; give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{target}: folder '{folder}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_arrays(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """One array -> .npy; several -> .npz keyed by name (the path must then end in .npz)."""
    target = Path(path)
    if target.suffix == ".npz":
        members = _member_names(list(arrays))
        return write_atomic(target, lambda f: _write_npz(f, members, arrays))
    if len(arrays) != 1:
        raise InputError(
            f"{target}: the model has {len(arrays)} outputs {list(arrays)}; give a .npz path"
        )
    (only,) = arrays.values()
    return write_atomic(target, lambda f: np.save(f, only))


def _member_names(names: list[str]) -> dict[str, str]:
    """Output name -> .npz key: characters other than letters, digits, '_', '-' and inner dots
    become '_' (an output named '../../x' must not become a path inside the archive)."""
    keys = {name: re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "output" for name in names}
    clashes = sorted({k for k in keys.values() if list(keys.values()).count(k) > 1})
    if clashes:
        raise InputError(f"outputs {sorted(names)} map to the same .npz key(s) {clashes}")
    return keys


def _write_npz(f: BinaryIO, keys: dict[str, str], arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{keys[name]}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def load_array(path: str | os.PathLike[str], key: str = "x") -> np.ndarray:
    """An array from .npy, or array `key` from .npz: numbers only (no pickled objects), its size
    checked against the memory limit from its header before anything is read."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    try:
        if zipfile.is_zipfile(source):
            return _load_member(source, key)
        with open(source, "rb") as f:
            return _read_npy(f, str(source))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{source}: not a readable .npy/.npz file ({' '.join(str(err).split())})"
        ) from None


def _load_member(source: Path, key: str) -> np.ndarray:
    with zipfile.ZipFile(source) as archive:
        names = {Path(n).stem: n for n in archive.namelist() if n.endswith(".npy")}
        if key not in names:
            raise InputError(f"{source}: has no array '{key}' (has {', '.join(sorted(names))})")
        info = archive.getinfo(names[key])
        check_bytes(info.file_size, f"{source}: array '{key}'")  # a zip bomb stops here
        with archive.open(info) as member:
            return _read_npy(io.BytesIO(member.read()), f"{source}: array '{key}'")


def _read_npy(f: BinaryIO, what: str) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = header(f)
    if dtype.hasobject:
        raise InputError(f"{what}: holds Python objects (pickled data is never loaded)")
    check_bytes(math.prod(shape) * dtype.itemsize, f"{what} {shape}")
    f.seek(0)
    return np.load(f, allow_pickle=False)


def load_labels(path: str | os.PathLike[str]) -> np.ndarray | None:
    """Integer labels `y` stored beside `x` in a .npz data set, or None when there are none; labels
    are class indices, so negative ones are refused."""
    source = Path(path)
    if source.suffix != ".npz" or not zipfile.is_zipfile(source):
        return None
    try:
        labels = load_array(source, "y")
    except InputError as err:
        if "has no array 'y'" in str(err):
            return None
        raise
    if labels.dtype.kind not in "iu":
        return None
    if labels.ndim != 1:
        raise InputError(
            f"{source}: labels 'y' must be one class index per sample, got shape {labels.shape}"
        )
    if labels.size and int(labels.min()) < 0:
        raise InputError(
            f"{source}: labels 'y' must be class indices (0 or more), found {int(labels.min())}"
        )
    return labels


OUTPUT_SET = ("model.edgenn", "model.tflite", "c", "report.json")  # what `convert` may write


def check_output_folder(outdir: str | os.PathLike[str]) -> None:
    """An output folder can be made where it is asked for: no file in its place or on its path."""
    target = Path(outdir)
    for place in (target, *target.parents):
        if place.exists():
            if not place.is_dir():
                what = "is a file" if place == target else f"lies under the file {place}"
                raise InputError(f"output folder {target} {what}; give a folder")
            return


def write_output_set(
    outdir: str | os.PathLike[str], artifacts: dict[str, bytes | dict[str, str]]
) -> list[Path]:
    """Write a set of artifacts (file name -> bytes, folder name -> {file: text}) so that readers see
    the previous set or the new one whole: everything is staged inside the folder first, then moved
    into place under a lock (concurrent converts commit one after the other) with SIGINT/SIGTERM held
    back, and artifacts of the set that this run does not write are removed, so what is there always
    matches report.json."""
    import fcntl
    import signal

    target = Path(outdir)
    check_output_folder(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".edgenn-staging-", dir=target))
    try:
        for name, content in artifacts.items():
            if isinstance(content, bytes):
                (staging / name).write_bytes(content)
                (staging / name).chmod(0o666 & ~_umask())
            else:
                (staging / name).mkdir()
                for file, text in content.items():
                    (staging / name / file).write_text(text)
        folder = os.open(target, os.O_RDONLY)  # the lock is on the folder itself: no lock file
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            held = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
            try:
                _commit(staging, target, artifacts)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        finally:
            os.close(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [target / name for name in artifacts]


def _commit(staging: Path, target: Path, artifacts: dict[str, bytes | dict[str, str]]) -> None:
    for name in OUTPUT_SET:
        final = target / name
        if name not in artifacts:
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            elif final.exists() or final.is_symlink():
                final.unlink()
            continue
        if isinstance(artifacts[name], bytes):
            os.replace(staging / name, final)
            continue
        if final.exists():  # a folder cannot replace a folder in one rename: move the old one aside
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=target))
            os.replace(final, old / name)
            os.replace(staging / name, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging / name, final)
