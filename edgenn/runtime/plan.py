"""Static arena planning: every activation gets a fixed offset in one buffer, chosen from its lifetime.

Greedy by size (as TFLM's GreedyMemoryPlanner): buffers are placed largest first, each at the lowest
aligned offset where it overlaps in memory no already-placed buffer whose lifetime overlaps its own.
Lifetimes are inclusive step ranges, so an op's output never shares bytes with an input it is reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ALIGNMENT = 16


@dataclass(frozen=True, slots=True)
class Buffer:
    name: str
    size: int  # bytes
    first: int  # step that writes it (-1: before the first step, for graph inputs)
    last: int  # last step that reads it (len(steps): graph outputs, read after the run)


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[str, int]
    size: int
    buffers: tuple[Buffer, ...]

    def describe(self) -> list[dict[str, int | str]]:
        return [
            {
                "tensor": b.name,
                "offset": self.offsets[b.name],
                "bytes": b.size,
                "first_step": b.first,
                "last_step": b.last,
            }
            for b in sorted(self.buffers, key=lambda b: (self.offsets[b.name], b.name))
        ]


def align(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


def lowest_free_offset(
    busy: Sequence[tuple[int, int]], size: int, alignment: int = ALIGNMENT
) -> int:
    """The lowest aligned offset where `size` bytes overlap none of the [start, end) spans."""
    offset = 0
    for start, end in sorted(busy):
        if offset + size <= start:
            break
        offset = max(offset, align(end, alignment))
    return offset


def plan_arena(buffers: Sequence[Buffer], alignment: int = ALIGNMENT) -> ArenaPlan:
    placed: list[tuple[Buffer, int]] = []
    order = sorted(buffers, key=lambda b: (-b.size, b.first, b.name))  # deterministic ties
    for buf in order:
        busy = [
            (off, off + other.size)
            for other, off in placed
            if other.first <= buf.last and buf.first <= other.last
        ]
        placed.append((buf, lowest_free_offset(busy, buf.size, alignment)))
    offsets = {b.name: off for b, off in placed}
    size = align(max((off + b.size for b, off in placed), default=0), alignment)
    return ArenaPlan(offsets, size, tuple(buffers))


def overlapping(plan: ArenaPlan) -> list[tuple[str, str]]:
    """Pairs of buffers alive at the same time whose bytes overlap (must be empty)."""
    clashes = []
    items = list(plan.buffers)
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            alive = a.first <= b.last and b.first <= a.last
            oa, ob = plan.offsets[a.name], plan.offsets[b.name]
            if alive and oa < ob + b.size and ob < oa + a.size:
                clashes.append((a.name, b.name))
    return clashes
