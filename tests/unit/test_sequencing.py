"""Plans of one block are priced against the pools the plans sent before them leave."""

from __future__ import annotations

from dataclasses import replace

from test_strategy import DAI, WBTC, WETH, deep_pairs, make_input, position, weth_dai

from bot.execution.sequencing import PlanSequence
from strategies.api import pair_key
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
