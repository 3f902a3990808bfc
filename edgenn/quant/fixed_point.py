"""The TFLite / TFLM fixed-point arithmetic, bit for bit (facts in the TFLite int8 spec and gemmlowp).

`quantize_multiplier` runs once at compile time (float64, like TFLM's Prepare). The `@njit` helpers run
inside kernels; they work on int64 holding int32 values, so no intermediate overflows. Right shifts of
negative numbers are arithmetic here, as on every target edgenn supports.

Rounding modes: DOUBLE (TFLM and the TFLite reference default: a rounding high multiply, then a rounding
shift) and SINGLE (builds with TFLITE_SINGLE_ROUNDING: one rounding of the 64-bit product).
"""

from __future__ import annotations

import math

from numba import njit

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
DOUBLE, SINGLE = 0, 1
ROUNDING_MODES = {"double": DOUBLE, "single": SINGLE}


def round_half_away(x: float) -> int:
    """C's round(): ties away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """real ~= q * 2^(shift - 31) with q an int32 in [2^30, 2^31): TFLite's QuantizeMultiplier."""
    if real == 0.0:
        return 0, 0
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"multiplier must be positive and finite, got {real}")
    q, shift = math.frexp(real)  # real = q * 2^shift, q in [0.5, 1)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


@njit(cache=True, inline="always")
def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp SRDHM: round(a * b / 2^31) with ties away from zero; the one overflow case saturates."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    total = ab + nudge
    # C integer division truncates toward zero
    return total // (1 << 31) if total >= 0 else -((-total) // (1 << 31))


@njit(cache=True, inline="always")
def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """x / 2^exponent rounded to nearest, ties away from zero (gemmlowp RoundingDivideByPOT)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int, rounding: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), rounded."""
    if rounding == SINGLE:
        total_shift = 31 - shift
        return (x * multiplier + (1 << (total_shift - 1))) >> total_shift
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x * (1 << left), multiplier), right
    )


@njit(cache=True, inline="always")
def clamp(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """zero_point + round(value / scale) with float32 division (TFLite's activation-range helper)."""
    import numpy as np

    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_bounds(
    clip_min: float,
    clip_max: float,
    scale: float,
    zero_point: int,
    qmin: int = -128,
    qmax: int = 127,
) -> tuple[int, int]:
    """The integer clamp of a fused activation (clip to [clip_min, clip_max]) on an output tensor."""
    lo = qmin if clip_min == -math.inf else max(qmin, quantize_value(clip_min, scale, zero_point))
    hi = qmax if clip_max == math.inf else min(qmax, quantize_value(clip_max, scale, zero_point))
    return lo, hi


def real_multiplier(*factors: float, divisor: float = 1.0) -> tuple[int, int]:
    """QuantizeMultiplier of prod(factors) / divisor, each float32 scale widened to float64 first."""
    value = 1.0
    for f in factors:
        value *= float(f)
    return quantize_multiplier(value / float(divisor))
