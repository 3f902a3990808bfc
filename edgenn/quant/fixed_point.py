"""The TFLite / TFLM fixed-point arithmetic, bit for bit (facts in the TFLite int8 spec and gemmlowp).

`quantize_multiplier` runs once at compile time (float64, like TFLM's Prepare). The `@njit` helpers run
inside kernels; they work on int64 holding int32 values, so no intermediate overflows. Right shifts of
negative numbers are arithmetic here, as on every target edgenn supports.

Rounding modes: DOUBLE (TFLM and the TFLite reference default: a rounding high multiply, then a rounding
shift) and SINGLE (builds with TFLITE_SINGLE_ROUNDING: one rounding of the 64-bit product).
"""

from __future__ import annotations

import math

import numpy as np
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
        from edgenn.errors import QuantizationError

        raise QuantizationError(f"a rescaling multiplier must be positive and finite, got {real}")
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
    # x * 2^left in int32 arithmetic, as TFLite's kernels compute it (wrapping where it does not fit)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap32(x * (1 << left)), multiplier), right
    )


@njit(cache=True, inline="always")
def multiply_lanes(x: int, multiplier: int, shift: int, rounding: int) -> int:
    """multiply_by_quantized_multiplier without branches, for loops LLVM vectorizes: the int32
    operands sign-extended into one 64-bit product (PMULDQ). Double rounding's high multiply is
    floor((p + 2^30) / 2^31), which equals SRDHM's nudged truncation for every product of a
    non-negative multiplier (the saturating INT32_MIN case needs a negative one)."""
    if rounding == SINGLE:
        total = 31 - shift
        return (x * multiplier + (1 << (total - 1))) >> total
    left, right = max(shift, 0), max(-shift, 0)
    product = np.int64(np.int32(x << left)) * np.int64(np.int32(multiplier))
    high = (product + (1 << 30)) >> 31
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + ((high >> 63) & 1)
    return (high >> right) + np.int64((high & mask) > threshold)


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


# ---- gemmlowp fixed-point functions (TFLM's Softmax / Logistic / Tanh) ----
# A raw int32 with `integer_bits` integer bits holds real = raw / 2^(31 - integer_bits).
# Products of two such values are SRDHM of the raws (integer bits add up).

EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)  # exp(-2^k) in Q0.31, k = -2..4


@njit(cache=True, inline="always")
def wrap32(x: int) -> int:
    """Two's-complement int32 wrap-around, as C arithmetic on int32 gives."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@njit(cache=True, inline="always")
def saturating_rounding_multiply_by_pot(x: int, exponent: int) -> int:
    """x * 2^exponent: a saturating left shift, or a rounding right shift."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


@njit(cache=True, inline="always")
def rounding_half_sum(a: int, b: int) -> int:
    total = a + b
    sign = 1 if total >= 0 else -1
    half = total + sign
    return half // 2 if half >= 0 else -((-half) // 2)  # C division truncates


@njit(cache=True)
def exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    """exp(a) for a in [-1/4, 0), Q0.31: Taylor expansion around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = a + (1 << 28)  # a + 1/8
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        saturating_rounding_doubling_high_mul(x4_over_4 + x3, constant_1_over_3) + x2, -1
    )
    return wrap32(constant_term + saturating_rounding_doubling_high_mul(constant_term, x + poly))


@njit(cache=True)
def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """exp(a) for a <= 0 given with `integer_bits` integer bits; result Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, multiplier in EXP_BARREL:
        if integer_bits > exponent:
            if remainder & (1 << (fractional_bits + exponent)):
                result = saturating_rounding_doubling_high_mul(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    if a == 0:
        result = INT32_MAX
    return result


@njit(cache=True)
def newton_reciprocal_half_denominator(a: int) -> int:
    """x ~ 2 / (1 + a) in Q2.29 for a in [0, 1) given in Q0.31: three Newton-Raphson steps from the
    linear start 48/17 - 32/17 d, with d = (1 + a) / 2 (gemmlowp's shared core of the two below)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + saturating_rounding_doubling_high_mul(half_denominator, -1010580540)
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus = (1 << 29) - half_denominator_times_x
        x = x + saturating_rounding_multiply_by_pot(
            saturating_rounding_doubling_high_mul(x, one_minus), 2
        )
    return x


@njit(cache=True)
def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """1 / (1 + a), Q0.31 in and out."""
    return saturating_rounding_multiply_by_pot(newton_reciprocal_half_denominator(a), 1)


@njit(cache=True)
def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """(1 - a) / (1 + a) = 2 / (1 + a) - 1, Q0.31 in and out."""
    return saturating_rounding_multiply_by_pot(newton_reciprocal_half_denominator(a) - (1 << 29), 2)


@njit(cache=True)
def fixed_logistic(a: int, integer_bits: int) -> int:
    """1 / (1 + exp(-a)), Q0.31 out."""
    if a == 0:
        return 1 << 30
    magnitude = a if a > 0 else wrap32(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(wrap32(-magnitude), integer_bits)
    )
    return positive if a > 0 else INT32_MAX - positive


@njit(cache=True)
def fixed_tanh(a: int, integer_bits: int) -> int:
    """tanh(a), Q0.31 out, via (1 - exp(-2|a|)) / (1 + exp(-2|a|))."""
    if a == 0:
        return 0
    negative = a if a < 0 else wrap32(-a)
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(negative, integer_bits + 1))
    return wrap32(-t) if a < 0 else t


@njit(cache=True, inline="always")
def count_leading_zeros32(x: int) -> int:
    n = 0
    value = x & 0xFFFFFFFF
    if value == 0:
        return 32
    while value < (1 << 31):
        value <<= 1
        n += 1
    return n


def input_radius(integer_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """TFLite's CalculateInputRadius: the largest |input| before the fixed-point function saturates."""
    value = (
        ((1 << integer_bits) - 1) * float(1 << (total_bits - integer_bits)) / float(1 << left_shift)
    )
    return int(math.floor(value))


@njit(cache=True, inline="always")
def multiply_by_quantized_multiplier_64(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier for int64 accumulators (16x8 kernels): the Q31 multiplier
    rounded to Q15, then one rounding shift of the product."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    total_shift = 15 - shift
    return (x * reduced + (1 << (total_shift - 1))) >> total_shift
