"""Order one block's plans so that each is priced against the pools the earlier ones leave.

Transactions sent at one head land in the same block, one after another: a plan that
sells WETH into the WETH/USDC pool makes the next WETH/USDC sale worse. The strategy
prices every plan against the same pool snapshot, so once a plan is actually sent
(``commit``) its swaps are applied to the snapshot and the users whose plans used those
pools are planned again. A plan that is not sent (its simulation failed) changes
nothing. Plans on untouched pools stay valid: their alternatives only got worse.
"""

from __future__ import annotations

from dataclasses import replace

from bot.api import LiquidationPlan, SwapLeg
from strategies.api import PairQuote, Strategy, StrategyInput


def _key(leg: SwapLeg) -> frozenset[str]:
    return frozenset((leg.token_in.lower(), leg.token_out.lower()))


def _after_swap(quote: PairQuote, leg: SwapLeg) -> PairQuote:
    if leg.token_in.lower() == quote.token0.lower():
        return replace(
            quote, reserve0=quote.reserve0 + leg.amount_in, reserve1=quote.reserve1 - leg.amount_out
        )
    return replace(
        quote, reserve0=quote.reserve0 - leg.amount_out, reserve1=quote.reserve1 + leg.amount_in
    )


def _rank(plan: LiquidationPlan) -> tuple[int, str]:
    return (-plan.net_profit_base, plan.user.lower())


class PlanSequence:
    """``next()`` the best remaining plan; ``commit`` it once sent, or just move on."""

    def __init__(self, strategy: Strategy, inp: StrategyInput) -> None:
        self.strategy = strategy
        self.inp = inp
        self.pairs = dict(inp.pairs)
        self._plans = sorted(strategy.plan(inp), key=_rank)

    def next(self) -> LiquidationPlan | None:
        return self._plans.pop(0) if self._plans else None

    def commit(self, plan: LiquidationPlan) -> None:
        """``plan`` will execute before the remaining ones: re-price those it affects."""
        touched = {_key(leg) for leg in plan.swaps}
        if not touched:
            return
        for leg in plan.swaps:
            self.pairs[_key(leg)] = _after_swap(self.pairs[_key(leg)], leg)
        stale = {p.user for p in self._plans if any(_key(leg) in touched for leg in p.swaps)}
        if not stale:
            return
        kept = [p for p in self._plans if p.user not in stale]
        again = replace(
            self.inp,
            positions={u: self.inp.positions[u] for u in stale},
            pairs=dict(self.pairs),
        )
        self._plans = sorted(kept + self.strategy.plan(again), key=_rank)
