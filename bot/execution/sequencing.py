"""Order one block's plans so that each is priced against the pools the earlier ones leave.

Transactions sent at one head land in the same block, one after another: a plan that
sells WETH into the WETH/USDC pool makes the next WETH/USDC sale worse. The strategy
prices every plan against the same pool snapshot; once a plan is taken (``commit``) its
swaps are applied to the snapshot, and a plan that used one of those pools is planned
again before it is handed out. A strategy with a ``committed(inp, plan)`` method also
gets to apply the plan to the protocol state in its input (Morpho Blue: the market's
totals). A taken ``keep`` plan spends the owner's inventory of its debt asset (an
input's ``inventory``): a keep plan it no longer covers is planned again. A plan that is
not taken changes nothing.

Re-planning is lazy: a stale plan is re-priced only when it reaches the front, and handed
out unless an up-to-date plan beats it; a stale plan's old profit is only an estimate.
Taking k plans out of n then costs about k single-user re-plans. Insisting on the exact
best next plan instead re-prices every stale plan whose old profit is higher, about n per
plan at a crash where hundreds of plans sell the same collateral into one pool (measured
at 10,000 borrowers: 0.8 s to price the second batch of 32). The order of same-direction
sales into one constant-product pool barely moves their total proceeds (without the fee
it does not move them at all), so the estimate costs next to nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import count

from bot.api import LiquidationPlan, SwapLeg
from strategies.api import PairQuote, Strategy, StrategyInput, best_first

_PoolKey = frozenset[str]


def leg_pool(leg: SwapLeg) -> _PoolKey:
    """The pool a swap leg trades on, as its unordered token pair."""
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


class HeadPlans:
    """Every user's plan against the head's own pools, best first, priced only as far as
    the head's batches read (``strategies.api.best_first``) and kept for its later ones:
    the first batch of a crash leaves without waiting for the last user's price."""

    def __init__(self, source: Iterator[LiquidationPlan]) -> None:
        self._source = source
        self._priced: list[LiquidationPlan] = []

    def __iter__(self) -> Iterator[LiquidationPlan]:
        i = 0
        while True:
            if i == len(self._priced):
                plan = next(self._source, None)
                if plan is None:
                    return
                self._priced.append(plan)
            yield self._priced[i]
            i += 1


class PlanSequence:
    """``next()`` the best remaining plan; ``commit`` it once taken, or just move on."""

    def __init__(
        self,
        strategy: Strategy,
        inp: StrategyInput,
        plans: Iterable[LiquidationPlan] | None = None,
    ) -> None:
        """``plans``: the plans of ``inp`` (against its pools), best first, when already
        at hand (default: ``best_first(strategy, inp)``); read only as far as needed."""
        self.strategy = strategy
        self.inp = inp
        self.pairs = dict(inp.pairs)
        self._versions: dict[_PoolKey, int] = {}  # commits that moved each pool
        self._tie = count()
        self._heap: list[tuple[tuple[int, str], int, LiquidationPlan, dict[_PoolKey, int]]] = []
        self._source = iter(best_first(strategy, inp) if plans is None else plans)
        self._next: LiquidationPlan | None = None  # read from the source, not yet pushed

    def _push(self, plan: LiquidationPlan, priced_at_head: bool = False) -> None:
        seen = {
            leg_pool(leg): 0 if priced_at_head else self._versions.get(leg_pool(leg), 0)
            for leg in plan.swaps
        }
        heapq.heappush(self._heap, (_rank(plan), next(self._tie), plan, seen))

    def _fill(self) -> None:
        """Move the source's plans to the heap until its top is better than the source's
        next (the source comes best first, so nothing left there can beat the top)."""
        while True:
            if self._next is None:
                self._next = next(self._source, None)
                if self._next is None:
                    return
            if self._heap and self._heap[0][0] < _rank(self._next):
                return
            self._push(self._next, priced_at_head=True)
            self._next = None

    def _current(self, plan: LiquidationPlan, seen: dict[_PoolKey, int]) -> bool:
        """Priced against the pools as they are, and (a keep plan) still covered by the
        inventory left: a plan that fits a smaller inventory than it was priced with is
        the same plan."""
        if plan.keep and self.inp.inventory.get(plan.debt_asset.lower(), 0) < plan.flash_amount:
            return False
        return all(self._versions.get(k, 0) == v for k, v in seen.items())

    def next(self) -> LiquidationPlan | None:
        while True:
            self._fill()
            if not self._heap:
                return None
            _, _, plan, seen = heapq.heappop(self._heap)
            if self._current(plan, seen):
                return plan
            again = replace(
                self.inp, positions={plan.user: self.inp.positions[plan.user]}, pairs=self.pairs
            )
            for fresh in self.strategy.plan(again):  # at most one: the user's best
                self._fill()
                top = self._heap[0] if self._heap else None
                if top is None or _rank(fresh) <= top[0] or not self._current(top[2], top[3]):
                    return fresh
                self._push(fresh)  # an up-to-date plan pays more: it goes first

    def commit(self, plan: LiquidationPlan) -> None:
        """``plan`` will execute before the remaining ones: the plans on its pools are
        re-priced before they are handed out."""
        for leg in plan.swaps:
            k = leg_pool(leg)
            self.pairs[k] = _after_swap(self.pairs[k], leg)
            self._versions[k] = self._versions.get(k, 0) + 1
        # Protocol state other plans read (a Morpho market's totals): the strategy says
        # how the plan moves it. Plans on the same market trade on the same pool, so they
        # are re-planned against it.
        committed = getattr(self.strategy, "committed", None)
        if committed is not None:
            self.inp = committed(self.inp, plan)
        self.spend(plan)

    def spend(self, plan: LiquidationPlan) -> None:
        """Take a keep plan's debt tokens out of the inventory the next plans may use
        (``commit`` does; alone, for a transaction that runs before them but moves no
        pool they are priced against)."""
        if not plan.keep:
            return
        left = dict(self.inp.inventory)
        asset = plan.debt_asset.lower()
        left[asset] = max(0, left.get(asset, 0) - plan.flash_amount)
        self.inp = replace(self.inp, inventory=left)

    def take(self, limit: int) -> list[LiquidationPlan]:
        """Up to ``limit`` plans, each priced after the ones before it (all committed)."""
        out: list[LiquidationPlan] = []
        while len(out) < limit and (plan := self.next()) is not None:
            self.commit(plan)
            out.append(plan)
        return out
