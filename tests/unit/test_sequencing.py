"""Plans of one block are priced against the pools the plans sent before them leave."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from test_strategy import DAI, WBTC, WETH, deep_pairs, make_input, position, weth_dai

from bot.api import LiquidationPlan
from bot.execution.sequencing import PlanSequence
from strategies.api import best_first, pair_key
from strategies.default import DefaultStrategy


def test_committed_swaps_reprice_the_plans_on_the_same_pool() -> None:
    pairs = deep_pairs()
    users = {
        "a": weth_dai(0.97, eth=400),
        "b": weth_dai(0.97, eth=300),
        "c": position({WBTC: 1}, {DAI: 40_000 * 0.78 / 0.97}),  # another pool
    }
    inp = make_input(users, pairs=pairs)
    strategy = DefaultStrategy()
    before = {p.user: p for p in strategy.plan(inp)}
    seq = PlanSequence(strategy, inp)
    first = seq.next()
    assert first is not None and first.user == "a"  # the biggest WETH/DAI liquidation
    seq.commit(first)
    rest = []
    while (plan := seq.next()) is not None:
        rest.append(plan)
    after = {p.user: p for p in rest}
    # b sells WETH into the pool a just sold into: exactly what the strategy makes of b
    # against the pool a leaves, and less than against the untouched pool.
    key = pair_key(WETH.asset, DAI.asset)
    (leg,) = first.swaps
    quote = pairs[key]
    assert quote.token0 == WETH.asset == leg.token_in
    moved = replace(
        quote,
        reserve0=quote.reserve0 + leg.amount_in,
        reserve1=quote.reserve1 - leg.amount_out,
    )
    expected = strategy.plan(replace(inp, positions={"b": users["b"]}, pairs={**pairs, key: moved}))
    assert after["b"] == expected[0]
    assert after["b"].profit < before["b"].profit
    # c uses the WBTC/DAI pool: untouched, unchanged.
    assert after["c"] == before["c"]


def test_a_plan_not_sent_changes_nothing() -> None:
    inp = make_input({"a": weth_dai(0.97, eth=400), "b": weth_dai(0.97, eth=300)})
    strategy = DefaultStrategy()
    before = {p.user: p for p in strategy.plan(inp)}
    seq = PlanSequence(strategy, inp)
    assert seq.next() == before["a"]  # not committed: its simulation failed, say
    assert seq.next() == before["b"]
    assert seq.next() is None


class _Counting(DefaultStrategy):
    """DefaultStrategy that counts the users it prices."""

    def __init__(self) -> None:
        super().__init__()
        self.priced = 0

    def _price(self, round_: Any, prepared: Any) -> LiquidationPlan | None:
        self.priced += 1
        return super()._price(round_, prepared)


def test_taking_k_plans_that_share_a_pool_prices_about_k_users_again() -> None:
    # A crash: 40 positions all selling WETH into the same WETH/DAI pool. Each plan taken
    # moves the pool under every other one.
    users = {f"u{i:02d}": weth_dai(0.97, eth=20 + i) for i in range(40)}
    inp = make_input(users, pairs=deep_pairs())
    strategy = _Counting()
    seq = PlanSequence(strategy, inp)
    assert strategy.priced == 0  # nothing is priced before it is asked for
    taken = seq.take(10)
    assert len(taken) == 10
    # Each user at most once against the head's pools (users this alike all have to be:
    # their profit bounds overlap), then one re-pricing per plan handed out after the
    # first (the exact best-first order re-priced every stale plan above the next one:
    # 100 for these 10).
    assert strategy.priced - 40 <= 10, strategy.priced - 40
    # Each plan is exactly what the strategy makes of it against the pool the earlier
    # ones leave, and the pool keeps falling, so every plan pays less than before.
    key = pair_key(WETH.asset, DAI.asset)
    pool = inp.pairs[key]
    for plan in taken:
        alone = replace(
            inp, positions={plan.user: users[plan.user]}, pairs={**inp.pairs, key: pool}
        )
        assert DefaultStrategy().plan(alone) == [plan]
        (leg,) = plan.swaps
        pool = replace(
            pool, reserve0=pool.reserve0 + leg.amount_in, reserve1=pool.reserve1 - leg.amount_out
        )


def test_the_first_plans_of_a_crash_are_priced_before_the_last_user() -> None:
    # 300 positions of sizes spread over three decades, as a market's are.
    rng = random.Random(7)
    users = {f"u{i:03d}": weth_dai(0.97, eth=round(10 ** rng.uniform(0, 3), 3)) for i in range(300)}
    inp = make_input(users, pairs=deep_pairs())
    strategy = _Counting()
    lazy = best_first(strategy, inp)
    first = [next(lazy) for _ in range(8)]
    # Users whose profit bound cannot beat the eighth plan are not priced for it.
    assert strategy.priced < 300 // 2, strategy.priced
    # The same plans, in the same order, as pricing every user first.
    rest = list(lazy)
    assert strategy.priced == 300
    assert first + rest == DefaultStrategy().plan(inp)
