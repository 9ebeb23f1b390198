"""DefaultStrategy on a hand-built devnet-like market: amounts, search, ledger, rules.

Every plan the tests see is replayed independently: each step through
``health.liquidation_amounts`` on a position updated by hand (scaled burns as the
tokens do), the swap through the pair formula, and the profit identity of the
liquidator contract.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

import strategies.default as default_module
from bot.adapters.aave_v3.config import ReserveConfig
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
)
from bot.adapters.aave_v3.math import RAY, UINT256_MAX, WAD, percent_mul, ray_div, ray_mul
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import LiquidationPlan, LiquidationStep
from strategies.aave_liquidation import build_terms, profit_noise
from strategies.api import CloseFactorRules, PairQuote, Strategy, StrategyInput, pair_key
from strategies.default import DefaultStrategy

TS = 1_700_000_000
USD = 10**8  # base currency unit
ORACLE = "0x" + "0" * 39 + "1"


def reserve(
    rid: int, decimals: int, price: int, lt: int, bonus: int, fee: int, emode: int = 0
) -> ReserveState:
    """A reserve with accrued, still-accruing interest (indexes move up to ``TS``)."""
    return ReserveState(
        asset=f"0x{rid + 0xA0:040x}",
        id=rid,
        config=ReserveConfig(
            ltv=lt - 300,
            liquidation_threshold=lt,
            liquidation_bonus=bonus,
            decimals=decimals,
            liquidation_protocol_fee=fee,
            emode_category=emode,
        ),
        liquidity_index=RAY + RAY // 37,
        variable_borrow_index=RAY + RAY // 19,
        current_liquidity_rate=RAY * 3 // 100,
        current_variable_borrow_rate=RAY * 5 // 100,
        last_update_timestamp=TS - 7_200,
        price=price,
    )


# The devnet market (bot/devnet/market.py): WETH, WBTC, USDC, DAI and a stablecoin e-mode.
WETH = reserve(0, 18, 2_000 * USD, 8_300, 10_500, 1_000)
WBTC = reserve(1, 8, 40_000 * USD, 7_800, 10_500, 1_000)
USDC = reserve(2, 6, USD, 8_000, 10_450, 1_000, emode=1)
DAI = reserve(3, 18, USD, 7_700, 10_500, 0, emode=1)
RESERVES = {r.id: r for r in (WETH, WBTC, USDC, DAI)}
STABLES = EModeCategory(1, 9_300, 9_500, 10_100, ZERO_ADDRESS, "Stablecoins")
MARKET = MarketState(1, RESERVES, {}, {1: STABLES})


def units(r: ReserveState, amount: float) -> int:
    return int(amount * 10**6) * 10**r.config.decimals // 10**6


def deep_pairs(
    depth_usd: int = 50_000_000, reserves: Iterable[ReserveState] = ()
) -> dict[frozenset[str], PairQuote]:
    """Uniswap V2 pairs of every two assets, ``depth_usd`` per side at oracle prices."""
    rs = list(reserves) or list(RESERVES.values())
    pairs: dict[frozenset[str], PairQuote] = {}
    for a in rs:
        for b in rs:
            if a.id < b.id:
                ra = depth_usd * USD * 10**a.config.decimals // a.price
                rb = depth_usd * USD * 10**b.config.decimals // b.price
                pairs[pair_key(a.asset, b.asset)] = PairQuote(
                    f"0x{0xF000 + a.id * 16 + b.id:040x}", a.asset, b.asset, ra, rb
                )
    return pairs


def supply(r: ReserveState, amount: int) -> UserReserve:
    """A collateral position worth ``amount`` underlying at TS (scaled at the index)."""
    return UserReserve(
        scaled_atoken=ray_div(amount, normalized_income(r, TS)), collateral_enabled=True
    )


def borrow(r: ReserveState, amount: int) -> UserReserve:
    return UserReserve(scaled_variable_debt=ray_div(amount, normalized_debt(r, TS)))


def position(
    collateral: Mapping[ReserveState, float],
    debt: Mapping[ReserveState, float],
    emode: int = 0,
) -> UserPosition:
    reserves: dict[int, UserReserve] = {}
    for r, amount in collateral.items():
        reserves[r.id] = supply(r, units(r, amount))
    for r, amount in debt.items():
        prior = reserves.get(r.id, UserReserve())
        reserves[r.id] = dataclasses.replace(
            prior, scaled_variable_debt=borrow(r, units(r, amount)).scaled_variable_debt
        )
    return UserPosition(emode, reserves)


def weth_dai(hf: float, eth: float = 100.0) -> UserPosition:
    """WETH collateral against DAI debt sized for a health factor of about ``hf``."""
    dai = eth * 2_000 * 0.83 / hf
    return position({WETH: eth}, {DAI: dai})


def make_input(
    positions: Mapping[str, UserPosition],
    *,
    market: MarketState = MARKET,
    pairs: Mapping[frozenset[str], PairQuote] | None = None,
    **kw: object,
) -> StrategyInput:
    args: dict[str, object] = {
        "gas_price_wei": 20 * 10**9,
        "native_price_base": 2_000 * USD,
        "flash_premium_bps": 5,
    }
    args.update(kw)
    return StrategyInput(
        market=market,
        ts=TS,
        positions=positions,
        pairs=deep_pairs() if pairs is None else pairs,
        **args,  # type: ignore[arg-type]
    )


def account(inp: StrategyInput, p: UserPosition) -> AccountData:
    return calculate_account_data(
        p.reserves, inp.market.reserves, p.emode, inp.market.emode_categories, TS, inp.emode_prices
    )


def v33_cap(
    inp: StrategyInput, p: UserPosition, collateral: ReserveState, debt: ReserveState
) -> int:
    """v3.3's maxLiquidatableDebt, written out from the contract for the test."""
    acc = account(inp, p)
    reserve_debt = ray_mul(p.reserves[debt.id].scaled_variable_debt, normalized_debt(debt, TS))
    balance = ray_mul(p.reserves[collateral.id].scaled_atoken, normalized_income(collateral, TS))
    unit_d, unit_c = 10**debt.config.decimals, 10**collateral.config.decimals
    debt_base = reserve_debt * debt.price // unit_d
    if (
        balance * collateral.price // unit_c >= 2_000 * USD
        and debt_base >= 2_000 * USD
        and acc.health_factor > CLOSE_FACTOR_HF_THRESHOLD
    ):
        half = percent_mul(acc.total_debt_base, 5_000)
        if debt_base > half:
            return half * unit_d // debt.price
    return reserve_debt


def replay(inp: StrategyInput, user_position: UserPosition, plan: LiquidationPlan) -> None:
    """Re-derive every figure of ``plan`` independently of the strategy's own model."""
    p = UserPosition(user_position.emode, dict(user_position.reserves))
    repaid = 0
    seized_total = fee_total = 0
    collateral = inp.market.by_asset(plan.steps[0].collateral_asset)
    debt = inp.market.by_asset(plan.debt_asset)
    assert plan.health_factor == account(inp, p).health_factor < WAD
    for step in plan.steps:
        assert (step.collateral_asset, step.debt_asset) == (collateral.asset, debt.asset)
        hf = account(inp, p).health_factor
        assert hf < WAD
        cover = step.debt_to_cover
        if inp.rules is CloseFactorRules.V3_3:
            cover = min(cover, v33_cap(inp, p, collateral, debt))
            hf = min(hf, CLOSE_FACTOR_HF_THRESHOLD)  # the reference then caps at 100%
        ref = reference(inp, p, collateral, debt, hf, cover)
        assert (ref.collateral_to_liquidate, ref.liquidation_protocol_fee_amount) == (
            step.collateral_seized,
            step.protocol_fee,
        )
        if inp.rules is CloseFactorRules.V3_3:
            assert_no_dust(p, collateral, debt, cover, ref.actual_debt_to_liquidate, step)
        repaid += ref.actual_debt_to_liquidate
        seized_total += step.collateral_seized
        fee_total += step.protocol_fee
        p = hand_update(p, collateral, debt, ref.actual_debt_to_liquidate, step)
    assert plan.flash_amount == repaid
    assert plan.flash_premium == percent_mul(repaid, inp.flash_premium_bps)
    if collateral.id == debt.id:
        assert plan.swaps == ()
        received = seized_total
    else:
        (swap,) = plan.swaps
        pair = inp.pairs[pair_key(collateral.asset, debt.asset)]
        assert (swap.pair, swap.token_in, swap.token_out) == (
            pair.pair,
            collateral.asset,
            debt.asset,
        )
        assert swap.amount_in == seized_total
        assert swap.amount_out == pair.amount_out(collateral.asset, seized_total) > 0
        received = swap.amount_out
    # The liquidator contract's identity, to the wei.
    assert plan.profit == received - plan.flash_amount - plan.flash_premium >= 0
    check_ledger(inp, plan, collateral, debt, seized_total, fee_total, received)


def assert_no_dust(
    p: UserPosition,
    collateral: ReserveState,
    debt: ReserveState,
    cover: int,
    repaid: int,
    step: LiquidationStep,
) -> None:
    """v3.3 MUST_NOT_LEAVE_DUST, from the contract: all debt, all collateral, or >= $1,000
    of both left (the collateral left counts the protocol fee, as the contract does)."""
    c, d = p.reserves[collateral.id], p.reserves[debt.id]
    balance = ray_mul(c.scaled_atoken, normalized_income(collateral, TS))
    reserve_debt = ray_mul(d.scaled_variable_debt, normalized_debt(debt, TS))
    fee_before_clamp = calculate_available_collateral_to_liquidate(
        collateral_price=collateral.price,
        debt_price=debt.price,
        collateral_decimals=collateral.config.decimals,
        debt_decimals=debt.config.decimals,
        debt_to_cover=cover,
        user_collateral_balance=balance,
        liquidation_bonus=collateral.config.liquidation_bonus,
        liquidation_protocol_fee_bps=collateral.config.liquidation_protocol_fee,
    ).liquidation_protocol_fee_amount
    if repaid < reserve_debt and step.collateral_seized + fee_before_clamp < balance:
        left_debt = (reserve_debt - repaid) * debt.price // 10**debt.config.decimals
        left_collateral = (
            (balance - step.collateral_seized) * collateral.price // 10**collateral.config.decimals
        )
        assert left_debt >= 1_000 * USD and left_collateral >= 1_000 * USD


def hand_update(
    p: UserPosition,
    collateral: ReserveState,
    debt: ReserveState,
    repaid: int,
    step: LiquidationStep,
) -> UserPosition:
    """The position after one call, from the token rules (no stable debt in these tests)."""
    reserves = dict(p.reserves)
    d = reserves[debt.id]
    reserves[debt.id] = dataclasses.replace(
        d, scaled_variable_debt=d.scaled_variable_debt - ray_div(repaid, normalized_debt(debt, TS))
    )
    income = normalized_income(collateral, TS)
    c = reserves[collateral.id]
    balance = ray_mul(c.scaled_atoken, income)
    reserves[collateral.id] = dataclasses.replace(
        c,
        scaled_atoken=c.scaled_atoken
        - ray_div(step.collateral_seized, income)
        - ray_div(step.protocol_fee, income),
        collateral_enabled=step.collateral_seized + step.protocol_fee != balance,
    )
    return UserPosition(p.emode, reserves)


def check_ledger(
    inp: StrategyInput,
    plan: LiquidationPlan,
    collateral: ReserveState,
    debt: ReserveState,
    seized: int,
    fee: int,
    received: int,
) -> None:
    pc, pd = collateral.price, debt.price
    if collateral.config.emode_category == plan_emode(inp, plan) != 0:
        pc = liquidation_price(inp, plan, pc)
    if plan_emode(inp, plan):
        pd = liquidation_price(inp, plan, pd)
    uc, ud = 10**collateral.config.decimals, 10**debt.config.decimals
    assert plan.profit_base == plan.profit * pd // ud
    assert plan.bonus_base == seized * pc // uc - plan.flash_amount * pd // ud
    assert plan.protocol_fee_base == fee * pc // uc
    swap_cost = seized * pc // uc - received * pd // ud if plan.swaps else 0
    assert plan.swap_cost_base == swap_cost
    assert plan.flash_premium_base == plan.flash_premium * pd // ud
    assert plan.gas_units == inp.gas_units_base + inp.gas_units_per_step * len(plan.steps)
    assert plan.gas_price_wei == inp.gas_price_wei
    assert plan.gas_cost_base == plan.gas_units * inp.gas_price_wei * inp.native_price_base // WAD
    assert plan.net_profit_base == plan.profit_base - plan.gas_cost_base >= inp.min_profit_base
    # Each term floored separately: the breakdown adds up within a few base units.
    assert (
        abs(plan.bonus_base - plan.swap_cost_base - plan.flash_premium_base - plan.profit_base) <= 3
    )
    assert plan.protocol == inp.protocol and all(s.user == plan.user for s in plan.steps)


def plan_emode(inp: StrategyInput, plan: LiquidationPlan) -> int:
    return inp.positions[plan.user].emode


def liquidation_price(inp: StrategyInput, plan: LiquidationPlan, price: int) -> int:
    category = inp.market.emode_categories[plan_emode(inp, plan)]
    if int(category.price_source, 16) == 0:
        return price
    assert inp.emode_prices is not None
    return inp.emode_prices[category.id]


def plan_all(inp: StrategyInput, **kw: bool) -> list[LiquidationPlan]:
    plans = DefaultStrategy(**kw).plan(inp)
    for plan in plans:
        replay(inp, inp.positions[plan.user], plan)
    return plans


def only_plan(inp: StrategyInput, **kw: bool) -> LiquidationPlan:
    (plan,) = plan_all(inp, **kw)
    return plan


def max_amounts(
    inp: StrategyInput, p: UserPosition, collateral: ReserveState, debt: ReserveState
) -> LiquidationAmounts:
    """``liquidation_amounts`` at the largest allowed ``debtToCover`` (V3_0)."""
    return reference(inp, p, collateral, debt, account(inp, p).health_factor, UINT256_MAX)


def reference(
    inp: StrategyInput,
    p: UserPosition,
    collateral: ReserveState,
    debt: ReserveState,
    health_factor: int,
    cover: int,
) -> LiquidationAmounts:
    """``health.liquidation_amounts`` of one call on ``p``."""
    return liquidation_amounts(
        health_factor=health_factor,
        collateral_reserve=collateral,
        debt_reserve=debt,
        user_collateral=p.reserves[collateral.id],
        user_debt=p.reserves[debt.id],
        user_emode=p.emode,
        emode_categories=inp.market.emode_categories,
        debt_to_cover=cover,
        ts=TS,
        emode_prices=inp.emode_prices,
    )


def assert_near_the_maximum(
    inp: StrategyInput, plan: LiquidationPlan, most: LiquidationAmounts
) -> None:
    """The plan repays (to 1e-9) the most allowed, and earns at least what that earns."""
    (step,) = plan.steps
    pair = inp.pairs[pair_key(step.collateral_asset, step.debt_asset)]
    out = pair.amount_out(step.collateral_asset, most.collateral_to_liquidate)
    flash = most.actual_debt_to_liquidate
    assert plan.profit >= out - flash - percent_mul(flash, inp.flash_premium_bps)
    assert step.debt_to_cover <= flash
    assert step.collateral_seized >= most.collateral_to_liquidate * (10**9 - 1) // 10**9


def variable_debt(p: UserPosition, r: ReserveState) -> int:
    return ray_mul(p.reserves[r.id].scaled_variable_debt, normalized_debt(r, TS))


# --- the interface ----------------------------------------------------------------------


def test_pair_quote_is_uniswap_v2_get_amount_out() -> None:
    q = PairQuote("0xpair", "0xAA", "0xbb", 1_000_000, 2_000_000)
    assert q.amount_out("0xaa", 1_000) == 1_000 * 997 * 2_000_000 // (
        1_000_000 * 1000 + 1_000 * 997
    )
    assert q.amount_out("0xBB", 1_000) == 1_000 * 997 * 1_000_000 // (
        2_000_000 * 1000 + 1_000 * 997
    )
    assert q.amount_out("0xaa", 0) == 0
    assert q.token_out("0xAA") == "0xbb"
    with pytest.raises(ValueError):
        q.amount_out("0xcc", 1)
    with pytest.raises(ValueError):
        StrategyInput(
            market=MARKET,
            ts=TS,
            positions={},
            pairs={},
            gas_price_wei=0,
            native_price_base=0,
            flash_premium_bps=10_001,
        )
    assert isinstance(DefaultStrategy(), Strategy)


# --- amounts ------------------------------------------------------------------------------


def test_close_factor_50_percent_above_hf_095() -> None:
    p = weth_dai(0.97)
    inp = make_input({"alice": p})
    plan = only_plan(inp, two_steps=False)
    most = max_amounts(inp, p, WETH, DAI)
    assert most.actual_debt_to_liquidate == percent_mul(variable_debt(p, DAI), 5_000)
    # Deep pool: the close factor binds, up to rounding (one WETH wei of seizure is worth
    # more than the marginal profit of the ~2,000 DAI wei that buy it).
    assert_near_the_maximum(inp, plan, most)
    assert 0.97e18 - 1e16 < plan.health_factor < 0.97e18 + 1e16


def test_close_factor_100_percent_at_or_below_hf_095() -> None:
    p = weth_dai(0.90)
    inp = make_input({"bob": p})
    (step,) = only_plan(inp).steps
    most = max_amounts(inp, p, WETH, DAI)
    assert most.actual_debt_to_liquidate == variable_debt(p, DAI)  # 100%
    assert_near_the_maximum(inp, only_plan(inp), most)
    assert step.debt_to_cover > percent_mul(variable_debt(p, DAI), 5_000)


def test_collateral_capped_seizes_the_whole_balance() -> None:
    p = weth_dai(0.80)  # collateral worth less than debt * bonus
    inp = make_input({"carol": p})
    plan = only_plan(inp)
    (step,) = plan.steps
    most = max_amounts(inp, p, WETH, DAI)  # the capped branch
    balance = ray_mul(p.reserves[WETH.id].scaled_atoken, normalized_income(WETH, TS))
    assert most.collateral_to_liquidate + most.liquidation_protocol_fee_amount == balance
    assert most.actual_debt_to_liquidate < variable_debt(p, DAI)
    # Takes the balance (to rounding: the top uncapped level may leave a few wei and
    # earn as much), and at least what the capped branch earns.
    assert_near_the_maximum(inp, plan, most)
    assert step.collateral_seized + step.protocol_fee >= balance - balance // 10**9


def test_capped_branch_when_it_is_the_only_way_out() -> None:
    """v3.3 forbids leaving a few wei of collateral: the plan must take the capped branch,
    where the pool repays what it recomputes from the balance."""
    p = position({WETH: 1}, {DAI: 2_500})  # $2,000 of collateral, HF 0.66: capped
    inp = make_input({"carl": p}, rules=CloseFactorRules.V3_3, gas_price_wei=10**9)
    plan = only_plan(inp)
    (step,) = plan.steps
    balance = ray_mul(p.reserves[WETH.id].scaled_atoken, normalized_income(WETH, TS))
    assert step.collateral_seized + step.protocol_fee == balance
    assert plan.flash_amount <= step.debt_to_cover  # the pool takes what it recomputes


def test_protocol_fee_is_carved_from_the_bonus() -> None:
    p = weth_dai(0.97)
    inp = make_input({"dave": p})
    plan = only_plan(inp, two_steps=False)
    (step,) = plan.steps
    gross = step.collateral_seized + step.protocol_fee
    bonus_part = gross - gross * 10_000 // 10_500
    assert step.protocol_fee > 0
    assert abs(step.protocol_fee - bonus_part // 10) <= 1  # WETH's fee: 10% of the bonus
    assert plan.protocol_fee_base == step.protocol_fee * WETH.price // 10**18
    # DAI collateral has no fee.
    q = position({DAI: 100_000}, {WETH: 100_000 * 0.77 / 2_000 / 0.97})
    dai_plan = only_plan(make_input({"erin": q}))
    assert dai_plan.protocol_fee_base == 0
    assert all(s.protocol_fee == 0 for s in dai_plan.steps)


def test_emode_bonus_and_price_source() -> None:
    p = position({USDC: 100_000}, {DAI: 95_000 / 0.98}, emode=1)
    inp = make_input({"frank": p})
    plan = only_plan(inp)
    assert {s.bonus_bps for s in plan.steps} == {10_100}  # the category's, not USDC's 10_450
    # With a price source the category's price replaces both oracle prices.
    oracle_market = dataclasses.replace(
        MARKET, emode_categories={1: dataclasses.replace(STABLES, price_source=ORACLE)}
    )
    priced = make_input({"frank": p}, market=oracle_market, emode_prices={1: 99_000_000})
    plan2 = only_plan(priced)  # replay() checks every amount with the category's price
    # Both stablecoins are priced alike, so the amounts match; values use 0.99.
    assert plan2.steps == plan.steps
    assert plan2.profit_base == plan2.profit * 99_000_000 // 10**18 < plan.profit_base


# --- who gets a plan ----------------------------------------------------------------------


def test_healthy_users_produce_no_plan() -> None:
    inp = make_input({"healthy": weth_dai(1.5), "edge": weth_dai(1.0005)})
    assert DefaultStrategy().plan(inp) == []


def test_unprofitable_positions_produce_no_plan() -> None:
    tiny = make_input({"tiny": weth_dai(0.97, eth=0.01)})  # $20: gas (~$22) eats it
    assert DefaultStrategy().plan(tiny) == []
    assert plan_all(make_input({"tiny": weth_dai(0.97, eth=0.01)}, gas_price_wei=10**8))
    gas_heavy = make_input({"alice": weth_dai(0.97, eth=1)}, gas_price_wei=10**13)
    assert DefaultStrategy().plan(gas_heavy) == []
    no_pool = make_input({"alice": weth_dai(0.97)}, pairs={})
    assert DefaultStrategy().plan(no_pool) == []


def test_min_profit_filter_and_ranking() -> None:
    positions = {"a": weth_dai(0.97, 10), "b": weth_dai(0.97, 50), "c": weth_dai(0.9, 50)}
    plans = plan_all(make_input(positions))
    assert [p.user for p in plans] == ["c", "b", "a"]
    assert plans == sorted(plans, key=lambda p: -p.net_profit_base)
    cut = plans[1].net_profit_base
    assert [p.user for p in plan_all(make_input(positions, min_profit_base=cut))] == ["c", "b"]
    assert [p.user for p in plan_all(make_input(positions, min_profit_base=cut + 1))] == ["c"]
    # Equal profits: users in key order.
    twins = plan_all(make_input({"y": weth_dai(0.97, 10), "x": weth_dai(0.97, 10)}))
    assert [p.user for p in twins] == ["x", "y"]


def test_a_user_the_pool_cannot_price_is_skipped() -> None:
    # E-mode category with a price source but no price given: the reference raises for
    # that user only; the others are still planned.
    oracle_market = dataclasses.replace(
        MARKET, emode_categories={1: dataclasses.replace(STABLES, price_source=ORACLE)}
    )
    stable_user = position({USDC: 100_000}, {DAI: 95_000 / 0.98}, emode=1)
    inp = make_input({"a": weth_dai(0.97), "b": stable_user}, market=oracle_market)
    assert [p.user for p in plan_all(inp)] == ["a"]


def test_same_asset_collateral_needs_no_swap() -> None:
    # USDC supplied and borrowed (plus WETH debt): seized USDC repays the flash loan as is.
    p = position({USDC: 10_000}, {USDC: 4_000, WETH: 2.3})
    inp = make_input({"gina": p}, pairs={})
    plan = only_plan(inp)
    assert plan.debt_asset == USDC.asset and plan.swaps == ()


# --- the amount search ----------------------------------------------------------------------


def brute_force_best(
    inp: StrategyInput, p: UserPosition, collateral: ReserveState, debt: ReserveState
) -> int | None:
    """Best one-call profit over every ``debtToCover`` the pool takes as passed (the
    reference amounts): under v3.0 the strategy passes no other (the flash loan covers
    what is passed, see ``test_no_plan_passes_more_debt_than_its_flash_loan_covers``)."""
    pair = inp.pairs.get(pair_key(collateral.asset, debt.asset))
    hf = account(inp, p).health_factor
    factor = 5_000 if hf > CLOSE_FACTOR_HF_THRESHOLD else 10_000
    most = percent_mul(variable_debt(p, debt), factor)  # the capped branch may need all of it
    best = None
    for cover in range(1, most + 1):
        a = liquidation_amounts(
            health_factor=hf,
            collateral_reserve=collateral,
            debt_reserve=debt,
            user_collateral=p.reserves[collateral.id],
            user_debt=p.reserves[debt.id],
            user_emode=p.emode,
            emode_categories=inp.market.emode_categories,
            debt_to_cover=cover,
            ts=TS,
            emode_prices=inp.emode_prices,
        )
        out = a.collateral_to_liquidate
        if pair is not None:
            out = pair.amount_out(collateral.asset, out)
            if out == 0:
                continue
        flash = a.actual_debt_to_liquidate
        if flash != cover and inp.rules is CloseFactorRules.V3_0:
            continue
        profit = out - flash - percent_mul(flash, inp.flash_premium_bps)
        best = profit if best is None else max(best, profit)
    return best


def small_market(rng: random.Random) -> tuple[MarketState, ReserveState, ReserveState]:
    """Two reserves with tiny units, so that every debtToCover can be tried."""
    c_dec, d_dec = rng.randint(0, 3), rng.randint(0, 3)
    collateral = dataclasses.replace(
        reserve(0, c_dec, rng.randint(10**7, 10**9), 8_000, rng.choice([10_500, 11_000]), 1_000),
    )
    collateral = dataclasses.replace(
        collateral,
        config=dataclasses.replace(
            collateral.config, liquidation_protocol_fee=rng.choice([0, 1_000, 3_000])
        ),
    )
    debt = reserve(1, d_dec, rng.randint(10**7, 10**9), 8_000, 10_500, 0)
    market = MarketState(1, {0: collateral, 1: debt}, {}, {})
    return market, collateral, debt


def small_liquidatable(rng: random.Random) -> tuple[StrategyInput, UserPosition]:
    """A tiny position below HF 1 and a shallow pair: every debtToCover can be tried."""
    while True:
        market, collateral, debt = small_market(rng)
        debt_units = rng.randint(100, 3_000)
        value = debt_units * debt.price * 10**collateral.config.decimals
        collateral_units = value // (collateral.price * 10**debt.config.decimals)
        collateral_units = collateral_units * rng.randint(900, 1_240) // 1_000 + 1
        p = UserPosition(0, {0: supply(collateral, collateral_units), 1: borrow(debt, debt_units)})
        depth = rng.randint(collateral_units // 4 + 1, collateral_units * 40 + 10)
        fair = (
            depth
            * collateral.price
            * 10**debt.config.decimals
            // (debt.price * 10**collateral.config.decimals)
        )
        pair = PairQuote(
            "0xpair",
            collateral.asset,
            debt.asset,
            depth,
            fair * rng.randint(900, 1_100) // 1_000 + 1,
        )
        inp = make_input(
            {"u": p},
            market=market,
            pairs={pair_key(collateral.asset, debt.asset): pair},
            gas_price_wei=0,
            min_profit_base=-(10**30),
            flash_premium_bps=rng.choice([0, 5, 9, 500]),
        )
        if account(inp, p).health_factor < WAD:
            return inp, p


@pytest.mark.parametrize("seed", range(60))
def test_search_equals_brute_force_on_small_numbers(seed: int) -> None:
    inp, p = small_liquidatable(random.Random(seed))
    collateral, debt = inp.market.reserves[0], inp.market.reserves[1]
    expected = brute_force_best(inp, p, collateral, debt)
    plans = DefaultStrategy(two_steps=False).plan(inp)
    if expected is None or expected <= 0:
        # Nothing to earn: rounding dominates and the profit is not unimodal at this
        # scale; no plan may claim a profit.
        assert all(plan.profit <= 0 for plan in plans)
        return
    (plan,) = plans
    replay(inp, p, plan)
    assert plan.profit == expected


LARGE_CASES = [(WETH, DAI, 0), (WBTC, USDC, 0), (WETH, USDC, 0), (USDC, DAI, 1), (DAI, WBTC, 0)]


@pytest.mark.parametrize("seed", range(15))
def test_search_on_large_numbers_beats_a_fine_grid(seed: int) -> None:
    rng = random.Random(1_000 + seed)
    collateral, debt, emode = LARGE_CASES[seed % len(LARGE_CASES)]
    threshold = STABLES.liquidation_threshold if emode else collateral.config.liquidation_threshold
    value = rng.uniform(20_000, 10_000_000)  # USD of collateral
    hf = rng.uniform(0.96, 0.995)
    c_amount = value * USD / collateral.price
    d_amount = value * threshold / 10_000 / hf * USD / debt.price
    p = position({collateral: c_amount}, {debt: d_amount}, emode=emode)
    # Shallow pools make the optimum interior (price impact), deep ones the close factor.
    depth = rng.choice([300_000, 2_000_000, 50_000_000])
    inp = make_input({"u": p}, pairs=deep_pairs(depth))
    plans = plan_all(inp, two_steps=False)
    most = max_amounts(inp, p, collateral, debt).actual_debt_to_liquidate
    pair = inp.pairs[pair_key(collateral.asset, debt.asset)]
    hf_now = account(inp, p).health_factor

    def profit(cover: int) -> int:
        a = liquidation_amounts(
            health_factor=hf_now,
            collateral_reserve=collateral,
            debt_reserve=debt,
            user_collateral=p.reserves[collateral.id],
            user_debt=p.reserves[debt.id],
            user_emode=emode,
            emode_categories=MARKET.emode_categories,
            debt_to_cover=cover,
            ts=TS,
        )
        out = pair.amount_out(collateral.asset, a.collateral_to_liquidate)
        return out - a.actual_debt_to_liquidate - percent_mul(a.actual_debt_to_liquidate, 5)

    grid = [most * i // 4_000 for i in range(1, 4_001)]
    best_grid = max(grid, key=profit)
    near = [max(1, best_grid + most * i // 400_000) for i in range(-200, 201)]
    best = max(profit(c) for c in [*grid, *near] if c <= most)
    gas = inp.gas_cost_base(inp.gas_units(1))
    if not plans:  # nothing worth it: 1% e-mode bonus into a shallow pool, say
        assert best * debt.price // 10**debt.config.decimals - gas < 0
        return
    (plan,) = plans
    # Within 1e-9, or within the rounding noise bound of the search (a few units of a
    # coarse debt asset: satoshis, micro-USDC), whichever is larger.
    t = build_terms(
        market=MARKET,
        position=p,
        account=account(inp, p),
        collateral_id=collateral.id,
        debt_id=debt.id,
        ts=TS,
        rules=CloseFactorRules.V3_0,
        emode_prices=None,
    )
    assert t is not None
    noise = profit_noise(t, pair.reserves_for(collateral.asset))
    assert noise is not None and 5 * noise * debt.price // 10**debt.config.decimals < USD // 20
    assert plan.profit >= best - max(best // 10**9, 5 * noise)


# --- two calls in one transaction -----------------------------------------------------------


@pytest.mark.parametrize("hf", [0.96, 0.975])
def test_two_step_plan_when_still_liquidatable(hf: float) -> None:
    # Two debts: 50% of one of them leaves the user below HF 1 (at 0.975 only if the
    # first call repays less than it may).
    dai = usdc = 100 * 2_000 * 0.83 / hf / 2
    p = position({WETH: 100}, {DAI: dai, USDC: usdc})
    inp = make_input({"hank": p})
    plan = only_plan(inp)
    single = only_plan(inp, two_steps=False)
    assert len(plan.steps) == 2 and len(single.steps) == 1
    assert plan.net_profit_base > single.net_profit_base
    collateral = inp.market.by_asset(plan.steps[0].collateral_asset)
    debt = inp.market.by_asset(plan.debt_asset)
    # Step 2 equals liquidation_amounts on the position updated by hand after step 1.
    first, second = plan.steps
    hf0 = account(inp, p).health_factor
    a1 = max_amounts(inp, p, collateral, debt) if hf == 0.96 else None
    if a1 is not None:
        assert first.collateral_seized == a1.collateral_to_liquidate
    repaid1 = first.debt_to_cover
    moved = hand_update(p, collateral, debt, repaid1, first)
    hf1 = account(inp, moved).health_factor
    assert hf0 < hf1 < WAD
    ref2 = liquidation_amounts(
        health_factor=hf1,
        collateral_reserve=collateral,
        debt_reserve=debt,
        user_collateral=moved.reserves[collateral.id],
        user_debt=moved.reserves[debt.id],
        user_emode=0,
        emode_categories=MARKET.emode_categories,
        debt_to_cover=second.debt_to_cover,
        ts=TS,
    )
    assert ref2 == (second.debt_to_cover, second.collateral_seized, second.protocol_fee)
    # One swap for both calls' collateral.
    assert plan.swaps[0].amount_in == first.collateral_seized + second.collateral_seized


def test_two_step_not_kept_when_it_does_not_pay() -> None:
    dai = usdc = 100 * 2_000 * 0.83 / 0.96 / 2
    p = position({WETH: 100}, {DAI: dai, USDC: usdc})
    # Gas so expensive that the second call's extra gas exceeds what it earns.
    inp = make_input({"hank": p}, gas_price_wei=10**14, gas_units_base=0, min_profit_base=-(10**30))
    assert len(only_plan(inp).steps) == 1


# --- v3.3 rules -----------------------------------------------------------------------------


def test_v33_full_liquidation_below_2000_usd() -> None:
    p = position({WETH: 1}, {DAI: 1_700})  # HF ~0.976, debt < $2,000
    v30 = only_plan(make_input({"ivy": p}, gas_price_wei=10**9))
    inp = make_input({"ivy": p}, gas_price_wei=10**9, rules=CloseFactorRules.V3_3)
    v33 = only_plan(inp)
    full = variable_debt(p, DAI)
    assert sum(s.debt_to_cover for s in v30.steps) <= full // 2 + 1 or len(v30.steps) == 2
    (step,) = v33.steps
    assert step.debt_to_cover == full == v33.flash_amount
    assert v33.profit > v30.profit


def test_v33_dust_leftover_is_avoided() -> None:
    # HF in (0.95, 1), both reserves above $2,000: one call may repay up to half the
    # *total* debt in DAI, which would leave < $1,000 of WETH collateral.
    p = position({WETH: 1.05, WBTC: 0.0625}, {DAI: 3_100, USDC: 630})
    inp = make_input({"jack": p}, gas_price_wei=10**9, rules=CloseFactorRules.V3_3)
    assert CLOSE_FACTOR_HF_THRESHOLD < account(inp, p).health_factor < WAD
    # One call: stops exactly at the dust bound (replay() checks the rule on every step).
    single = only_plan(inp, two_steps=False)
    (step,) = single.steps
    collateral = inp.market.by_asset(step.collateral_asset)
    debt = inp.market.by_asset(step.debt_asset)
    balance = ray_mul(p.reserves[collateral.id].scaled_atoken, normalized_income(collateral, TS))
    left = (balance - step.collateral_seized) * collateral.price // 10**collateral.config.decimals
    assert step.debt_to_cover < v33_cap(inp, p, collateral, debt)
    assert 1_000 * USD <= left < 1_001 * USD
    # Two calls do better: a small first call keeps HF < 1 and brings the WETH reserve
    # under $2,000, so the second may repay 100% and take all of it (the capped branch).
    plan = only_plan(inp)
    assert plan.net_profit_base > single.net_profit_base
    first, second = plan.steps
    assert first.collateral_asset == WETH.asset
    after_first = hand_update(p, WETH, debt, first.debt_to_cover, first)
    left = ray_mul(after_first.reserves[WETH.id].scaled_atoken, normalized_income(WETH, TS))
    # All of it (the treasury's share may be clamped 1 wei below the balance).
    assert left - 1 <= second.collateral_seized + second.protocol_fee <= left
    done = hand_update(after_first, WETH, debt, plan.flash_amount - first.debt_to_cover, second)
    assert done.reserves[WETH.id].scaled_atoken == 0


def test_v33_full_close_factor_cannot_leave_wei_of_debt() -> None:
    # HF <= 0.95: both versions allow 100%. v3.0 may stop a few wei short of the whole
    # debt when rounding favours it; v3.3 must then leave >= $1,000 or repay it all.
    p = weth_dai(0.9)
    a = only_plan(make_input({"kim": p}))
    b = only_plan(make_input({"kim": p}, rules=CloseFactorRules.V3_3))
    assert len(b.steps) == 1
    left = variable_debt(p, DAI) - b.flash_amount
    assert left == 0 or left * DAI.price // 10**18 >= 1_000 * USD
    assert b.profit <= a.profit
    assert b.profit >= a.profit - a.profit // 10**6


# --- a devnet-sized round -------------------------------------------------------------------


def random_book(seed: int, users: int) -> dict[str, UserPosition]:
    rng = random.Random(seed)
    book = {}
    for i in range(users):
        eth, btc = rng.uniform(1, 200), rng.uniform(0.1, 10)
        collateral_value = eth * 2_000 * 0.83 + btc * 40_000 * 0.78
        debt_value = collateral_value / rng.uniform(0.85, 0.999)
        share = rng.uniform(0.2, 0.8)
        book[f"0x{i:040x}"] = position(
            {WETH: eth, WBTC: btc}, {USDC: debt_value * share, DAI: debt_value * (1 - share)}
        )
    return book


def test_fifty_users_every_plan_replays_exactly() -> None:
    inp = make_input(random_book(7, 50))
    plans = plan_all(inp)
    assert len(plans) > 40
    assert any(len(p.steps) == 2 for p in plans)
    assert len({p.user for p in plans}) == len(plans)


@pytest.mark.parametrize("seed", range(3))
def test_pruning_never_changes_the_plans(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upper bounds only skip work: with them disabled the plans are identical."""
    inp = make_input(random_book(seed, 25), gas_price_wei=10**9 * (1 + 40 * seed))
    pruned = DefaultStrategy().plan(inp)
    original = default_module._extension_bound

    def unbounded(*args: Any) -> int | None:
        return None if original(*args) is None else 10**80

    monkeypatch.setattr(DefaultStrategy, "_net_bound", lambda self, pair, t: 10**80)
    monkeypatch.setattr(default_module, "_extension_bound", unbounded)
    assert DefaultStrategy().plan(inp) == pruned


def test_no_plan_passes_more_debt_than_its_flash_loan_covers() -> None:
    # Deep under water: most plans take the whole collateral (the capped branch), where
    # the pool takes less than a debtToCover that is not its own recomputed amount. Had
    # the balance grown by a unit at inclusion (another transaction's flash premium
    # raising the liquidity index), it would take more, and pull more than was borrowed.
    rng = random.Random(7)
    users, btc = {}, {}
    for i in range(60):
        btc[f"u{i}"] = rng.uniform(0.01, 5)
        debt = btc[f"u{i}"] * 40_000 * rng.uniform(0.9, 1.2)
        users[f"u{i}"] = position({WBTC: btc[f"u{i}"]}, {DAI: debt})
    plans = DefaultStrategy().plan(make_input(users))
    whole = 0
    for plan in plans:
        assert sum(s.debt_to_cover for s in plan.steps) == plan.flash_amount, plan
        seized = sum(s.collateral_seized + s.protocol_fee for s in plan.steps)
        whole += seized >= units(WBTC, btc[plan.user]) * 9_999 // 10_000
    assert len(plans) >= 40 and whole >= 10, (len(plans), whole)
