"""The memory limit every allocation a model asks for is checked against before it is made: each
tensor, padded window copy, arena and kernel scratch buffer (a 200-byte file can otherwise ask for
gigabytes). `edgenn --max-memory BYTES` or `memory_limit()` sets it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from edgenn.errors import InputError, MemoryLimitError

DEFAULT_MAX_BYTES = 1 << 30
_max_bytes = DEFAULT_MAX_BYTES
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_bytes() -> int:
    return _max_bytes


def set_max_bytes(limit: int) -> None:
    global _max_bytes
    if limit < 1:
        raise InputError(f"the memory limit must be positive, got {limit}")
    _max_bytes = limit


@contextmanager
def memory_limit(limit: int) -> Iterator[None]:
    previous = _max_bytes
    set_max_bytes(limit)
    try:
        yield
    finally:
        set_max_bytes(previous)


def parse_size(text: str) -> int:
    """'1073741824', '512M', '2G' (binary units) -> bytes."""
    found = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if found is None:
        raise InputError(f"--max-memory takes a size such as 2G or 512M, got '{text}'")
    return int(found.group(1)) * UNITS[found.group(2).upper()]


def check_bytes(nbytes: int, what: str) -> None:
    if nbytes > _max_bytes:
        raise MemoryLimitError(
            f"{what} would take {nbytes:,} bytes, above the {_max_bytes:,}-byte limit "
            "(edgenn --max-memory raises it)"
        )
