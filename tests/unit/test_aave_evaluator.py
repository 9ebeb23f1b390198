"""AccountEvaluator against the reference calculate_account_data, to the wei.

The reference (health.calculate_account_data) is chain-tested; here the fast evaluator
must agree with it on every field for thousands of random markets and positions, and
raise where it raises.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

import pytest
from aave_random import (
    TS,
    random_market,
    random_position,
    reference,
    small_market,
)

from bot.adapters.aave_v3.evaluator import AccountEvaluator
from bot.adapters.aave_v3.health import (
    NO_DEBT_HEALTH_FACTOR,
    AccountData,
    UserReserve,
    calculate_account_data,
)
from bot.adapters.aave_v3.math import RAY, UINT256_MAX
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition


def outcome(fn: Callable[[], object]) -> object:
    """The value, or the exception type where the call raises."""
    try:
        return fn()
    except ValueError as exc:
        return type(exc)


def test_random_positions_match_reference_exactly() -> None:
    rng = random.Random(20240611)
    checked = with_debt = stable = emode = 0
    for _ in range(60):
        market, prices = random_market(rng)
        evaluator = AccountEvaluator(market, TS, prices)
        positions = {f"u{k}": random_position(rng, market) for k in range(60)}
        many = evaluator.evaluate_many(positions)
        hfs = evaluator.health_factors(positions)
        for user, position in positions.items():
            expected = reference(position, market, prices)
            assert many[user] == expected, (position, expected)
            assert evaluator.evaluate(position) == expected
            assert evaluator.health_factor(position) == expected.health_factor
            assert hfs[user] == expected.health_factor
            checked += 1
            with_debt += expected.total_debt_base > 0
            emode += position.emode != 0
            stable += any(u.stable_debt_principal for u in position.reserves.values())
    assert checked >= 3000
    # The generator must actually exercise the interesting branches.
    assert with_debt > 1000 and stable > 300 and emode > 1000


def test_liquidatable_and_zero_edge_cases_match() -> None:
    rng = random.Random(7)
    hf_below_one = 0
    for _ in range(40):
        market, prices = random_market(rng)
        evaluator = AccountEvaluator(market, TS, prices)
        for _ in range(40):
            # Balances of similar size so the health factor lands around 1.
            position = random_position(rng, market)
            position.reserves = {
                rid: dataclasses.replace(
                    u,
                    scaled_atoken=rng.choice([0, rng.randint(1, 10**20)]),
                    scaled_variable_debt=rng.choice([0, rng.randint(1, 10**20)]),
                )
                for rid, u in position.reserves.items()
            }
            expected = reference(position, market, prices)
            assert evaluator.evaluate(position) == expected
            hf_below_one += expected.health_factor < 10**18
    assert hf_below_one > 100


def both(
    market: MarketState, position: UserPosition, prices: Mapping[int, int] | None, ts: int = TS
) -> tuple[object, object, object]:
    evaluator = AccountEvaluator(market, ts, prices)
    ref = outcome(
        lambda: calculate_account_data(
            position.reserves,
            market.reserves,
            position.emode,
            market.emode_categories,
            ts,
            prices,
        )
    )
    return (
        ref,
        outcome(lambda: evaluator.evaluate(position)),
        outcome(lambda: evaluator.health_factor(position)),
    )


@pytest.mark.parametrize(
    ("position", "prices"),
    [
        # Empty user and inactive reserves short-circuit before any lookup.
        (UserPosition(0, {}), None),
        (UserPosition(5, {}), None),
        (UserPosition(0, {9: UserReserve(scaled_atoken=10)}), None),
        # Collateral bit with zero balance, and no debt at all.
        (UserPosition(0, {0: UserReserve(collateral_enabled=True)}), None),
        # Unknown reserve / unknown e-mode / e-mode price missing: the reference raises.
        (UserPosition(0, {9: UserReserve(scaled_variable_debt=1)}), None),
        (UserPosition(5, {0: UserReserve(scaled_atoken=1, collateral_enabled=True)}), None),
        (UserPosition(1, {0: UserReserve(scaled_atoken=1, collateral_enabled=True)}), None),
        (UserPosition(1, {0: UserReserve(scaled_atoken=1, collateral_enabled=True)}), {1: 0}),
        (UserPosition(1, {0: UserReserve(10**18, 10**17, collateral_enabled=True)}), {1: 7}),
        # Overflow: the contract reverts, and values just inside uint256 that still work.
        (UserPosition(0, {0: UserReserve(UINT256_MAX, collateral_enabled=True)}), None),
        (UserPosition(0, {0: UserReserve(2**200, 1, collateral_enabled=True)}), None),
        (UserPosition(0, {0: UserReserve(2**150, 2**150, collateral_enabled=True)}), None),
        (UserPosition(0, {1: UserReserve(scaled_variable_debt=2**240)}), None),
        (UserPosition(0, {1: UserReserve(stable_debt_principal=2**255, stable_rate=RAY)}), None),
        # Negative (corrupt) balances: the reference's uint checks decide.
        (UserPosition(0, {0: UserReserve(-1, collateral_enabled=True)}), None),
        (UserPosition(0, {0: UserReserve(1, -5, 3, 0, TS, True)}), None),
        (UserPosition(0, {0: UserReserve(1, 5, -3, 0, TS, True)}), None),
        # Stable debt updated "in the future" reverts in calculateCompoundedInterest.
        (UserPosition(0, {0: UserReserve(10**18, 0, 10**17, RAY, TS + 1, True)}), None),
    ],
)
def test_edge_cases_match_reference(
    position: UserPosition, prices: Mapping[int, int] | None
) -> None:
    ref, fast, hf = both(small_market(), position, prices)
    assert fast == ref
    assert hf == (ref.health_factor if isinstance(ref, AccountData) else ref)


def test_bad_market_data_defers_to_the_reference() -> None:
    collateral_only = UserPosition(0, {0: UserReserve(10**18, collateral_enabled=True)})
    debt_only = UserPosition(0, {0: UserReserve(scaled_variable_debt=10**18)})
    usd_debt = UserPosition(0, {0: UserReserve(collateral_enabled=False), 1: UserReserve(0, 5)})
    for market, ts in [
        (small_market(), TS - 101),  # reserve 0 last updated after ts: its indexes revert
        (small_market(decimals=200), TS),
        (small_market(ltv=70_000), TS),
        (small_market(liquidation_threshold=0), TS),
    ]:
        for position in (collateral_only, debt_only, usd_debt):
            ref, fast, hf = both(market, position, None, ts)
            assert fast == ref
            assert hf == (ref.health_factor if isinstance(ref, AccountData) else ref)


def test_no_debt_health_factor_and_emode_price_source() -> None:
    market = small_market()
    position = UserPosition(
        1, {0: UserReserve(10**18, collateral_enabled=True), 1: UserReserve(0, 10**9)}
    )
    with_price = AccountEvaluator(market, TS, {1: 1900 * 10**8}).evaluate(position)
    assert with_price == reference(position, market, {1: 1900 * 10**8})
    # A zero oracle answer for the source falls back to the asset price.
    fallback = AccountEvaluator(market, TS, {1: 0}).evaluate(position)
    assert fallback == reference(position, market, {1: 0})
    assert fallback.total_collateral_base != with_price.total_collateral_base
    no_debt = UserPosition(0, {0: UserReserve(10**18, collateral_enabled=True)})
    assert AccountEvaluator(market, TS).health_factor(no_debt) == NO_DEBT_HEALTH_FACTOR
