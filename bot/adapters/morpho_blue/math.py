"""Morpho Blue 1.0.0's arithmetic, reproduced bit for bit on Python ints.

Sources: ``libraries/{MathLib,SharesMathLib,UtilsLib,ConstantsLib}.sol``, ``Morpho.sol``
(``_accrueInterest``, ``_isHealthy``, ``liquidate``) and ``mocks/IrmMock.sol``. Where the
EVM would revert (checked overflow or underflow, a division by zero, a failed ``require``)
a ``MorphoRevert`` is raised instead, so an off-chain result never silently differs from
the chain's. Inputs are assumed to be uint256 (uint128 where the struct field is).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.adapters.morpho_blue.types import Market, Position

UINT128_MAX = 2**128 - 1
UINT256_MAX = 2**256 - 1

WAD = 10**18
ORACLE_PRICE_SCALE = 10**36
MAX_FEE = WAD // 4
LIQUIDATION_CURSOR = 3 * WAD // 10
MAX_LIQUIDATION_INCENTIVE_FACTOR = 115 * WAD // 100
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
SECONDS_PER_YEAR = 365 * 24 * 60 * 60  # IrmMock's ``365 days``


class MorphoRevert(ValueError):
    """The contract would revert here (the message says why)."""


def _u256(x: int) -> int:
    if not 0 <= x <= UINT256_MAX:
        raise MorphoRevert(f"uint256 overflow/underflow: {x}")
    return x


def to_uint128(x: int) -> int:
    """``UtilsLib.toUint128`` (and a checked uint128 ``+=``/``-=`` result)."""
    if not 0 <= x <= UINT128_MAX:
        raise MorphoRevert(f"max uint128 exceeded / underflow: {x}")
    return x


# -- MathLib ---------------------------------------------------------------------------


def mul_div_down(x: int, y: int, d: int) -> int:
    """``(x * y) / d``."""
    if d == 0:
        raise MorphoRevert("division by zero")
    return _u256(x * y) // d


def mul_div_up(x: int, y: int, d: int) -> int:
    """``(x * y + (d - 1)) / d``: d = 0 underflows in ``d - 1`` before dividing."""
    if d == 0:
        raise MorphoRevert("underflow in d - 1")
    return _u256(_u256(x * y) + (d - 1)) // d


def w_mul_down(x: int, y: int) -> int:
    return mul_div_down(x, y, WAD)


def w_div_down(x: int, y: int) -> int:
    return mul_div_down(x, WAD, y)


def w_div_up(x: int, y: int) -> int:
    return mul_div_up(x, WAD, y)


def w_taylor_compounded(x: int, n: int) -> int:
    """``e^(x*n) - 1`` by its first three Taylor terms, each truncated as the contract does."""
    first = _u256(x * n)
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return _u256(first + second + third)


# -- SharesMathLib: virtual shares and assets make the first deposit's price 1e-6 ------


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_shares_up(assets: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def zero_floor_sub(x: int, y: int) -> int:
    """``UtilsLib.zeroFloorSub``: ``max(x - y, 0)``."""
    return x - y if x > y else 0


# -- interest ---------------------------------------------------------------------------

RateModel = Callable[[Market], int]  # the IRM's borrowRate(marketParams, market), per second


def irm_mock_rate(market: Market) -> int:
    """``IrmMock.borrowRateView``: utilization (WAD) per year, i.e. x% used = x% APR."""
    if market.total_supply_assets == 0:
        return 0
    utilization = w_div_down(market.total_borrow_assets, market.total_supply_assets)
    return utilization // SECONDS_PER_YEAR


@dataclass(frozen=True, slots=True)
class Accrual:
    market: Market  # after accrual, with last_update = the timestamp
    borrow_rate: int
    interest: int
    fee_shares: int  # minted to the fee recipient's supply shares


def accrue_interest(market: Market, timestamp: int, rate: RateModel | None) -> Accrual:
    """``Morpho._accrueInterest`` at ``block.timestamp = timestamp``.

    ``rate`` is the market's IRM (``None`` for ``irm == address(0)``: no interest, only
    ``lastUpdate`` moves). It is called with the market before accrual, as the contract
    calls the IRM.
    """
    elapsed = timestamp - market.last_update
    if elapsed < 0:
        raise MorphoRevert("timestamp before the market's last update")
    if elapsed == 0:
        return Accrual(market, 0, 0, 0)
    if rate is None:
        return Accrual(replace(market, last_update=timestamp), 0, 0, 0)
    borrow_rate = rate(market)
    interest = w_mul_down(market.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed))
    to_uint128(interest)
    borrow_assets = to_uint128(market.total_borrow_assets + interest)
    supply_assets = to_uint128(market.total_supply_assets + interest)
    supply_shares = market.total_supply_shares
    fee_shares = 0
    if market.fee != 0:
        fee_amount = w_mul_down(interest, market.fee)
        # The supply already includes the fee: it is left out of the share price.
        fee_shares = to_shares_down(fee_amount, supply_assets - fee_amount, supply_shares)
        supply_shares = to_uint128(supply_shares + to_uint128(fee_shares))
    after = Market(
        supply_assets,
        supply_shares,
        borrow_assets,
        market.total_borrow_shares,
        timestamp,
        market.fee,
    )
    return Accrual(after, borrow_rate, interest, fee_shares)


# -- health and liquidation -------------------------------------------------------------


def borrowed_assets(position: Position, market: Market) -> int:
    """The debt as the health check counts it (rounded up)."""
    return to_assets_up(
        position.borrow_shares, market.total_borrow_assets, market.total_borrow_shares
    )


def max_borrow(position: Position, price: int, lltv: int) -> int:
    """The most the collateral allows to borrow, in loan units (rounded down)."""
    return w_mul_down(mul_div_down(position.collateral, price, ORACLE_PRICE_SCALE), lltv)


def is_healthy(position: Position, market: Market, price: int, lltv: int) -> bool:
    """``Morpho._isHealthy`` with the given collateral price, on an accrued ``market``."""
    if position.borrow_shares == 0:
        return True
    return max_borrow(position, price, lltv) >= borrowed_assets(position, market)


def liquidation_incentive_factor(lltv: int) -> int:
    """``min(1.15, 1 / (1 - 0.3 * (1 - lltv)))`` in WAD, rounded as ``liquidate`` does."""
    return min(
        MAX_LIQUIDATION_INCENTIVE_FACTOR,
        w_div_down(WAD, WAD - w_mul_down(LIQUIDATION_CURSOR, WAD - lltv)),
    )


@dataclass(frozen=True, slots=True)
class Liquidation:
    """What ``liquidate`` does, as its ``Liquidate`` event reports it, and the state after."""

    seized_assets: int
    repaid_shares: int
    repaid_assets: int
    bad_debt_assets: int
    bad_debt_shares: int
    market: Market
    position: Position


def liquidate(
    market: Market,
    position: Position,
    price: int,
    lltv: int,
    *,
    seized_assets: int = 0,
    repaid_shares: int = 0,
) -> Liquidation:
    """``Morpho.liquidate`` on an already accrued ``market`` (the contract accrues first).

    Exactly one of ``seized_assets`` (collateral to take) and ``repaid_shares`` (debt
    shares to repay) is non-zero. When the borrower's collateral reaches zero, the rest of
    the debt is bad debt: written off the borrow and, pro rata, the suppliers' assets.
    """
    if (seized_assets == 0) == (repaid_shares == 0):
        raise MorphoRevert("inconsistent input")
    if is_healthy(position, market, price, lltv):
        raise MorphoRevert("position is healthy")
    lif = liquidation_incentive_factor(lltv)
    tba, tbs = market.total_borrow_assets, market.total_borrow_shares
    if seized_assets > 0:
        quoted = mul_div_up(seized_assets, price, ORACLE_PRICE_SCALE)
        repaid_shares = to_shares_up(w_div_up(quoted, lif), tba, tbs)
    else:
        seized_assets = mul_div_down(
            w_mul_down(to_assets_down(repaid_shares, tba, tbs), lif), ORACLE_PRICE_SCALE, price
        )
    repaid_assets = to_assets_up(repaid_shares, tba, tbs)

    borrow_shares = to_uint128(position.borrow_shares - to_uint128(repaid_shares))
    tbs = to_uint128(tbs - repaid_shares)
    tba = zero_floor_sub(tba, repaid_assets)
    collateral = to_uint128(position.collateral - to_uint128(seized_assets))
    tsa = market.total_supply_assets
    bad_debt_shares = bad_debt_assets = 0
    if collateral == 0:
        bad_debt_shares = borrow_shares
        bad_debt_assets = min(tba, to_assets_up(bad_debt_shares, tba, tbs))
        tba -= bad_debt_assets
        tsa = to_uint128(tsa - bad_debt_assets)
        tbs -= bad_debt_shares
        borrow_shares = 0
    return Liquidation(
        seized_assets,
        repaid_shares,
        repaid_assets,
        bad_debt_assets,
        bad_debt_shares,
        replace(
            market,
            total_supply_assets=tsa,
            total_borrow_assets=tba,
            total_borrow_shares=tbs,
        ),
        replace(position, borrow_shares=borrow_shares, collateral=collateral),
    )
