"""Keep plans: repaying from the owner's inventory and keeping the collateral unsold.

Each keep plan is replayed independently: its one step through
``health.liquidation_amounts`` at the largest amount the pool (and the inventory)
allows, its value from the oracle prices.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from test_strategy import (
    DAI,
    USDC,
    WAD,
    WBTC,
    WETH,
    account,
    deep_pairs,
    hand_update,
    make_input,
    max_amounts,
    position,
    random_book,
    reference,
    replay,
    weth_dai,
)

import strategies.default as default_module
from bot.adapters.aave_v3.state import UserPosition
from bot.api import LiquidationPlan
from bot.execution.sequencing import PlanSequence
from strategies.aave_liquidation import Indexes, build_terms
from strategies.api import InventoryUse, PairQuote, StrategyInput
from strategies.default import DefaultStrategy

PLENTY = {r.asset.lower(): 10**40 for r in (WETH, WBTC, USDC, DAI)}


def shallow() -> dict[frozenset[str], PairQuote]:
    """$20,000 a side: selling a big seizure there does not pay."""
    return deep_pairs(20_000)


def replay_keep(inp: StrategyInput, plan: LiquidationPlan) -> None:
    p = inp.positions[plan.user]
    collateral = inp.market.by_asset(plan.steps[0].collateral_asset)
    debt = inp.market.by_asset(plan.debt_asset)
    assert collateral.id != debt.id
    repaid = seized = 0
    for step in plan.steps:
        assert (step.collateral_asset, step.debt_asset) == (collateral.asset, debt.asset)
        hf = account(inp, p).health_factor
        assert hf < WAD
        ref = reference(inp, p, collateral, debt, hf, step.debt_to_cover)
        # Taken as passed: the owner hands over exactly what the pool pulls.
        assert ref.actual_debt_to_liquidate == step.debt_to_cover
        assert ref.collateral_to_liquidate == step.collateral_seized
        repaid += step.debt_to_cover
        seized += step.collateral_seized
        p = hand_update(p, collateral, debt, step.debt_to_cover, step)
    assert plan.flash_amount == repaid and plan.profit == seized
    assert plan.keep and plan.swaps == () and plan.flash_premium == 0
    assert plan.profit_asset == collateral.asset
    uc, ud = 10**collateral.config.decimals, 10**debt.config.decimals
    value = seized * collateral.price // uc - repaid * debt.price // ud
    assert plan.profit_base == plan.bonus_base == value > 0
    assert plan.swap_cost_base == plan.flash_premium_base == 0
    steps = len(plan.steps)
    assert plan.gas_units == inp.gas_units_keep_base + inp.gas_units_per_step * steps
    assert plan.gas_cost_base == plan.gas_units * inp.gas_price_wei * inp.native_price_base // WAD
    assert plan.net_profit_base == value - plan.gas_cost_base >= inp.min_profit_base
    assert plan.flash_amount <= inp.inventory_of(plan.debt_asset)


def test_fallback_keeps_the_collateral_only_where_no_sale_pays() -> None:
    positions = {"a": weth_dai(0.97, eth=100)}
    # Selling 50 ETH into a $20,000 pool loses most of it: no flash plan.
    off = make_input(positions, pairs=shallow(), inventory=PLENTY)
    assert DefaultStrategy().plan(off) == []
    inp = dataclasses.replace(off, inventory_use=InventoryUse.FALLBACK)
    # One call: the most the pool lets it repay, half the debt (HF > 0.95).
    (one,) = DefaultStrategy(two_steps=False).plan(inp)
    replay_keep(inp, one)
    most = max_amounts(inp, positions["a"], WETH, DAI)
    assert one.flash_amount == most.actual_debt_to_liquidate
    # Two calls, the first leaving the user liquidatable, repay more and keep more.
    (plan,) = DefaultStrategy().plan(inp)
    replay_keep(inp, plan)
    assert len(plan.steps) == 2 and plan.net_profit_base > one.net_profit_base
    # Deep pools: the sale pays, and fallback leaves it be.
    deep = dataclasses.replace(inp, pairs=deep_pairs())
    (sold,) = DefaultStrategy().plan(deep)
    assert not sold.keep and sold.swaps
    replay(deep, positions["a"], sold)


def test_best_takes_whichever_nets_more() -> None:
    positions = {"a": weth_dai(0.97, eth=100)}
    flash = make_input(positions, inventory=PLENTY)
    (sold,) = DefaultStrategy().plan(flash)
    best = dataclasses.replace(flash, inventory_use=InventoryUse.BEST)
    (kept,) = DefaultStrategy().plan(best)
    replay_keep(best, kept)
    # No swap cost, no premium, less gas: keeping nets more at the oracle's prices.
    assert kept.net_profit_base > sold.net_profit_base
    # ...unless gas for the keep transaction costs more than what the sale loses.
    unit_cost = best.gas_price_wei * best.native_price_base // WAD  # base units a gas unit
    extra = (kept.net_profit_base - sold.net_profit_base) // unit_cost + 1
    dear = dataclasses.replace(best, gas_units_keep_base=best.gas_units_keep_base + extra)
    assert DefaultStrategy().plan(dear) == [sold]
    cheaper = dataclasses.replace(dear, gas_units_keep_base=dear.gas_units_keep_base - 2)
    assert [p.keep for p in DefaultStrategy().plan(cheaper)] == [True]


def test_the_inventory_caps_what_a_keep_plan_repays() -> None:
    p = weth_dai(0.97, eth=100)
    most = max_amounts(make_input({"a": p}), p, WETH, DAI).actual_debt_to_liquidate
    base = make_input({"a": p}, pairs=shallow(), inventory_use=InventoryUse.FALLBACK)
    half = dataclasses.replace(base, inventory={DAI.asset.lower(): most // 2})
    (plan,) = DefaultStrategy().plan(half)
    replay_keep(half, plan)
    assert plan.flash_amount == most // 2
    # None of the debt asset, or only of others: no keep plan.
    assert DefaultStrategy().plan(dataclasses.replace(base, inventory={})) == []
    others = {USDC.asset.lower(): 10**30, WETH.asset.lower(): 10**30}
    assert DefaultStrategy().plan(dataclasses.replace(base, inventory=others)) == []
    # Off: inventory alone changes nothing.
    off = dataclasses.replace(base, inventory=PLENTY, inventory_use=InventoryUse.OFF)
    assert DefaultStrategy().plan(off) == []


def test_a_keep_plan_takes_the_pair_worth_most() -> None:
    # WETH and WBTC collateral, DAI and USDC debt: the keep plan is the pair whose
    # bonus is worth most, and no pair it could take is worth more.
    p = position({WETH: 50, WBTC: 5}, {USDC: 130_000, DAI: 116_000})
    inp = make_input({"a": p}, pairs={}, inventory=PLENTY, inventory_use=InventoryUse.FALLBACK)
    assert account(inp, p).health_factor < WAD
    (plan,) = DefaultStrategy(two_steps=False).plan(inp)
    replay_keep(inp, plan)
    for c in (WETH, WBTC):
        for d in (USDC, DAI):
            a = max_amounts(inp, p, c, d)
            uc, ud = 10**c.config.decimals, 10**d.config.decimals
            value = a.collateral_to_liquidate * c.price // uc
            value -= a.actual_debt_to_liquidate * d.price // ud
            assert value <= plan.profit_base


def mixed_book() -> dict[str, UserPosition]:
    """20 users with WETH and WBTC collateral, 20 with WBTC alone (no pool sells it in
    these tests: only keep plans can take them)."""
    book = random_book(11, 20)
    rng = random.Random(12)
    for i in range(20):
        btc = rng.uniform(0.1, 10)
        dai = btc * 40_000 * 0.78 / rng.uniform(0.85, 0.999)
        book[f"0x{i + 100:040x}"] = position({WBTC: btc}, {DAI: dai})
    return book


@pytest.mark.parametrize("use", [InventoryUse.FALLBACK, InventoryUse.BEST])
def test_lazy_order_is_each_users_own_plan_sorted(use: InventoryUse) -> None:
    book = mixed_book()
    inp = make_input(
        book,
        pairs=deep_pairs(50_000_000, (WETH, USDC, DAI)),
        inventory={DAI.asset.lower(): 10**22},  # 10,000 DAI: it caps the larger users
        inventory_use=use,
    )
    plans = DefaultStrategy().plan(inp)
    assert len(plans) == 40 and 0 < sum(p.keep for p in plans) < 40
    alone = [
        plan
        for user, p in book.items()
        for plan in DefaultStrategy().plan(dataclasses.replace(inp, positions={user: p}))
    ]
    assert plans == sorted(alone, key=lambda x: (-x.net_profit_base, x.user))
    for plan in plans:
        if plan.keep:
            replay_keep(inp, plan)
        else:
            replay(inp, book[plan.user], plan)


def test_a_sequence_replans_keep_plans_the_inventory_no_longer_covers() -> None:
    positions = {"a": weth_dai(0.97, eth=100), "b": weth_dai(0.97, eth=90)}
    first = max_amounts(make_input(positions), positions["a"], WETH, DAI)
    stock = first.actual_debt_to_liquidate * 3 // 2  # a's repayment, and half of b's
    inp = make_input(
        positions,
        pairs=shallow(),
        inventory={DAI.asset.lower(): stock},
        inventory_use=InventoryUse.FALLBACK,
    )
    # Alone, each user's keep plan fits the stock.
    assert [p.user for p in DefaultStrategy(two_steps=False).plan(inp)] == ["a", "b"]
    one_call = DefaultStrategy(two_steps=False)
    a, b = PlanSequence(one_call, inp).take(2)
    assert (a.user, b.user) == ("a", "b") and a.keep and b.keep
    assert a.flash_amount == first.actual_debt_to_liquidate
    # b was planned again with what a left.
    assert b.flash_amount == stock - a.flash_amount
    replay_keep(dataclasses.replace(inp, inventory={DAI.asset.lower(): b.flash_amount}), b)
    # An unmined keep transaction (``spend``) leaves the stock to the next plans too.
    seq = PlanSequence(one_call, inp)
    seq.spend(a)
    (only,) = seq.take(2)
    assert only.user == "a" and only.flash_amount == stock - a.flash_amount


@pytest.mark.parametrize("use", [InventoryUse.FALLBACK, InventoryUse.BEST])
@pytest.mark.parametrize("stock", [10**21, 10**40])
def test_keep_bounds_only_skip_work(
    use: InventoryUse, stock: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the keep bounds disabled every user and pair is priced: the same plans."""
    inp = make_input(
        mixed_book(),
        pairs=deep_pairs(2_000_000, (WETH, USDC, DAI)),
        inventory={DAI.asset.lower(): stock, USDC.asset.lower(): stock},
        inventory_use=use,
        emode_prices=None,
    )
    bounded = DefaultStrategy().plan(inp)
    assert any(p.keep and len(p.steps) == 2 for p in bounded) or stock < 10**30
    monkeypatch.setattr(default_module, "_keep_bound", lambda t, cap: 10**80)
    assert DefaultStrategy().plan(inp) == bounded


def test_every_keep_plan_is_within_its_bound() -> None:
    inp = make_input(
        mixed_book(),
        pairs={},
        inventory={DAI.asset.lower(): 10**40, USDC.asset.lower(): 10**40},
        inventory_use=InventoryUse.BEST,
    )
    plans = DefaultStrategy().plan(inp)
    assert len(plans) == 40
    for plan in plans:
        p = inp.positions[plan.user]
        t = build_terms(
            market=inp.market,
            position=p,
            account=account(inp, p),
            collateral_id=inp.market.by_asset(plan.steps[0].collateral_asset).id,
            debt_id=inp.market.by_asset(plan.debt_asset).id,
            ts=inp.ts,
            rules=inp.rules,
            emode_prices=inp.emode_prices,
            indexes=Indexes(inp.ts),
        )
        assert t is not None
        bound = default_module._keep_bound(t, 10**40)
        assert plan.profit_base <= bound
