"""Morpho Blue's MathLib / SharesMathLib / accrual / health / liquidation reproductions:
hand-derived vectors, rounding properties, and the bounds the contract's comments promise.

The on-chain equality to the wei is proven in tests/integration/test_morpho_parity.py.
"""

from __future__ import annotations

import random
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from eth_abi import encode
from eth_utils import keccak

from bot.adapters.morpho_blue.math import (
    MAX_LIQUIDATION_INCENTIVE_FACTOR,
    ORACLE_PRICE_SCALE,
    SECONDS_PER_YEAR,
    UINT256_MAX,
    VIRTUAL_ASSETS,
    VIRTUAL_SHARES,
    WAD,
    MorphoRevert,
    accrue_interest,
    borrowed_assets,
    irm_mock_rate,
    is_healthy,
    liquidate,
    liquidation_incentive_factor,
    max_borrow,
    mul_div_down,
    mul_div_up,
    to_assets_down,
    to_assets_up,
    to_shares_down,
    to_shares_up,
    w_div_down,
    w_div_up,
    w_mul_down,
    w_taylor_compounded,
)
from bot.adapters.morpho_blue.types import Market, MarketParams, Position


def test_constants() -> None:
    assert (VIRTUAL_SHARES, VIRTUAL_ASSETS) == (10**6, 1)
    assert MAX_LIQUIDATION_INCENTIVE_FACTOR == 1_150_000_000_000_000_000
    assert ORACLE_PRICE_SCALE == 10**36
    assert SECONDS_PER_YEAR == 31_536_000


@pytest.mark.parametrize(
    ("x", "y", "d", "down", "up"),
    [
        (10, 3, 4, 7, 8),  # 30/4 = 7.5
        (12, 3, 4, 9, 9),  # exact: both agree
        (0, 5, 7, 0, 0),
        (1, 1, 10**6, 0, 1),  # the smallest non-zero amount rounds up to one unit
        (UINT256_MAX, 1, 1, UINT256_MAX, UINT256_MAX),
    ],
)
def test_mul_div_rounding(x: int, y: int, d: int, down: int, up: int) -> None:
    assert mul_div_down(x, y, d) == down
    assert mul_div_up(x, y, d) == up


def test_mul_div_reverts_like_the_evm() -> None:
    with pytest.raises(MorphoRevert):
        mul_div_down(2**128, 2**128, 1)  # x * y overflows
    with pytest.raises(MorphoRevert):
        mul_div_up(UINT256_MAX, 1, 2)  # x * y + (d - 1) overflows
    with pytest.raises(MorphoRevert):
        mul_div_down(1, 1, 0)
    with pytest.raises(MorphoRevert):
        mul_div_up(1, 1, 0)  # d - 1 underflows


def test_wad_helpers() -> None:
    assert w_mul_down(3 * WAD // 2, 2 * WAD // 3) == WAD - 1  # 2/3 is truncated first
    assert w_div_down(WAD, 3 * WAD) == 333_333_333_333_333_333
    assert w_div_up(WAD, 3 * WAD) == 333_333_333_333_333_334


def test_shares_of_an_empty_market_use_the_virtual_offsets() -> None:
    # 1 asset = 1e6 shares before anything is supplied.
    assert to_shares_down(100, 0, 0) == 100 * 10**6
    assert to_assets_down(10**6, 0, 0) == 1
    assert to_assets_down(10**6 - 1, 0, 0) == 0
    assert to_assets_up(1, 0, 0) == 1


def test_shares_assets_round_trips_favour_the_protocol() -> None:
    rng = random.Random(7)
    for _ in range(3_000):
        total_assets = rng.randrange(0, 10**30)
        # Share prices from far below to far above the initial 1e-6.
        total_shares = total_assets * 10 ** rng.randrange(0, 12) // rng.randrange(1, 10**6)
        a = rng.randrange(0, 10**28)
        s_down = to_shares_down(a, total_assets, total_shares)
        s_up = to_shares_up(a, total_assets, total_shares)
        assert s_down <= s_up <= s_down + 1
        # Shares bought with `a` (down) are never worth more than `a`; shares owed for `a`
        # (up) are never worth less.
        assert to_assets_down(s_down, total_assets, total_shares) <= a
        assert to_assets_up(s_up, total_assets, total_shares) >= a
        # Exact: Fraction gives the real value of the share price.
        price = Fraction(total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)
        assert s_down == int(a / price)
        assert to_assets_up(s_down, total_assets, total_shares) == -(-s_down * price // 1)


def _exact_expm1_wad(x: int, n: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80
        y = Decimal(x) * n / Decimal(WAD)
        return (y.exp() - 1) * WAD


@pytest.mark.parametrize("apr_pct", [0, 1, 5, 20, 100, 300])
@pytest.mark.parametrize("elapsed", [1, 12, 3_600, 86_400, 30 * 86_400, SECONDS_PER_YEAR])
def test_taylor_compounding_is_a_tight_lower_bound_of_exp(apr_pct: int, elapsed: int) -> None:
    rate = apr_pct * WAD // 100 // SECONDS_PER_YEAR
    got = w_taylor_compounded(rate, elapsed)
    exact = _exact_expm1_wad(rate, elapsed)
    y = Decimal(rate * elapsed) / WAD
    # Dropped terms are y^4/24 + ... <= y^4/24 * e^y; two truncations cost < 2 wei.
    assert Decimal(got) <= exact
    assert exact - Decimal(got) <= y**4 / 24 * y.exp() * WAD + 2
    first = rate * elapsed
    assert got == first + first * first // (2 * WAD) + (first * first // (2 * WAD)) * first // (
        3 * WAD
    )


@pytest.mark.parametrize(
    ("lltv", "expected"),
    [
        # min(1.15, 1 / (1 - 0.3 * (1 - lltv))): 1/0.931, 1/0.958, 1/0.9745, 1/0.9835,
        # truncated to 18 decimals (0.3 * (1 - lltv) is exact in WAD for these LLTVs).
        (770_000_000_000_000_000, 1_074_113_856_068_743_286),
        (860_000_000_000_000_000, 1_043_841_336_116_910_229),
        (915_000_000_000_000_000, 1_026_167_265_264_238_070),
        (945_000_000_000_000_000, 1_016_776_817_488_561_260),
        (0, MAX_LIQUIDATION_INCENTIVE_FACTOR),  # 1/0.7 = 1.43 is capped
        (500_000_000_000_000_000, MAX_LIQUIDATION_INCENTIVE_FACTOR),  # 1/0.85 = 1.176
    ],
)
def test_liquidation_incentive_factor(lltv: int, expected: int) -> None:
    assert liquidation_incentive_factor(lltv) == expected
    exact = min(Fraction(115, 100), 1 / (1 - Fraction(3, 10) * (1 - Fraction(lltv, WAD))))
    assert expected == int(exact * WAD)


def test_market_id_is_keccak_of_the_five_words() -> None:
    p = MarketParams("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20, "0x" + "44" * 20, 7)
    words = b"".join(
        bytes(12) + bytes.fromhex(a[2:])
        for a in (p.loan_token, p.collateral_token, p.oracle, p.irm)
    ) + (7).to_bytes(32, "big")
    assert p.id == "0x" + keccak(words).hex()
    assert (
        p.id
        == "0x"
        + keccak(encode(["(address,address,address,address,uint256)"], [p.as_tuple()])).hex()
    )


def test_irm_mock_rate_is_utilization_per_year() -> None:
    assert irm_mock_rate(Market()) == 0
    m = Market(total_supply_assets=1_000 * 10**6, total_borrow_assets=500 * 10**6)
    assert irm_mock_rate(m) == (WAD // 2) // SECONDS_PER_YEAR == 15_854_895_991


def test_accrual_of_a_year_with_a_fee() -> None:
    m = Market(
        total_supply_assets=1_000 * 10**6,
        total_supply_shares=1_000 * 10**12,
        total_borrow_assets=500 * 10**6,
        total_borrow_shares=500 * 10**12,
        last_update=1_000,
        fee=WAD // 10,
    )
    acc = accrue_interest(m, 1_000 + SECONDS_PER_YEAR, irm_mock_rate)
    rate = 15_854_895_991
    first = rate * SECONDS_PER_YEAR  # 0.499999999972... e18: 50% APR, truncated per second
    second = first * first // (2 * WAD)
    third = second * first // (3 * WAD)
    interest = 500 * 10**6 * (first + second + third) // WAD
    # 500 × (0.5 + 0.5²/2 + 0.5³/6) = 500 × 0.6458333 (e^0.5 - 1 would be 0.6487).
    assert interest == 322_916_666
    fee_amount = interest // 10
    fee_shares = (
        fee_amount * (1_000 * 10**12 + 10**6) // (1_000 * 10**6 + interest - fee_amount + 1)
    )
    assert acc.borrow_rate == rate
    assert acc.interest == interest
    assert acc.fee_shares == fee_shares
    assert acc.market == Market(
        1_000 * 10**6 + interest,
        1_000 * 10**12 + fee_shares,
        500 * 10**6 + interest,
        500 * 10**12,
        1_000 + SECONDS_PER_YEAR,
        WAD // 10,
    )
    # The fee recipient's shares are worth the fee (to within the share rounding).
    value = to_assets_down(
        fee_shares, acc.market.total_supply_assets, acc.market.total_supply_shares
    )
    assert fee_amount - 1 <= value <= fee_amount


def test_accrual_without_time_or_irm() -> None:
    m = Market(10**9, 10**15, 10**8, 10**14, 500, 0)
    assert accrue_interest(m, 500, irm_mock_rate).market == m
    moved = accrue_interest(m, 900, None)
    assert moved.market == Market(10**9, 10**15, 10**8, 10**14, 900, 0)
    assert moved.interest == 0
    with pytest.raises(MorphoRevert):
        accrue_interest(m, 499, irm_mock_rate)


# A WETH/USDC-like market: price of 1 wei in USDC units × 1e36 at $2,000.
PRICE = 2_000 * 10**6 * ORACLE_PRICE_SCALE // 10**18
LLTV = 860_000_000_000_000_000
MARKET = Market(10**13, 10**19, 5 * 10**12, 5 * 10**18 - 12_345, 0, 0)


def _borrower(debt_assets: int, collateral: int) -> Position:
    shares = to_shares_up(debt_assets, MARKET.total_borrow_assets, MARKET.total_borrow_shares)
    return Position(borrow_shares=shares, collateral=collateral)


def test_health_at_the_boundary() -> None:
    collateral = 10**18  # 1 WETH: $2,000, borrowable $1,720
    limit = max_borrow(Position(collateral=collateral), PRICE, LLTV)
    assert limit == 1_720 * 10**6
    # ceil(s * A / S) <= limit  <=>  s <= limit * S / A: the largest healthy share count
    # is the limit's shares rounded down, and one share more is not healthy.
    shares = to_shares_down(limit, MARKET.total_borrow_assets, MARKET.total_borrow_shares)
    ok = Position(borrow_shares=shares, collateral=collateral)
    assert borrowed_assets(ok, MARKET) <= limit
    assert is_healthy(ok, MARKET, PRICE, LLTV)
    bad = Position(borrow_shares=shares + 1, collateral=collateral)
    assert borrowed_assets(bad, MARKET) > limit
    assert not is_healthy(bad, MARKET, PRICE, LLTV)
    assert is_healthy(Position(collateral=0), MARKET, PRICE, LLTV)  # no debt


def test_liquidation_by_seized_assets_then_by_shares() -> None:
    pos = _borrower(1_700 * 10**6, 10**18)
    price = PRICE * 9 // 10  # -10%: $1,800 of collateral, $1,548 borrowable
    assert not is_healthy(pos, MARKET, price, LLTV)
    with pytest.raises(MorphoRevert):
        liquidate(MARKET, pos, PRICE, LLTV, seized_assets=10**17)  # healthy at the old price
    with pytest.raises(MorphoRevert):
        liquidate(MARKET, pos, price, LLTV, seized_assets=1, repaid_shares=1)
    lif = liquidation_incentive_factor(LLTV)

    seized = 3 * 10**17
    a = liquidate(MARKET, pos, price, LLTV, seized_assets=seized)
    quoted = -(-seized * price // ORACLE_PRICE_SCALE)  # $540, rounded up
    assert quoted == 540 * 10**6
    repaid_assets_wanted = -(-quoted * WAD // lif)
    assert a.repaid_shares == to_shares_up(
        repaid_assets_wanted, MARKET.total_borrow_assets, MARKET.total_borrow_shares
    )
    assert a.repaid_assets == to_assets_up(
        a.repaid_shares, MARKET.total_borrow_assets, MARKET.total_borrow_shares
    )
    assert repaid_assets_wanted <= a.repaid_assets <= repaid_assets_wanted + 1
    assert (a.seized_assets, a.bad_debt_assets, a.bad_debt_shares) == (seized, 0, 0)
    assert a.position == Position(0, pos.borrow_shares - a.repaid_shares, 10**18 - seized)
    assert a.market.total_borrow_assets == MARKET.total_borrow_assets - a.repaid_assets
    assert a.market.total_borrow_shares == MARKET.total_borrow_shares - a.repaid_shares
    assert a.market.total_supply_assets == MARKET.total_supply_assets

    # Repaying those (rounded-up) shares directly seizes at least as much, and at most
    # what two more loan units buy: both directions round in the protocol's favour.
    b = liquidate(MARKET, pos, price, LLTV, repaid_shares=a.repaid_shares)
    assert seized <= b.seized_assets <= seized + 2 * lif * ORACLE_PRICE_SCALE // (WAD * price)
    assert b.repaid_assets == a.repaid_assets
    expected = (
        to_assets_down(a.repaid_shares, MARKET.total_borrow_assets, MARKET.total_borrow_shares)
        * lif
        // WAD
        * ORACLE_PRICE_SCALE
        // price
    )
    assert b.seized_assets == expected


def test_liquidation_that_takes_all_collateral_realizes_bad_debt() -> None:
    pos = _borrower(1_700 * 10**6, 10**18)
    price = PRICE // 2  # $1,000 of collateral against $1,700 of debt
    r = liquidate(MARKET, pos, price, LLTV, seized_assets=pos.collateral)
    assert r.position == Position(0, 0, 0)
    assert r.bad_debt_shares == pos.borrow_shares - r.repaid_shares > 0
    tba = MARKET.total_borrow_assets - r.repaid_assets
    tbs = MARKET.total_borrow_shares - r.repaid_shares
    assert r.bad_debt_assets == to_assets_up(r.bad_debt_shares, tba, tbs)
    # Debt that can no longer be repaid is taken off the suppliers.
    assert r.market.total_supply_assets == MARKET.total_supply_assets - r.bad_debt_assets
    assert r.market.total_borrow_assets == tba - r.bad_debt_assets
    assert r.market.total_borrow_shares == tbs - r.bad_debt_shares
    # ~$1,000 seized repays ~$1,000/LIF; the rest of the $1,700 is bad debt.
    assert r.repaid_assets + r.bad_debt_assets >= 1_700 * 10**6
    assert r.repaid_assets == pytest.approx(
        1_000 * 10**6 * WAD / liquidation_incentive_factor(LLTV), abs=2
    )


def test_liquidation_beyond_the_debt_reverts() -> None:
    pos = _borrower(1_700 * 10**6, 10**18)
    with pytest.raises(MorphoRevert):
        liquidate(MARKET, pos, PRICE // 2, LLTV, repaid_shares=pos.borrow_shares + 1)
