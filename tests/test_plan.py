"""The arena planner: exact offsets on hand-worked cases, and no two live buffers sharing a byte on
random ones and on every bundled model."""

from __future__ import annotations

import pytest
from conftest import MODELS
from hypothesis import given
from hypothesis import strategies as st

from edgenn.runtime.plan import ALIGNMENT, Buffer, overlapping, plan_arena


def test_greedy_by_size_places_each_buffer_at_the_lowest_free_aligned_offset() -> None:
    """Worked by hand (16-byte alignment). Largest first: a (100 B, steps 0-1) at 0; c (100 B, 2-3)
    is never alive with a, so also 0; b (50 B, 1-2) meets both, so after them at align(100) = 112;
    d (30 B, 0-3) meets all three: 0-100 and 112-162 are taken, so align(162) = 176. Size:
    align(176 + 30) = 208."""
    buffers = [Buffer("a", 100, 0, 1), Buffer("b", 50, 1, 2), Buffer("c", 100, 2, 3),
               Buffer("d", 30, 0, 3)]  # fmt: skip
    plan = plan_arena(buffers)
    assert plan.offsets == {"a": 0, "c": 0, "b": 112, "d": 176}
    assert plan.size == 208


def test_a_small_buffer_fills_a_gap_below_a_larger_one() -> None:
    """x (64 B, 0-2) at 0; y (64 B, 3-4) also at 0 (x is dead by then); z (16 B, 0-4) alive with
    both: after them, at 64. w (16 B, 2-3) meets x, y and z: 0-64 and 64-80 are taken, so 80."""
    buffers = [Buffer("x", 64, 0, 2), Buffer("y", 64, 3, 4), Buffer("z", 16, 0, 4),
               Buffer("w", 16, 2, 3)]  # fmt: skip
    plan = plan_arena(buffers)
    assert plan.offsets == {"x": 0, "y": 0, "z": 64, "w": 80}
    assert plan.size == 96


def test_an_output_never_shares_bytes_with_an_input_of_the_same_step() -> None:
    """Lifetimes are inclusive: a buffer last read at step 1 and one first written at step 1 overlap
    in time, so they get different bytes."""
    plan = plan_arena([Buffer("in", 32, -1, 1), Buffer("out", 32, 1, 2)])
    assert plan.offsets == {"in": 0, "out": 32}


@st.composite
def buffer_sets(draw: st.DrawFn) -> list[Buffer]:
    count = draw(st.integers(1, 24))
    buffers = []
    for i in range(count):
        first = draw(st.integers(-1, 12))
        last = draw(st.integers(first, 13))
        buffers.append(Buffer(f"t{i}", draw(st.integers(1, 5000)), first, last))
    return buffers


@given(buffer_sets())
def test_no_two_live_buffers_overlap(buffers: list[Buffer]) -> None:
    plan = plan_arena(buffers)
    assert overlapping(plan) == []
    assert all(offset % ALIGNMENT == 0 for offset in plan.offsets.values())
    assert plan.size >= max(plan.offsets[b.name] + b.size for b in buffers)
    assert plan.size % ALIGNMENT == 0
    # never worse than giving every buffer its own bytes
    assert plan.size <= sum(-(-b.size // ALIGNMENT) * ALIGNMENT for b in buffers)


@pytest.mark.parametrize("model", ["digits_mlp", "digits_cnn", "mnist1d_cnn"])
def test_bundled_models_plan_without_overlap(model: str) -> None:
    from edgenn.compile import convert
    from edgenn.runtime.program import build_program

    plan = build_program(convert(MODELS / f"{model}.onnx").fixed_graph).plan
    assert overlapping(plan) == []
    assert plan.size < sum(b.size for b in plan.buffers)  # lifetimes let buffers share bytes
