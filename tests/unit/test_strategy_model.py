"""The strategy's liquidation model and search primitives, against references.

* ``amounts`` equals ``health.liquidation_amounts`` on random markets and positions
  (e-mode with and without price source, stable debt, protocol fees, capped seizures,
  both close-factor rules), and reverts exactly where a burn rounds to 0 or v3.3's dust
  rule bites;
* the search probe equals ``amounts`` + swap + premium, and stays within
  ``profit_noise`` of the exact rational concave model the search relies on;
* the pruning bounds never undercut a plan the strategy could make;
* ``argmax`` / ``last_below`` / ``last_true`` against brute force.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import partial

import pytest

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.evaluator import AccountEvaluator
from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    ZERO_ADDRESS,
    AccountData,
    EModeCategory,
    LiquidationAmounts,
    ReserveState,
    UserReserve,
    calculate_account_data,
    calculate_available_collateral_to_liquidate,
    liquidation_amounts,
    normalized_debt,
    normalized_income,
    stable_debt_balance,
)
from bot.adapters.aave_v3.math import RAY, WAD, percent_mul, ray_div, ray_mul
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from strategies.aave_liquidation import (
    MIN_LEFTOVER_BASE,
    Indexes,
    Terms,
    after,
    amounts,
    build_terms,
    profit_noise,
    profit_probe,
)
from strategies.api import CloseFactorRules, PairQuote, StrategyInput, pair_key
from strategies.default import (
    DefaultStrategy,
    _linear_bound,
    _pairs,
    _Round,
    best_call,
)
from strategies.search import argmax, certify, last_below, last_true

TS = 1_700_000_000
Pool = tuple[int, int] | None  # (reserve in, reserve out) of a pair, None: no swap
ORACLE = "0x" + "0" * 39 + "1"


def random_market(rng: random.Random) -> tuple[MarketState, dict[int, int]]:
    reserves: dict[int, ReserveState] = {}
    for rid in range(4):
        threshold = rng.randint(5_000, 9_000)
        cfg = ReserveConfig(
            ltv=threshold - 500,
            liquidation_threshold=threshold,
            liquidation_bonus=rng.choice([10_100, 10_450, 10_500, 11_000, 11_500]),
            decimals=rng.choice([0, 2, 6, 8, 18]),
            liquidation_protocol_fee=rng.choice([0, 1_000, 2_000, 10_000]),
            emode_category=rng.choice([0, 1, 1]),
        )
        reserves[rid] = ReserveState(
            asset=f"0x{rid + 0xA0:040x}",
            id=rid,
            config=cfg,
            liquidity_index=rng.randint(RAY, 2 * RAY),
            variable_borrow_index=rng.randint(RAY, 2 * RAY),
            current_liquidity_rate=rng.randint(0, RAY // 5),
            current_variable_borrow_rate=rng.randint(0, RAY // 3),
            last_update_timestamp=TS - rng.randint(0, 10**6),
            price=rng.randint(10**6, 10**13),
        )
    source = rng.choice([ZERO_ADDRESS, ORACLE])
    category = EModeCategory(1, 9_000, 9_300, rng.choice([10_100, 10_200]), source, "e")
    prices = {1: rng.randint(10**6, 10**13)}
    return MarketState(1, reserves, {}, {1: category}), prices


def random_position(rng: random.Random, market: MarketState) -> UserPosition:
    reserves: dict[int, UserReserve] = {}
    for rid, r in market.reserves.items():
        unit = 10**r.config.decimals
        value = rng.randint(1, 10**6) * unit * 10**8 // r.price + rng.randint(0, 3)
        kind = rng.choice(["collateral", "debt", "stable", "both", "none"])
        if kind == "collateral":
            reserves[rid] = UserReserve(scaled_atoken=value, collateral_enabled=True)
        elif kind == "debt":
            reserves[rid] = UserReserve(scaled_variable_debt=value)
        elif kind == "stable":
            reserves[rid] = UserReserve(
                scaled_variable_debt=rng.choice([0, value // 3]),
                stable_debt_principal=value,
                stable_rate=rng.randint(0, RAY // 5),
                stable_last_update=TS - rng.randint(0, 10**6),
            )
        elif kind == "both":
            reserves[rid] = UserReserve(value, value // 2, collateral_enabled=True)
    return UserPosition(rng.choice([0, 0, 1]), reserves)


def all_terms(
    market: MarketState,
    position: UserPosition,
    prices: dict[int, int],
    rules: CloseFactorRules,
) -> Iterator[tuple[Terms, AccountData]]:
    account = calculate_account_data(
        position.reserves, market.reserves, position.emode, market.emode_categories, TS, prices
    )
    for cid in position.reserves:
        for did in position.reserves:
            t = build_terms(
                market=market,
                position=position,
                account=account,
                collateral_id=cid,
                debt_id=did,
                ts=TS,
                rules=rules,
                emode_prices=prices,
            )
            if t is not None:
                yield t, account


def reference(
    t: Terms, market: MarketState, position: UserPosition, prices: dict[int, int], cover: int
) -> LiquidationAmounts:
    health_factor = t.health_factor
    if t.rules is CloseFactorRules.V3_3:
        health_factor, cover = min(health_factor, CLOSE_FACTOR_HF_THRESHOLD), min(cover, t.max_debt)
    return liquidation_amounts(
        health_factor=health_factor,
        collateral_reserve=t.collateral,
        debt_reserve=t.debt,
        user_collateral=t.user_collateral,
        user_debt=t.user_debt,
        user_emode=position.emode,
        emode_categories=market.emode_categories,
        debt_to_cover=cover,
        ts=TS,
        emode_prices=prices,
    )


def covers(rng: random.Random, t: Terms) -> list[int]:
    picks = [1, 2, t.max_debt, t.max_debt + 1, t.reserve_debt, t.first_capped_debt()]
    picks += [rng.randint(1, t.max_debt) for _ in range(6)]
    picks += [t.debt_at(t.top_uncapped_level()), t.debt_at(t.top_uncapped_level()) - 1]
    return [c for c in picks if c > 0]


@pytest.mark.parametrize("rules", list(CloseFactorRules))
def test_amounts_equal_the_reference(rules: CloseFactorRules) -> None:
    rng = random.Random(11)
    checked = capped = reverted = 0
    while checked < 3_000:
        market, prices = random_market(rng)
        position = random_position(rng, market)
        for t, _ in all_terms(market, position, prices, rules):
            for cover in covers(rng, t):
                a = amounts(t, cover)
                ref = reference(t, market, position, prices, cover)
                if a is None:
                    reverted += 1
                    assert reverts_on_chain(t, ref, cover)
                    continue
                checked += 1
                capped += a.capped
                assert (a.debt_repaid, a.collateral_seized, a.protocol_fee) == ref
                assert a.collateral_scaled == ray_div(a.collateral_seized, t.income) > 0
    assert capped > 100 and reverted > 10


def reverts_on_chain(t: Terms, ref: LiquidationAmounts, cover: int) -> bool:
    """Why ``amounts`` said the call reverts: a burn of 0 scaled units, or v3.3 dust."""
    repaid, seized, _ = ref
    fee = calculate_available_collateral_to_liquidate(  # before the treasury clamp
        collateral_price=t.collateral_price,
        debt_price=t.debt_price,
        collateral_decimals=t.collateral.config.decimals,
        debt_decimals=t.debt.config.decimals,
        debt_to_cover=min(cover, t.max_debt),
        user_collateral_balance=t.balance,
        liquidation_bonus=t.bonus,
        liquidation_protocol_fee_bps=t.fee_bps,
    ).liquidation_protocol_fee_amount
    burns_nothing = ray_div(seized, t.income) == 0 or (
        repaid <= t.variable_debt and ray_div(repaid, t.debt_index) == 0
    )
    if burns_nothing or repaid == 0:
        return True
    if t.rules is CloseFactorRules.V3_0:
        return False
    full = repaid >= t.reserve_debt or seized + fee >= t.balance
    left_debt = (t.reserve_debt - repaid) * t.debt_price // t.debt_unit
    left_collateral = (t.balance - seized) * t.collateral_price // t.collateral_unit
    return not full and min(left_debt, left_collateral) < MIN_LEFTOVER_BASE


def test_position_after_a_call_is_what_the_tokens_leave() -> None:
    rng = random.Random(12)
    done = 0
    while done < 500:
        market, prices = random_market(rng)
        position = random_position(rng, market)
        for t, _ in all_terms(market, position, prices, CloseFactorRules.V3_0):
            cover = rng.randint(1, t.max_debt)
            a = amounts(t, cover)
            if a is None:
                continue
            done += 1
            moved = after(position, t, a, TS)
            c0, d0 = position.reserves[t.collateral.id], position.reserves[t.debt.id]
            c1, d1 = moved.reserves[t.collateral.id], moved.reserves[t.debt.id]
            income = normalized_income(t.collateral, TS)
            burned_collateral = ray_div(a.collateral_seized, income) + ray_div(
                a.protocol_fee, income
            )
            variable = ray_mul(d0.scaled_variable_debt, normalized_debt(t.debt, TS))
            from_variable = min(a.debt_repaid, variable)
            burned_debt = ray_div(from_variable, normalized_debt(t.debt, TS))
            if t.same_asset:
                assert c1.scaled_atoken == c0.scaled_atoken - burned_collateral
                assert c1.scaled_variable_debt == c0.scaled_variable_debt - burned_debt
            else:
                assert c1.scaled_atoken == c0.scaled_atoken - burned_collateral
                assert d1.scaled_variable_debt == d0.scaled_variable_debt - burned_debt
            stable_left = stable_debt_balance(d0, TS) - (a.debt_repaid - from_variable)
            assert stable_debt_balance(moved.reserves[t.debt.id], TS) == stable_left
            balance = ray_mul(c0.scaled_atoken, income)
            disabled = a.collateral_seized + a.fee_before_clamp == balance
            assert c1.collateral_enabled is (c0.collateral_enabled and not disabled)


def pool_for(rng: random.Random, t: Terms) -> Pool:
    if t.same_asset:
        return None
    depth = rng.randint(max(10, t.balance // 100), t.balance * 100 + 10)
    fair = depth * t.collateral_price * t.debt_unit // (t.debt_price * t.collateral_unit)
    return depth, max(1, fair * rng.randint(900, 1_100) // 1_000)


def exact_profit(
    t: Terms, pool: Pool, cover: int, premium_bps: int, s0: int = 0, d0: int = 0
) -> int | None:
    a = amounts(t, cover)
    if a is None:
        return None
    total = s0 + a.collateral_seized
    out = total
    if pool is not None:
        out = total * 997 * pool[1] // (pool[0] * 1000 + total * 997)
        if out == 0:
            return None
    flash = d0 + a.debt_repaid
    return out - flash - percent_mul(flash, premium_bps)


def smooth(t: Terms, pool: Pool, level: int, premium_bps: int, s0: int, d0: int) -> Fraction:
    """The concave model of ``profit_noise``, in exact rationals."""
    bonus = Fraction(t.bonus, 10_000)
    fee = Fraction(t.fee_bps, 10_000)
    per_base = bonus * (1 - (1 - 1 / bonus) * fee)
    ratio = Fraction(t.debt_price * t.collateral_unit, t.collateral_price * t.debt_unit)
    kappa, rho = (ratio * per_base, Fraction(1)) if t.by_debt else (per_base, 1 / ratio)
    x = s0 + kappa * level
    out = x if pool is None else 997 * x * pool[1] / (1000 * pool[0] + 997 * x)
    return out - (d0 + rho * level) * (1 + Fraction(premium_bps, 10_000))


def test_probe_equals_the_model_and_stays_within_the_noise_bound() -> None:
    rng = random.Random(13)
    done = 0
    while done < 400:
        market, prices = random_market(rng)
        position = random_position(rng, market)
        for t, _ in all_terms(market, position, prices, CloseFactorRules.V3_0):
            pool = pool_for(rng, t)
            premium = rng.choice([0, 5, 9, 100])
            s0 = rng.choice([0, 0, rng.randint(0, t.balance)])
            d0 = rng.choice([0, 0, rng.randint(0, t.max_debt)])
            probe = profit_probe(t, prior_seized=s0, prior_debt=d0, pool=pool, premium_bps=premium)
            noise = profit_noise(t, pool)
            top = min(t.max_level(), t.top_uncapped_level())
            if top < 1:
                continue
            done += 1
            levels = {1, 2, top, top - 1, *(rng.randint(1, top) for _ in range(8))}
            for level in (x for x in levels if 1 <= x <= top):
                value = probe(level)
                assert value == exact_profit(t, pool, t.debt_at(level), premium, s0, d0)
                if value is not None and noise is not None:
                    assert abs(value - smooth(t, pool, level, premium, s0, d0)) <= noise


def test_levels_bracket_the_capped_branch() -> None:
    rng = random.Random(14)
    done = 0
    while done < 500:
        market, prices = random_market(rng)
        position = random_position(rng, market)
        for t, _ in all_terms(market, position, prices, CloseFactorRules.V3_0):
            top = t.top_uncapped_level()
            if t.max_level() <= top:
                continue
            done += 1
            below, above = amounts(t, t.debt_at(top)), amounts(t, t.first_capped_debt())
            assert below is None or not below.capped
            assert above is None or above.capped
            # Every debtToCover between two levels seizes the same: the level's is cheapest.
            for level in (top, max(1, top // 2)):
                d = t.debt_at(level)
                assert t.level_of(d) == level and t.level_of(d - 1) < level


# --- the pruning bounds -------------------------------------------------------------------


def small_input(rng: random.Random) -> tuple[StrategyInput, UserPosition]:
    market, prices = random_market(rng)
    position = random_position(rng, market)
    pairs = {}
    for a in market.reserves.values():
        for b in market.reserves.values():
            if a.id < b.id:
                depth = rng.randint(10**3, 10**12)
                other = depth * a.price * 10**b.config.decimals // (b.price * 10**a.config.decimals)
                pairs[pair_key(a.asset, b.asset)] = PairQuote(
                    "0xp", a.asset, b.asset, depth, max(1, other)
                )
    inp = StrategyInput(
        market=market,
        ts=TS,
        positions={"u": position},
        pairs=pairs,
        gas_price_wei=0,
        native_price_base=0,
        flash_premium_bps=rng.choice([0, 5, 9]),
        min_profit_base=-(10**40),
        emode_prices=prices,
    )
    return inp, position


def test_pruning_bounds_are_upper_bounds() -> None:
    rng = random.Random(15)
    done = 0
    while done < 300:
        inp, position = small_input(rng)
        evaluator = AccountEvaluator(inp.market, TS, inp.emode_prices)
        account = evaluator.evaluate(position)
        if account.health_factor >= WAD:
            continue
        round_ = _Round(inp, evaluator, Indexes(TS))
        for pair in _pairs(round_, position):
            t = pair.terms(position, account)
            if t is None:
                continue
            done += 1
            bound1 = _linear_bound(pair, t, min(t.max_level(), t.top_uncapped_level()) + 2, calls=1)
            found = best_call(pair, t, prior_seized=0, prior_debt=0)
            if found is None:
                continue
            assert found.profit <= bound1
            for cover in covers(rng, t):
                p = exact_profit(t, pair.pool_reserves, cover, inp.flash_premium_bps)
                assert p is None or p <= bound1
            two = DefaultStrategy()._candidates(pair, position, t, None)
            bound2 = _linear_bound(
                pair, t, min(t.level_of(t.reserve_debt), t.top_uncapped_level()) + 2, calls=2
            )
            for candidate in two:
                assert candidate.profit <= max(bound1, bound2)
                if len(candidate.steps) == 2:
                    assert found.extension_bound is not None
                    assert candidate.profit <= found.extension_bound


# --- search primitives --------------------------------------------------------------------


def noisy_concave(
    rng: random.Random, n: int, noise: int
) -> tuple[Callable[[int], int | None], int]:
    peak = rng.randint(-n // 2, 2 * n)
    curve = rng.randint(1, 50)
    jitter = [rng.randint(-noise, noise) for _ in range(n + 1)]
    infeasible = rng.choice([0, 0, rng.randint(0, n // 10)])

    def f(t: int) -> int | None:
        if t < infeasible:
            return None
        return -curve * (t - peak) ** 2 // max(1, n // 10) + jitter[t] + 10**6

    return f, infeasible


@pytest.mark.parametrize("seed", range(200))
def test_argmax_with_a_noise_bound_is_exact(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([50, 500, 5_000])
    noise = rng.choice([0, 1, 5, 50])
    f, _ = noisy_concave(rng, n, noise)
    values = [(f(t), t) for t in range(0, n + 1)]
    feasible = [(v, -t) for v, t in values if v is not None]
    best = argmax(f, 0, n, noise=noise)
    if not feasible:
        assert best is None
        return
    top = max(feasible)[0]
    assert best is not None and f(best) == top
    # Without certification: within a few noise units.
    plain = argmax(f, 0, n)
    found = None if plain is None else f(plain)
    assert found is not None and found >= top - 10 * noise - 1


def test_certify_brackets_every_better_point() -> None:
    rng = random.Random(3)
    for _ in range(200):
        f, _ = noisy_concave(rng, 2_000, 20)
        t = rng.randint(1_000, 1_500)
        at_t = f(t)
        if at_t is None:
            continue
        region = certify(f, 0, 2_000, t, at_t - 40)
        assert region is not None
        left, right = region
        for x in range(0, 2_001):
            v = f(x)
            if v is not None and v > at_t:
                assert left <= x <= right


@pytest.mark.parametrize("seed", range(100))
def test_last_below_finds_the_root_to_tolerance(seed: int) -> None:
    rng = random.Random(seed)
    hi = rng.choice([10, 10**6, 10**18])
    root = rng.randint(1, hi)
    slope = rng.randint(1, 10**6)
    jump = rng.choice([0, 0, rng.randint(1, 10**9)])  # a truncated average, say
    step = rng.choice([1, 1, rng.randint(1, 10**6)])  # a staircase (base units)
    calls = []

    def f(t: int) -> int:
        calls.append(t)
        v = (t - root) // step * slope
        return v + jump if t >= root else min(v, -1)

    tol = max(1, hi >> 30)
    if f(0) >= 0:
        return
    found = last_below(f, 0, f(0), hi, max(f(hi), 0), tol)
    assert f(found) < 0 and root - tol <= found < root
    assert len(calls) < 3 * 64


def test_last_true() -> None:
    for cut in range(0, 20):
        assert last_true(partial(operator.ge, cut), 1, 15) == min(cut, 15)
