"""``MorphoStrategy`` against brute force: on small random markets every seizure
``1..collateral`` is tried with ``math.liquidate`` and the pair's exact output, and the
strategy's choice must reach the best profit exactly; every plan figure is re-derived here.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bot.adapters.morpho_blue.math import (
    ORACLE_PRICE_SCALE,
    WAD,
    MorphoRevert,
    borrowed_assets,
    is_healthy,
    liquidate,
    liquidation_incentive_factor,
    max_borrow,
    w_div_down,
)
from bot.adapters.morpho_blue.types import Market, MarketParams, Position
from bot.api import LiquidationPlan
from bot.execution.sequencing import PlanSequence
from strategies import (
    MorphoMarketView,
    MorphoStrategy,
    MorphoStrategyInput,
    MorphoTarget,
    PairQuote,
    pair_key,
    position_key,
)
from strategies.api import Strategy
from strategies.morpho import MORPHO_LIQUIDATION_GAS, profit_noise

TS = 1_700_000_000
LOAN = "0x" + "11" * 20
COLL = "0x" + "22" * 20
COLL2 = "0x" + "33" * 20
ORACLE = "0x" + "44" * 20
IRM = "0x" + "55" * 20
PAIR = "0x" + "66" * 20
PAIR2 = "0x" + "77" * 20
LLTVS = (770_000_000_000_000_000, 860_000_000_000_000_000, 915_000_000_000_000_000)
LOAN_PRICE = 100_000_000  # $1, 8 decimals
LOAN_DECIMALS = 6


def params(lltv: int, collateral: str = COLL) -> MarketParams:
    return MarketParams(LOAN, collateral, ORACLE, IRM, lltv)


def view(p: MarketParams, market: Market, price: int) -> MorphoMarketView:
    return MorphoMarketView(p.id, p, replace(market, last_update=TS), price)


def quote(collateral_reserve: int, loan_reserve: int, collateral: str = COLL) -> PairQuote:
    # token0 is the lower address, as in Uniswap.
    if collateral.lower() < LOAN.lower():
        return PairQuote(PAIR, collateral, LOAN, collateral_reserve, loan_reserve)
    return PairQuote(PAIR, LOAN, collateral, loan_reserve, collateral_reserve)


def make_input(
    views: list[MorphoMarketView],
    targets: list[MorphoTarget],
    pairs: list[PairQuote],
    **kw: int,
) -> MorphoStrategyInput:
    kw.setdefault("gas_price_wei", 0)
    kw.setdefault("native_price_base", 0)
    return MorphoStrategyInput(
        markets={v.id: v for v in views},
        ts=TS,
        positions={position_key(t.market_id, t.borrower): t for t in targets},
        pairs={pair_key(q.token0, q.token1): q for q in pairs},
        base_prices={LOAN: LOAN_PRICE},
        decimals={LOAN: LOAN_DECIMALS},
        **kw,
    )


def brute_force(v: MorphoMarketView, pos: Position, pair: PairQuote) -> tuple[int, int] | None:
    """(best profit, smallest seizure reaching it) over every seizure that does not revert."""
    best: tuple[int, int] | None = None
    for seized in range(1, pos.collateral + 1):
        try:
            liq = liquidate(v.market, pos, v.price, v.params.lltv, seized_assets=seized)
        except MorphoRevert:
            continue
        out = pair.amount_out(v.params.collateral_token, seized)
        if out == 0:
            continue
        profit = out - liq.repaid_assets
        if best is None or profit > best[0]:
            best = (profit, seized)
    return best


def check_plan(inp: MorphoStrategyInput, plan: LiquidationPlan) -> None:
    """Every figure of ``plan`` from ``math.liquidate``, the pair and the input's prices."""
    target = inp.positions[plan.user]
    v = inp.markets[target.market_id]
    pos, lltv = target.position, v.params.lltv
    (step,) = plan.steps
    (swap,) = plan.swaps
    liq = liquidate(v.market, pos, v.price, lltv, seized_assets=step.collateral_seized)
    pair = inp.pairs[pair_key(v.params.collateral_token, v.params.loan_token)]
    out = pair.amount_out(v.params.collateral_token, step.collateral_seized)
    assert plan.protocol == "morpho-blue"
    assert plan.user == position_key(v.id, target.borrower)
    assert plan.debt_asset == v.params.loan_token
    assert plan.health_factor == w_div_down(
        max_borrow(pos, v.price, lltv), borrowed_assets(pos, v.market)
    )
    assert plan.health_factor < WAD
    assert (step.user, step.collateral_asset, step.debt_asset) == (
        target.borrower,
        v.params.collateral_token,
        v.params.loan_token,
    )
    assert step.debt_to_cover == liq.repaid_assets
    assert step.protocol_fee == 0
    assert step.bonus_bps == liquidation_incentive_factor(lltv) * 10_000 // WAD
    assert (swap.pair, swap.token_in, swap.token_out) == (
        pair.pair,
        v.params.collateral_token,
        v.params.loan_token,
    )
    assert (swap.amount_in, swap.amount_out) == (step.collateral_seized, out)
    assert (plan.flash_amount, plan.flash_premium, plan.flash_premium_base) == (0, 0, 0)
    assert plan.profit == out - liq.repaid_assets >= 0

    unit = 10**LOAN_DECIMALS

    def coll_base(x: int) -> int:
        return x * v.price * LOAN_PRICE // (ORACLE_PRICE_SCALE * unit)

    assert plan.profit_base == plan.profit * LOAN_PRICE // unit
    assert (
        plan.bonus_base
        == coll_base(step.collateral_seized) - liq.repaid_assets * LOAN_PRICE // unit
    )
    assert plan.swap_cost_base == coll_base(step.collateral_seized) - out * LOAN_PRICE // unit
    assert plan.protocol_fee_base == 0
    assert plan.gas_units == inp.gas_units
    assert plan.gas_price_wei == inp.gas_price_wei
    assert plan.gas_cost_base == inp.gas_units * inp.gas_price_wei * inp.native_price_base // 10**18
    assert plan.net_profit_base == plan.profit_base - plan.gas_cost_base


def random_case(
    rng: random.Random,
) -> tuple[MorphoMarketView, Position, PairQuote]:
    """A small market (at most ~1,500 collateral units, so brute force is quick) with an
    unhealthy or nearly unhealthy position and a pool from thin to deep."""
    lltv = rng.choice(LLTVS)
    # Loan units per collateral unit: from 1/20 to 40.
    price = int(ORACLE_PRICE_SCALE * rng.uniform(0.05, 40))
    collateral = rng.randint(1, 1_500)
    value = collateral * price // ORACLE_PRICE_SCALE  # loan units
    # Debt from just under the limit to twice the collateral's value (bad debt).
    debt = max(1, int(value * lltv / WAD * rng.uniform(0.97, 2.0)))
    # Shares per asset: 1e6 at the start, less after interest; sometimes far less.
    per_asset = rng.choice((10**6, rng.randint(10**5, 10**6), rng.randint(1, 50)))
    other_debt = rng.randint(0, 10 * debt + 10**4)
    tba = debt + other_debt
    tbs = tba * per_asset
    borrow_shares = debt * per_asset
    market = Market(
        total_supply_assets=tba + rng.randint(0, 10**6),
        total_supply_shares=10**12,
        total_borrow_assets=tba,
        total_borrow_shares=tbs,
        last_update=TS,
        fee=0,
    )
    # The pool: from a tenth of the position to 300 times it, priced near the oracle.
    coll_reserve = max(1, int(collateral * 10 ** rng.uniform(-1, 2.5)))
    loan_reserve = max(1, int(coll_reserve * price / ORACLE_PRICE_SCALE * rng.uniform(0.8, 1.25)))
    p = params(lltv)
    return (
        view(p, market, price),
        Position(borrow_shares=borrow_shares, collateral=collateral),
        quote(coll_reserve, loan_reserve),
    )


def target(
    v: MorphoMarketView, pos: Position, borrower: str = "0xAbC0000000000000000000000000000000000001"
) -> MorphoTarget:
    return MorphoTarget(v.id, borrower, pos)


@pytest.mark.parametrize("seed", range(8))
def test_chosen_seizure_is_the_brute_force_optimum(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(25):
        v, pos, pair = random_case(rng)
        inp = make_input([v], [target(v, pos)], [pair])
        plans = MorphoStrategy().plan(inp)
        if is_healthy(pos, v.market, v.price, v.params.lltv):
            assert plans == []
            continue
        best = brute_force(v, pos, pair)
        if best is None or best[0] < 0:
            assert plans == [], (best, plans)
            continue
        (plan,) = plans
        check_plan(inp, plan)
        assert plan.profit == best[0], (plan.steps[0].collateral_seized, best)
        checked += 1
    assert checked >= 8  # most cases are unhealthy and profitable: the search runs


def test_noise_bound_holds_on_random_markets() -> None:
    """A necessary condition of ``profit_noise``: with ``|f - g| <= noise`` for a concave
    ``g``, every second difference ``f(a) - 2f(m) + f(b)`` is at most ``4·noise``."""
    rng = random.Random(5)
    for _ in range(60):
        v, pos, pair = random_case(rng)
        if is_healthy(pos, v.market, v.price, v.params.lltv):
            continue
        noise = profit_noise(v.market)
        profits = {}
        for s in range(1, pos.collateral + 1):
            try:
                liq = liquidate(v.market, pos, v.price, v.params.lltv, seized_assets=s)
            except MorphoRevert:
                break
            out = pair.amount_out(COLL, s)
            if out:
                profits[s] = out - liq.repaid_assets
        xs = sorted(profits)
        for i in range(1, len(xs) - 1):
            a, m, b = xs[i - 1], xs[i], xs[i + 1]
            if b - m == m - a:
                assert profits[a] - 2 * profits[m] + profits[b] <= 4 * noise


def deep_under_water() -> tuple[MorphoMarketView, Position, PairQuote]:
    """Debt worth twice the collateral, a deep pool at the oracle price; a collateral unit
    is worth 2,000 loan units, so rounding does not blur the optimum."""
    p = params(LLTVS[1])
    price = 2_000 * ORACLE_PRICE_SCALE
    collateral = 1_000
    market = Market(10**12, 10**18, 10**11, 10**17, TS, 0)
    pos = Position(borrow_shares=4 * 10**6 * 10**6, collateral=collateral)
    return view(p, market, price), pos, quote(10**9, 2_000 * 10**9)


def test_bad_debt_takes_all_the_collateral() -> None:
    v, pos, pair = deep_under_water()
    inp = make_input([v], [target(v, pos)], [pair])
    (plan,) = MorphoStrategy().plan(inp)
    check_plan(inp, plan)
    assert plan.steps[0].collateral_seized == pos.collateral
    liq = liquidate(v.market, pos, v.price, v.params.lltv, seized_assets=pos.collateral)
    assert liq.bad_debt_shares > 0 and liq.position == Position()
    best = brute_force(v, pos, pair)
    assert best is not None and plan.profit == best[0]


def test_max_seizure_limited_by_the_debt() -> None:
    """Barely unhealthy with much collateral: the debt runs out long before it, and the
    deep pool makes the largest seizure the best."""
    p = params(LLTVS[0])
    price = 2_000 * ORACLE_PRICE_SCALE
    market = Market(10**12, 10**18, 10**11, 10**17, TS, 0)
    collateral = 1_300
    debt = max_borrow(Position(collateral=collateral), price, p.lltv) + 2
    pos = Position(borrow_shares=debt * 10**6, collateral=collateral)
    v = view(p, market, price)
    inp = make_input([v], [target(v, pos)], [quote(10**12, 2_000 * 10**12)])
    (plan,) = MorphoStrategy().plan(inp)
    check_plan(inp, plan)
    seized = plan.steps[0].collateral_seized
    assert seized < collateral
    with pytest.raises(MorphoRevert):
        liquidate(market, pos, price, p.lltv, seized_assets=seized + 1)
    assert plan.steps[0].debt_to_cover <= borrowed_assets(pos, market)


def test_healthy_and_unsellable_positions_get_no_plan() -> None:
    v, pos, pair = deep_under_water()
    limit = max_borrow(pos, v.price, v.params.lltv)
    # Exactly at the limit is healthy (Morpho requires borrowed > max borrow).
    at_limit = Position(borrow_shares=limit * 10**6, collateral=pos.collateral)
    assert borrowed_assets(at_limit, v.market) == limit
    over = replace(at_limit, borrow_shares=(limit + 1) * 10**6)
    assert len(MorphoStrategy().plan(make_input([v], [target(v, over)], [pair]))) == 1
    healthy = MorphoStrategy().plan(make_input([v], [target(v, at_limit)], [pair]))
    assert healthy == []
    # No pair, or an empty one.
    assert MorphoStrategy().plan(make_input([v], [target(v, pos)], [])) == []
    empty = replace(pair, reserve0=0)
    assert MorphoStrategy().plan(make_input([v], [target(v, pos)], [empty])) == []
    # A market the input does not hold, or a loan token without a base price.
    orphan = MorphoTarget("0x" + "99" * 32, "0x" + "01" * 20, pos)
    assert MorphoStrategy().plan(make_input([v], [orphan], [pair])) == []
    unpriced = replace(make_input([v], [target(v, pos)], [pair]), base_prices={})
    assert MorphoStrategy().plan(unpriced) == []
    # An oracle answering 0 (Morpho would hand the collateral over for nothing).
    broken = replace(v, price=0)
    assert MorphoStrategy().plan(make_input([broken], [target(broken, pos)], [pair])) == []


def test_unaccrued_market_is_refused() -> None:
    v, pos, pair = deep_under_water()
    stale = replace(v, market=replace(v.market, last_update=TS - 1))
    with pytest.raises(ValueError, match="accrued"):
        make_input([stale], [target(stale, pos)], [pair])


def test_gas_and_min_profit_filter() -> None:
    v, pos, pair = deep_under_water()
    free = make_input([v], [target(v, pos)], [pair])
    (plan,) = MorphoStrategy().plan(free)
    assert free.gas_units == MORPHO_LIQUIDATION_GAS
    gas_price, native = 10**7, 3_000 * 10**8
    cost = MORPHO_LIQUIDATION_GAS * gas_price * native // 10**18
    assert 0 < cost < plan.profit_base
    priced = replace(free, gas_price_wei=gas_price, native_price_base=native)
    (paid,) = MorphoStrategy().plan(priced)
    check_plan(priced, paid)
    assert (paid.gas_cost_base, paid.net_profit_base) == (cost, plan.profit_base - cost)
    assert paid.steps == plan.steps  # gas is per transaction: the best size is the same
    kept = replace(priced, min_profit_base=paid.net_profit_base)
    assert MorphoStrategy().plan(kept) == [paid]
    assert MorphoStrategy().plan(replace(kept, min_profit_base=paid.net_profit_base + 1)) == []
    # Gas above the profit: no plan at the default minimum of 0.
    costly = replace(priced, gas_units=10**9)
    assert MorphoStrategy().plan(costly) == []


def test_plans_are_ranked_best_first_ties_by_key() -> None:
    v, pos, pair = deep_under_water()
    small = replace(pos, collateral=400, borrow_shares=pos.borrow_shares * 2 // 5)
    borrowers = [f"0x{b:040x}" for b in (0xB2, 0xB1, 0xB3)]
    targets = [
        target(v, pos, borrowers[0]),
        target(v, pos, borrowers[1]),  # the same position: a tie, ordered by key
        target(v, small, borrowers[2]),
    ]
    inp = make_input([v], targets, [pair])
    plans = MorphoStrategy().plan(inp)
    assert [p.user for p in plans] == [
        position_key(v.id, borrowers[1]),
        position_key(v.id, borrowers[0]),
        position_key(v.id, borrowers[2]),
    ]
    assert plans[0].net_profit_base == plans[1].net_profit_base > plans[2].net_profit_base
    for plan in plans:
        check_plan(inp, plan)


def test_markets_with_different_collaterals() -> None:
    """Two markets, each position sold on its own pair."""
    v1, pos, pair1 = deep_under_water()
    p2 = params(LLTVS[2], COLL2)
    v2 = view(p2, v1.market, 1_000 * ORACLE_PRICE_SCALE)
    pair2 = replace(quote(10**9, 1_000 * 10**9, COLL2), pair=PAIR2)
    targets = [target(v1, pos, "0x" + "0a" * 20), target(v2, pos, "0x" + "0b" * 20)]
    inp = make_input([v1, v2], targets, [pair1, pair2])
    plans = MorphoStrategy().plan(inp)
    assert {p.swaps[0].pair for p in plans} == {PAIR, PAIR2}
    for plan in plans:
        check_plan(inp, plan)


def test_plan_sequence_replans_on_a_shared_pool() -> None:
    """``PlanSequence`` re-plans a Morpho position after an earlier plan moved its pool."""
    v, pos, _ = deep_under_water()
    thin = quote(200_000, 400_000_000)  # the first sale moves the price by ~1%
    targets = [target(v, pos, "0x" + "0a" * 20), target(v, pos, "0x" + "0b" * 20)]
    inp = make_input([v], targets, [thin])
    strategy = MorphoStrategy()
    assert isinstance(strategy, Strategy)
    first, second = PlanSequence(strategy, inp).take(2)
    moved = quote(200_000 + first.swaps[0].amount_in, 400_000_000 - first.swaps[0].amount_out)
    (again,) = strategy.plan(
        replace(
            inp,
            positions={second.user: inp.positions[second.user]},
            pairs={pair_key(COLL, LOAN): moved},
        )
    )
    assert second == again
    assert second.profit < first.profit
