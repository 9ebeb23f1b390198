"""WadRayMath / PercentageMath / MathUtils reproductions against hand-derived values."""

from __future__ import annotations

import pytest

from bot.adapters.aave_v3.math import (
    HALF_PERCENTAGE_FACTOR,
    HALF_RAY,
    HALF_WAD,
    PERCENTAGE_FACTOR,
    RAY,
    SECONDS_PER_YEAR,
    UINT256_MAX,
    WAD,
    WAD_RAY_RATIO,
    calculate_compounded_interest,
    calculate_linear_interest,
    percent_div,
    percent_mul,
    ray_div,
    ray_mul,
    ray_to_wad,
    wad_div,
    wad_mul,
    wad_to_ray,
)

S = SECONDS_PER_YEAR


def test_constants() -> None:
    assert (WAD, HALF_WAD) == (10**18, 5 * 10**17)
    assert (RAY, HALF_RAY, WAD_RAY_RATIO) == (10**27, 5 * 10**26, 10**9)
    assert (PERCENTAGE_FACTOR, HALF_PERCENTAGE_FACTOR) == (10_000, 5_000)
    assert S == 31_536_000


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (3 * WAD, 2 * WAD, 6 * WAD),
        (1, HALF_WAD, 1),  # 0.5 wei -> rounds up
        (1, HALF_WAD - 1, 0),  # just under 0.5 -> down
        (0, UINT256_MAX, 0),
    ],
)
def test_wad_mul(a: int, b: int, expected: int) -> None:
    assert wad_mul(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (RAY + RAY // 2, 2 * RAY, 3 * RAY),
        (1, HALF_RAY, 1),
        (1, HALF_RAY - 1, 0),
        # 1.05e27 * 3 wei = 3.15 wei -> 3
        (105 * 10**25, 3, 3),
        # 1.5e27 * 63 = 94.5 -> 95 (half up)
        (15 * 10**26, 63, 95),
    ],
)
def test_ray_mul(a: int, b: int, expected: int) -> None:
    assert ray_mul(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 2 * RAY, 1),  # (1e27 + 1e27) / 2e27 = 1: exactly .5 rounds up
        (1, 2 * RAY + 1, 0),  # (1e27 + 1e27) / (2e27+1) = 0.99.. -> 0
        # b/2 truncates before the add: (1e27 + 1) // 3
        (1, 3, 333_333_333_333_333_333_333_333_333),
        (94, 15 * 10**26, 63),  # 62.67 -> 63
    ],
)
def test_ray_div(a: int, b: int, expected: int) -> None:
    assert ray_div(a, b) == expected


def test_wad_div_half_up_boundary() -> None:
    assert wad_div(1, 2 * WAD) == 1
    assert wad_div(1, 2 * WAD + 1) == 0
    # HF example: 1650e8 / 1700e8 = 0.970588235294117647|06 -> truncated digit < 5
    assert wad_div(1650 * 10**8, 1700 * 10**8) == 970_588_235_294_117_647


def test_ray_to_wad_and_back() -> None:
    assert ray_to_wad(5 * 10**8) == 1  # remainder == 0.5e9 -> up
    assert ray_to_wad(5 * 10**8 - 1) == 0
    assert ray_to_wad(RAY + 5 * 10**8 - 1) == WAD
    assert wad_to_ray(1) == 10**9
    with pytest.raises(ValueError):
        wad_to_ray(UINT256_MAX // 10**9 + 1)


@pytest.mark.parametrize(
    ("value", "pct", "expected"),
    [
        (1, 5_000, 1),  # 0.5 -> 1
        (1, 4_999, 0),
        (10_001, 5_000, 5_001),  # 5000.5 -> 5001
        (1_000_001, 5_000, 500_001),
        (UINT256_MAX, 0, 0),  # pct == 0 short-circuits the overflow guard
    ],
)
def test_percent_mul(value: int, pct: int, expected: int) -> None:
    assert percent_mul(value, pct) == expected


@pytest.mark.parametrize(
    ("value", "pct", "expected"),
    [
        (1, 20_000, 1),  # (1e4 + 1e4) / 2e4 = 1
        (1, 20_001, 0),
        # (2000e6 * 1e4 + 5250) / 10500 = 1904761904.76.. -> 1904761905 after the +pct/2
        (2_000 * 10**6, 10_500, 1_904_761_905),
        (95, 10_500, 90),  # (950000 + 5250) // 10500
    ],
)
def test_percent_div(value: int, pct: int, expected: int) -> None:
    assert percent_div(value, pct) == expected


def test_overflow_and_zero_division_raise() -> None:
    b = 7
    edge = (UINT256_MAX - HALF_RAY) // b
    assert ray_mul(edge, b) == (edge * b + HALF_RAY) // RAY
    with pytest.raises(ValueError):
        ray_mul(edge + 1, b)
    with pytest.raises(ValueError):
        wad_mul(UINT256_MAX, 2)
    with pytest.raises(ValueError):
        ray_div(1, 0)
    with pytest.raises(ValueError):
        wad_div(1, 0)
    with pytest.raises(ValueError):
        percent_div(1, 0)
    with pytest.raises(ValueError):
        percent_mul(UINT256_MAX, 2)
    with pytest.raises(ValueError):
        ray_mul(-1, 1)


def test_linear_interest() -> None:
    # 5% APR for a year: RAY + 5e25 * S / S
    assert calculate_linear_interest(5 * 10**25, 100, 100 + S) == RAY + 5 * 10**25
    # one second: 5e25 // 31536000 = 1585489599188229325.6.. truncated
    assert calculate_linear_interest(5 * 10**25, 0, 1) == RAY + 1_585_489_599_188_229_325
    # truncation: rate*dt just below S adds nothing, exactly S adds one wei
    assert calculate_linear_interest(S - 1, 0, 1) == RAY
    assert calculate_linear_interest(S, 0, 1) == RAY + 1
    assert calculate_linear_interest(5 * 10**25, 7, 7) == RAY
    with pytest.raises(ValueError):
        calculate_linear_interest(1, 10, 9)  # block.timestamp - last underflows


# A per-second rate of exactly 1e18 ray keeps every power exact:
# rate = S * 1e18 -> rate*exp/S = exp*1e18; rayMul(rate, rate) = S^2 * 1e9 -> bp2 = 1e9;
# rayMul(bp2, rate) = S * 1e0 (1e9 * S*1e18 / 1e27) -> bp3 = 1.
PER_SECOND_RATE = S * 10**18


@pytest.mark.parametrize(
    ("exp", "expected"),
    [
        (0, RAY),
        (1, RAY + 10**18),  # exp-1 = 0 kills both higher terms
        (2, RAY + 2 * 10**18 + 10**9),  # second = 2*1*1e9/2; exp-2 -> 0 kills the third
        (3, RAY + 3 * 10**18 + 3 * 10**9 + 1),  # second = 3*2*1e9/2, third = 3*2*1*1/6
        (
            S,
            RAY + S * 10**18 + S * (S - 1) * 10**9 // 2 + S * (S - 1) * (S - 2) // 6,
        ),
    ],
)
def test_compounded_interest_exact_powers(exp: int, expected: int) -> None:
    assert calculate_compounded_interest(PER_SECOND_RATE, 1_000, 1_000 + exp) == expected


def test_compounded_interest_truncates_each_power() -> None:
    # 5% APR for a year. bp2 = rayMul(5e25, 5e25) // S^2 = 2.5e24 // S^2 = 2513777269 and
    # bp3 = rayMul(bp2, 5e25) // S = 125688863 // S = 3 (3.98 truncated: the cubic term
    # loses ~25%), so the result is below the exact three-term binomial.
    bp2, bp3 = 2_513_777_269, 3
    expected = RAY + 5 * 10**25 + S * (S - 1) * bp2 // 2 + S * (S - 1) * (S - 2) * bp3 // 6
    assert expected == 1_051_265_681_539_063_650_421_944_000
    assert calculate_compounded_interest(5 * 10**25, 0, S) == expected


def test_compounded_interest_100_percent_year() -> None:
    # bp2 = 1e27 // S^2 = 1005510907653, bp3 = bp2 // S = 31884
    bp2, bp3 = 1_005_510_907_653, 31_884
    expected = RAY + RAY + S * (S - 1) * bp2 // 2 + S * (S - 1) * (S - 2) * bp3 // 6
    assert (
        calculate_compounded_interest(RAY, 0, S)
        == expected
        == 2_666_663_803_286_306_996_604_104_000
    )
    with pytest.raises(ValueError):
        calculate_compounded_interest(RAY, 5, 4)


def test_compounded_interest_rounds_powers_half_up() -> None:
    # Found by bisection: bp2 = rayMul(r, r) // S^2 = 2519842093 and rayMul(bp2, r) is
    # 126143999.5.. -> 126144000 = 4*S, so bp3 = 4 (a floor would give 3).
    # exp = 3: RAY + 3r // S + 3*2*bp2 // 2 + 3*2*1*bp3 // 6
    r = 50_060_279_511_332_061_869_799_078
    bp2, bp3 = 2_519_842_093, 4
    expected = RAY + 3 * r // S + 3 * bp2 + bp3
    assert expected == 1_000_000_004_762_203_157_419_882_244
    assert calculate_compounded_interest(r, 0, 3) == expected
