"""Aave V3 fixed-point math, reproduced bit for bit on Python ints.

Sources: ``protocol/libraries/math/WadRayMath.sol``, ``PercentageMath.sol`` and
``MathUtils.sol`` of core-v3 1.19.3. Every function takes and returns uint256 values;
where the EVM would revert (overflow, underflow, division by zero) a ``ValueError`` is
raised instead, so an off-chain result never silently differs from the chain's.
"""

from __future__ import annotations

UINT256_MAX = 2**256 - 1

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
WAD_RAY_RATIO = 10**9

PERCENTAGE_FACTOR = 10**4
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2

SECONDS_PER_YEAR = 365 * 24 * 60 * 60


def checked(value: int) -> int:
    """Return ``value`` if it fits a uint256, mirroring Solidity >=0.8 checked arithmetic."""
    if value < 0 or value > UINT256_MAX:
        raise ValueError(f"uint256 overflow/underflow: {value}")
    return value


def checked_mul(*factors: int) -> int:
    """Left-to-right product with every intermediate checked, as Solidity evaluates ``a*b*c``."""
    product = 1
    for factor in factors:
        product = checked(product * checked(factor))
    return product


def _require_uint(*values: int) -> None:
    for value in values:
        checked(value)


def wad_mul(a: int, b: int) -> int:
    """``WadRayMath.wadMul``: ``(a*b + HALF_WAD) / WAD``, half up."""
    _require_uint(a, b)
    # The assembly guard rejects exactly the inputs whose a*b + HALF_WAD overflows.
    if b != 0 and a > (UINT256_MAX - HALF_WAD) // b:
        raise ValueError("wadMul overflow")
    return (a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """``WadRayMath.wadDiv``: ``(a*WAD + b/2) / b``, half up (b/2 truncates first)."""
    _require_uint(a, b)
    if b == 0 or a > (UINT256_MAX - b // 2) // WAD:
        raise ValueError("wadDiv overflow or division by zero")
    return (a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    """``WadRayMath.rayMul``: ``(a*b + HALF_RAY) / RAY``, half up."""
    _require_uint(a, b)
    if b != 0 and a > (UINT256_MAX - HALF_RAY) // b:
        raise ValueError("rayMul overflow")
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    """``WadRayMath.rayDiv``: ``(a*RAY + b/2) / b``, half up (b/2 truncates first)."""
    _require_uint(a, b)
    if b == 0 or a > (UINT256_MAX - b // 2) // RAY:
        raise ValueError("rayDiv overflow or division by zero")
    return (a * RAY + b // 2) // b


def ray_to_wad(a: int) -> int:
    """``WadRayMath.rayToWad``: drops 9 decimals, rounding a remainder >= 0.5e9 up."""
    _require_uint(a)
    quotient, remainder = divmod(a, WAD_RAY_RATIO)
    return quotient + 1 if remainder >= WAD_RAY_RATIO // 2 else quotient


def wad_to_ray(a: int) -> int:
    """``WadRayMath.wadToRay``: ``a * 1e9``, reverting on overflow."""
    return checked(checked(a) * WAD_RAY_RATIO)


def percent_mul(value: int, percentage: int) -> int:
    """``PercentageMath.percentMul``: ``(value*pct + 0.5e4) / 1e4``, half up."""
    _require_uint(value, percentage)
    if percentage != 0 and value > (UINT256_MAX - HALF_PERCENTAGE_FACTOR) // percentage:
        raise ValueError("percentMul overflow")
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """``PercentageMath.percentDiv``: ``(value*1e4 + pct/2) / pct``, half up."""
    _require_uint(value, percentage)
    if percentage == 0 or value > (UINT256_MAX - percentage // 2) // PERCENTAGE_FACTOR:
        raise ValueError("percentDiv overflow or division by zero")
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage


def calculate_linear_interest(rate: int, last_ts: int, current_ts: int) -> int:
    """``MathUtils.calculateLinearInterest`` with ``block.timestamp = current_ts``.

    ``RAY + rate * dt / SECONDS_PER_YEAR``: the product is checked, the division truncates.
    """
    _require_uint(rate, last_ts, current_ts)
    elapsed = checked(current_ts - last_ts)
    return checked(RAY + checked_mul(rate, elapsed) // SECONDS_PER_YEAR)


def calculate_compounded_interest(rate: int, last_ts: int, current_ts: int) -> int:
    """``MathUtils.calculateCompoundedInterest`` (3-term binomial expansion of (1+r/T)^n).

    Each power of the per-second rate is truncated on its own before being multiplied by
    the exponent terms, so the result is *not* RAY + exact binomial: the truncation order
    below is the contract's.
    """
    _require_uint(rate, last_ts, current_ts)
    exp = checked(current_ts - last_ts)
    if exp == 0:
        return RAY

    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0

    # Solidity truncates here (unchecked): rate^2 is rayMul'd, then divided by T^2 as one step.
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR

    second_term = checked_mul(exp, exp_minus_one, base_power_two) // 2
    third_term = checked_mul(exp, exp_minus_one, exp_minus_two, base_power_three) // 6

    return checked(RAY + checked_mul(rate, exp) // SECONDS_PER_YEAR + second_term + third_term)
