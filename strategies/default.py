"""``DefaultStrategy``: the most profitable flash-loan liquidation of each liquidatable user.

For every user with HF < 1 and every (collateral, debt) reserve pair the pool would
liquidate, the strategy finds the ``debtToCover`` maximising the exact profit of the
liquidator contract's transaction:

    flash-loan ``flash_amount`` of the debt asset (premium ``percentMul(amount, bps)``)
    -> ``liquidationCall`` once or twice -> sell all seized collateral on the direct
    Uniswap V2 pair collateral/debt -> repay -> ``profit`` to the owner.

Amounts come from the exact model in ``strategies.aave_liquidation`` and are re-checked
against ``health.liquidation_amounts`` for every planned step. A second call on the same
pair is priced when the first is limited by the close factor (or, under v3.3, by the
dust rule) and can leave the user below HF 1 (Qin et al., IMC 2021); it is kept only
if it nets more. Plans are ranked by ``net_profit_base`` (profit minus gas, in base
currency); equal ones keep the order (user, collateral, debt), and a one-call plan wins
over an equal two-call plan.

With ``StrategyInput.inventory_use`` not ``OFF``, a user may instead get a *keep* plan
(``LiquidationPlan.keep``): one or two calls repaid from the owner's own debt tokens
(``StrategyInput.inventory``), the collateral handed over unsold and valued at the
oracle's price. Its value grows with the amount, so each call repays the most the pool and
the inventory allow; keep pairs are ranked by a cheap bound (``_keep_bound``) and priced
only when they may win: under ``BEST`` against every sale, under ``FALLBACK`` only for a
user no sale pays for.

Base-currency figures floor every conversion (``amount * price // unit``) like the
pool's own base values, at the prices the pool uses for the liquidation (e-mode price
source where applicable). Each ledger field is floored separately, so
``bonus - swap_cost - flash_premium`` matches ``profit_base`` within a few base units.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bot.adapters.aave_v3.evaluator import AccountEvaluator
from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    AccountData,
    LiquidationAmounts,
    ReserveState,
    liquidation_amounts,
)
from bot.adapters.aave_v3.math import PERCENTAGE_FACTOR, percent_mul
from bot.adapters.aave_v3.state import UserPosition
from bot.api import LiquidationPlan, LiquidationStep, SwapLeg
from strategies.aave_liquidation import (
    Amounts,
    Indexes,
    Terms,
    after,
    amounts,
    build_terms,
    creates_deficit,
    leaves_no_dust,
    profit_noise,
    profit_probe,
    seized_at_level,
)
from strategies.api import CloseFactorRules, InventoryUse, PairQuote, StrategyInput
from strategies.search import argmax, last_below, last_true

HF_ONE = HEALTH_FACTOR_LIQUIDATION_THRESHOLD
# Search ranges up to this many levels get a certified-exact optimum (``search.argmax``).
CERTIFY_LEVELS = 2**16
# ``_Candidate.order`` of keep plans: past every flash pair's, so a flash plan wins a tie.
_KEEP_ORDER = 1 << 20
Step = tuple[Terms, Amounts]


class ModelMismatchError(AssertionError):
    """The strategy's liquidation model disagrees with ``liquidation_amounts`` (a bug)."""


@dataclass(frozen=True, slots=True)
class _Call:
    """The best ``liquidationCall`` found for some terms, and the plan profit with it."""

    amounts: Amounts
    profit: int  # debt units, of the whole plan up to and including this call
    # Upper bound on the profit of any plan on this pair that repays more than this
    # call may (with a second call); None when repaying more cannot pay.
    extension_bound: int | None


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A priced plan for one (user, collateral, debt): one or two calls and one swap, or
    (``keep``) one or two calls repaid from the owner's inventory, the collateral kept."""

    order: int  # the pair's rank in (collateral, debt) address order
    steps: tuple[Step, ...]
    pool: PairQuote | None
    profit: int  # debt units; collateral units when ``keep``
    net_profit_base: int
    keep: bool = False

    def key(self) -> tuple[int, int, int]:
        """Higher is better: net profit, then earlier pair, then fewer calls."""
        return (self.net_profit_base, -self.order, -len(self.steps))


@dataclass(frozen=True, slots=True)
class _Round:
    """What every user of one ``plan`` call shares."""

    inp: StrategyInput
    evaluator: AccountEvaluator
    indexes: Indexes


@dataclass(frozen=True, slots=True)
class _Pair:
    """One (collateral, debt) choice of a user, with what every call on it shares."""

    round: _Round
    order: int
    collateral_id: int
    debt_id: int
    pool: PairQuote | None
    pool_reserves: tuple[int, int] | None  # (collateral reserve, debt reserve) of the pair

    @property
    def inp(self) -> StrategyInput:
        return self.round.inp

    def terms(self, position: UserPosition, account: AccountData) -> Terms | None:
        inp = self.inp
        return build_terms(
            market=inp.market,
            position=position,
            account=account,
            collateral_id=self.collateral_id,
            debt_id=self.debt_id,
            ts=inp.ts,
            rules=inp.rules,
            emode_prices=inp.emode_prices,
            indexes=self.round.indexes,
        )

    def proceeds(self, seized: int) -> int | None:
        """Debt asset received for ``seized`` collateral; None if the swap would revert."""
        if self.pool is None:
            return seized
        out = self.pool.amount_out(self.inp.market.reserves[self.collateral_id].asset, seized)
        return out if out > 0 else None

    def profit(self, seized: int, flash: int) -> int | None:
        proceeds = self.proceeds(seized)
        if proceeds is None:
            return None
        return proceeds - flash - percent_mul(flash, self.inp.flash_premium_bps)

    def candidate(self, steps: tuple[Step, ...], profit: int) -> _Candidate:
        inp = self.inp
        net = steps[0][0].debt_base(profit) - inp.gas_cost_base(inp.gas_units(len(steps)))
        return _Candidate(self.order, steps, self.pool, profit, net)

    def may_beat(self, best: _Candidate | None, net_bound: int, steps: int) -> bool:
        """Could a plan of this pair with ``steps`` calls netting <= ``net_bound`` win?"""
        return best is None or (net_bound, -self.order, -steps) > best.key()


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A liquidatable user's pairs, each with its net profit bound, best bound first: for
    flash-loan plans, and for keep plans when the inventory may be used."""

    user: str
    position: UserPosition
    health_factor: int
    options: list[tuple[int, _Pair, Terms]]
    keeps: list[tuple[int, _Pair, Terms]]

    @property
    def bound(self) -> int:
        return max(o[0][0] for o in (self.options, self.keeps) if o)


class DefaultStrategy:
    """Best single- or double-call liquidation per user, ranked by net profit."""

    name: str = "default"
    protocol: str = "aave-v3"

    def __init__(self, *, two_steps: bool = True) -> None:
        self.two_steps = two_steps

    def plan(self, inp: StrategyInput) -> list[LiquidationPlan]:
        """See ``Strategy.plan``. A user whose data the pool itself would choke on (the
        reference math raises ``ValueError``: an e-mode price source without a price, a
        reserve missing from the market, an overflow) gets no plan; a disagreement
        between the model and the reference (``ModelMismatchError``) is a bug and raises.
        """
        return list(self.plans_best_first(inp))

    def plans_best_first(self, inp: StrategyInput) -> Iterator[LiquidationPlan]:
        """``plan``'s plans in the same order, priced as they are asked for.

        Every user's upper bound on net profit comes first (the exact account and the
        pairs' linear bounds, cheap); users are then priced best bound first, and a plan
        is handed out once no user left unpriced could beat it. Taking the first few
        plans of a crash with 1,370 liquidatable users then prices little more than those
        few: pricing them all held the first transaction back 670 ms.
        """
        round_ = _Round(
            inp, AccountEvaluator(inp.market, inp.ts, inp.emode_prices), Indexes(inp.ts)
        )
        waiting: list[tuple[int, str, _Prepared]] = []  # (-bound, user, ...): a heap
        for user in sorted(inp.positions):
            try:
                prepared = self._prepare(round_, user, inp.positions[user])
            except ValueError:
                continue
            if prepared is not None:
                waiting.append((-prepared.bound, user, prepared))
        heapq.heapify(waiting)
        ready: list[tuple[int, str, LiquidationPlan]] = []  # (-net, user, plan): a heap
        # Equal net profits keep the users' order, as a stable sort of sorted users would.
        while waiting or ready:
            if ready and (not waiting or ready[0][:2] <= waiting[0][:2]):
                yield heapq.heappop(ready)[2]
                continue
            _, user, prepared = heapq.heappop(waiting)
            try:
                plan = self._price(round_, prepared)
            except ValueError:
                continue
            if plan is not None:
                heapq.heappush(ready, (-plan.net_profit_base, user, plan))

    def _prepare(self, round_: _Round, user: str, position: UserPosition) -> _Prepared | None:
        """The user's pairs with their net profit bounds, best first; None when the user
        is healthy or no pair can clear ``min_profit_base``."""
        account = round_.evaluator.evaluate(position)
        if account.health_factor >= HF_ONE:
            return None
        options: list[tuple[int, _Pair, Terms]] = []
        for pair in _pairs(round_, position):
            terms = pair.terms(position, account)
            if terms is not None:
                options.append((self._net_bound(pair, terms), pair, terms))
        options.sort(key=lambda o: (-o[0], o[1].order))
        keeps = _keep_options(round_, position, account)
        prepared = _Prepared(user, position, account.health_factor, options, keeps)
        if (not options and not keeps) or prepared.bound < round_.inp.min_profit_base:
            return None
        return prepared

    def _price(self, round_: _Round, prepared: _Prepared) -> LiquidationPlan | None:
        """The user's best plan, if it clears ``min_profit_base``.

        Pairs are visited best upper bound first, so that the plans found early rule
        out the pairs (and second calls) that cannot beat them without searching them.
        Keep plans compete from the start under ``InventoryUse.BEST`` (where they usually
        rule out every sale), and under ``FALLBACK`` only when no sale pays.
        """
        inp = round_.inp
        best = None
        if inp.inventory_use is InventoryUse.BEST:
            best = self._best_keep(prepared)
        for bound, pair, terms in prepared.options:
            if not pair.may_beat(best, bound, 1):
                continue
            for candidate in self._candidates(pair, prepared.position, terms, best):
                if candidate.profit >= 0 and (best is None or candidate.key() > best.key()):
                    best = candidate
        if inp.inventory_use is InventoryUse.FALLBACK and (
            best is None or best.net_profit_base < inp.min_profit_base
        ):
            best = self._best_keep(prepared)
        if best is None or best.net_profit_base < inp.min_profit_base:
            return None
        return _build_plan(inp, prepared.user, prepared.position, prepared.health_factor, best)

    def _best_keep(self, prepared: _Prepared) -> _Candidate | None:
        """The user's best keep plan: one call, or two (see ``_first_of_two``), on each
        keep pair its bound does not rule out."""
        best: _Candidate | None = None
        for bound, pair, t in prepared.keeps:
            if not pair.may_beat(best, bound, 1):
                continue
            inp = pair.inp
            cap = inp.inventory_of(t.debt.asset)
            found = [_kept(pair, ((t, a),)) for a in [_keep_call(t, cap)] if a is not None]
            # The bound nets one call's gas; a second call costs more.
            gas = inp.gas_cost_base(inp.gas_units(2, keep=True))
            two_bound = bound + inp.gas_cost_base(inp.gas_units(1, keep=True)) - gas
            if self.two_steps and pair.may_beat(best, two_bound, 2):
                first = _first_of_two(pair, prepared.position, t)
                a2 = None if first is None else _keep_call(first[1], cap - first[0].debt_repaid)
                if first is not None and a2 is not None:
                    found.append(_kept(pair, ((t, first[0]), (first[1], a2))))
            for candidate in found:
                if best is None or candidate.key() > best.key():
                    best = candidate
        return best

    def _net_bound(self, pair: _Pair, t: Terms) -> int:
        """Upper bound on the net profit of any plan on the pair (see ``_linear_bound``)."""
        inp = pair.inp
        # No plan seizes more than the balance: past the top uncapped level the bound
        # only falls (flat seizure, growing cost).
        reach = t.top_uncapped_level() + 2
        one = _linear_bound(pair, t, min(t.max_level() + 2, reach), calls=1)
        bound = t.debt_base(one) - inp.gas_cost_base(inp.gas_units(1))
        if self.two_steps:
            two = _linear_bound(pair, t, min(t.level_of(t.reserve_debt) + 2, reach), calls=2)
            bound = max(bound, t.debt_base(two) - inp.gas_cost_base(inp.gas_units(2)))
        return bound

    def _candidates(
        self, pair: _Pair, position: UserPosition, terms: Terms, best: _Candidate | None
    ) -> list[_Candidate]:
        """The pair's best one-call plan, and its best two-call plan when that may beat
        both it and ``best`` (the user's best so far)."""
        first = best_call(pair, terms, prior_seized=0, prior_debt=0)
        if first is None:
            return []
        one = pair.candidate(((terms, first.amounts),), first.profit)
        found = [one]
        if not self.two_steps or first.extension_bound is None:
            return found
        inp = pair.inp
        bound = terms.debt_base(first.extension_bound) - inp.gas_cost_base(inp.gas_units(2))
        rival = best
        if one.profit >= 0 and (best is None or one.key() > best.key()):
            rival = one  # what the second call must beat
        if not pair.may_beat(rival, bound, 2):
            return found
        second = _second_call(pair, position, terms)
        if second is not None:
            found.append(pair.candidate(*second))
        return found


def _reserves(
    inp: StrategyInput, position: UserPosition
) -> tuple[list[ReserveState], list[ReserveState]]:
    """The position's collateral reserves and debt reserves, in address order."""
    mine = [r for rid, r in inp.market.reserves.items() if rid in position.reserves]
    mine.sort(key=lambda r: r.asset.lower())
    collaterals = [
        r
        for r in mine
        if position.reserves[r.id].collateral_enabled and r.config.liquidation_threshold != 0
    ]
    return collaterals, [r for r in mine if position.reserves[r.id].borrowing]


def _pairs(round_: _Round, position: UserPosition) -> list[_Pair]:
    """Every (collateral, debt) reserve pair of the position, in (collateral, debt) address
    order, whose debt can be flash-loaned and collateral sold."""
    inp = round_.inp
    collaterals, borrowed = _reserves(inp, position)
    # The contract borrows the debt asset with flashLoanSimple.
    debts = [r for r in borrowed if r.config.flashloan_enabled]
    pairs: list[_Pair] = []
    for collateral in collaterals:
        for debt in debts:
            pool: PairQuote | None = None
            pool_reserves: tuple[int, int] | None = None
            if collateral.id != debt.id:
                pool = inp.pair(collateral.asset, debt.asset)
                if pool is None or pool.reserve0 == 0 or pool.reserve1 == 0:
                    continue  # nothing to sell the collateral on
                pool_reserves = pool.reserves_for(collateral.asset)
            pairs.append(_Pair(round_, len(pairs), collateral.id, debt.id, pool, pool_reserves))
    return pairs


def _keep_options(
    round_: _Round, position: UserPosition, account: AccountData
) -> list[tuple[int, _Pair, Terms]]:
    """The position's keep pairs (collateral other than a debt the inventory holds) with
    their net profit bounds (``_keep_bound``), best first; none when inventory is off."""
    inp = round_.inp
    if inp.inventory_use is InventoryUse.OFF:
        return []
    collaterals, borrowed = _reserves(inp, position)
    debts = [r for r in borrowed if inp.inventory_of(r.asset) > 0]
    gas_cost = inp.gas_cost_base(inp.gas_units(1, keep=True))
    options: list[tuple[int, _Pair, Terms]] = []
    order = _KEEP_ORDER
    for collateral in collaterals:
        for debt in debts:
            if collateral.id == debt.id:
                continue  # nothing to keep: a sale at par is the flash plan's
            order += 1
            pair = _Pair(round_, order, collateral.id, debt.id, None, None)
            t = pair.terms(position, account)
            if t is not None:
                bound = _keep_bound(t, inp.inventory_of(debt.asset)) - gas_cost
                options.append((bound, pair, t))
    options.sort(key=lambda o: (-o[0], o[1].order))
    return options


def _keep_bound(t: Terms, cap: int) -> int:
    """Upper bound on the value (base) of any keep plan on the pair of ``t`` repaying at
    most ``cap`` in one or two calls.

    Uncapped, a call seizes ``percentMul(repaid·Pd/Pc, bonus)``: its collateral is worth
    at most ``bonus`` times the debt repaid, plus half a collateral unit. Capped, the
    pool recomputes the debt from the seizure the same way. So the value, ``seized·Pc -
    repaid·Pd``, is at most ``(bonus - 1)`` times the debt repaid and ``(bonus - 1) /
    bonus`` times the collateral seized, each plus a collateral unit's worth and the
    floors; the calls together repay at most the reserve debt (and ``cap``) and seize at
    most the balance. The protocol fee only takes from the seizure.
    """
    extra = t.bonus - PERCENTAGE_FACTOR
    if extra <= 0:
        return 0
    debt_base = -(-min(cap, t.reserve_debt) * t.debt_price // t.debt_unit)
    balance_base = -(-t.balance * t.collateral_price // t.collateral_unit)
    slack = 2 * (-(-t.collateral_price // t.collateral_unit) + 3)
    return min(debt_base * extra // PERCENTAGE_FACTOR, balance_base * extra // t.bonus) + slack


def _kept(pair: _Pair, steps: tuple[Step, ...]) -> _Candidate:
    """A keep plan of ``steps``: the collateral they seize, and what it is worth above
    the debt they repay, net of gas (each total floored once, as ``_build_plan`` does)."""
    inp, t = pair.inp, steps[0][0]
    seized = sum(a.collateral_seized for _, a in steps)
    value = t.collateral_base(seized) - t.debt_base(sum(a.debt_repaid for _, a in steps))
    net = value - inp.gas_cost_base(inp.gas_units(len(steps), keep=True))
    return _Candidate(pair.order, steps, None, seized, net, keep=True)


def _keep_call(t: Terms, cap: int) -> Amounts | None:
    """The call repaying at most ``cap`` whose collateral is worth the most above its debt
    (None: no call fits, e.g. ``cap`` is 0).

    That value grows with the amount (the bonus is a share of it), so the candidates are
    the largest amounts each rule allows: the close factor within the balance (and, under
    v3.3, leaving no dust), the capped branch, the whole reserve debt, and ``cap`` itself.
    """
    top = min(t.max_level(), t.top_uncapped_level())
    covers = {t.debt_at(top), t.debt_at(_interior_top(t)), cap}
    if t.max_level() > t.top_uncapped_level():
        covers.add(_capped_cover(t))
    if t.reserve_debt <= t.max_debt:
        covers.add(t.reserve_debt)
    best: tuple[Amounts, int] | None = None
    for cover in sorted(covers):
        if not 0 < cover <= cap:  # also: nothing fits a cap <= 0
            continue
        a = amounts(t, cover)
        # The owner hands over exactly what the pool takes (see ``best_call``).
        if a is None or (a.debt_repaid != cover and t.rules is CloseFactorRules.V3_0):
            continue
        value = t.collateral_base(a.collateral_seized) - t.debt_base(a.debt_repaid)
        if a.debt_repaid <= cap and (best is None or value > best[1]):
            best = (a, value)
    return None if best is None else best[0]


def _linear_bound(pair: _Pair, t: Terms, level: int, *, calls: int) -> int:
    """Upper bound on the profit (debt units) of any plan of ``calls`` calls on the pair
    repaying at most ``level`` levels in total.

    The V2 output lies under its tangent at 0 (``q·x``, ``q = 997·Ro / (1000·Ri)``), so
    the profit is at most a linear function of the level plus the rounding noise of each
    call (``profit_noise``: the seizure is within ``E`` of linear, the costs within 2.5).
    A linear function peaks at an end of ``[0, level]``; its value at ``level`` is read
    off the exact formulas there. Capped calls seize less than the formula: still under,
    and beyond the top uncapped level the bound only falls, so callers stop there.
    """
    at = seized_at_level(t)
    debt, seized = at(level)
    cost = debt + percent_mul(debt, pair.inp.flash_premium_bps)
    err = -(-t.bonus // 10_000) + 2
    if pair.pool_reserves is None:
        return max(0, seized - cost) + calls * (2 * err + 3)
    r_in, r_out = pair.pool_reserves
    q_num, q_den = 997 * r_out, 1000 * r_in
    q_err = -(-q_num * err // q_den)
    return max(0, -(-q_num * seized // q_den) - cost) + calls * (2 * q_err + 3)


def best_call(pair: _Pair, t: Terms, *, prior_seized: int, prior_debt: int) -> _Call | None:
    """The ``debtToCover`` maximising the plan profit when this call is its last.

    The uncapped levels up to the close factor (and, under v3.3, up to the last level
    leaving no dust) are searched by ``argmax`` (concave profit, see
    ``strategies.search``). Exact evaluations are added at the ends of that range and at
    the points where the profit function changes form: the top uncapped level (the
    whole balance may be taken exactly there), the capped branch (all collateral,
    repaying what the pool recomputes), and the whole reserve debt (v3.3 exemption).
    """
    inp = pair.inp
    probe = profit_probe(
        t,
        prior_seized=prior_seized,
        prior_debt=prior_debt,
        pool=pair.pool_reserves,
        premium_bps=inp.flash_premium_bps,
    )
    noise = profit_noise(t, pair.pool_reserves)
    top_uncapped = t.top_uncapped_level()
    max_level = t.max_level()
    hi = _interior_top(t)
    # Small positions get the exact optimum (a few hundred probes at most); larger ones
    # are searched to a few noise units (e.g. a few satoshis of WBTC, < $0.01).
    certify = noise if hi <= CERTIFY_LEVELS else None
    start = _search_start(probe, hi, top_uncapped, noise)
    covers: list[int] = []
    level = argmax(probe, start, hi, noise=certify)
    if level is not None:
        covers += [t.debt_at(level), t.debt_at(hi)]
    covers.append(t.debt_at(min(max_level, top_uncapped)))
    if max_level > top_uncapped:
        covers.append(_capped_cover(t))
    if t.reserve_debt <= t.max_debt:
        covers.append(t.reserve_debt)

    best: tuple[Amounts, int] | None = None
    for cover in sorted(set(covers)):
        a = amounts(t, cover)
        if a is None or (a.debt_repaid != cover and t.rules is CloseFactorRules.V3_0):
            # The flash loan covers what the pool takes, not what is passed: were the
            # balance a unit larger at inclusion (an earlier transaction's flash premium
            # raises its reserve's liquidity index, and every holder's balance), the
            # pool would pull more than was borrowed and the transaction revert
            # (measured at a 10,000-borrower crash: 8 of 70 plans). An amount taken
            # verbatim is a unit or two of collateral short at worst. v3.3 may allow no
            # other amount (dust rules), so there it is kept.
            continue
        profit = pair.profit(prior_seized + a.collateral_seized, prior_debt + a.debt_repaid)
        if profit is not None and (best is None or profit > best[1]):
            best = (a, profit)
    if best is None:
        return None
    a, profit = best
    return _Call(a, profit, _extension_bound(t, a, profit, probe, hi, noise))


def _search_start(
    probe: Callable[[int], int | None], hi: int, top_uncapped: int, noise: int | None
) -> int:
    """First level worth searching: 1, or a window below ``hi`` when the profit provably
    still rises at ``hi`` (the usual case: a deep pool, bounded by the close factor).

    The probe is the exact formula at any uncapped level, even past the close factor, so
    with ``rise = f(hi + w) - f(hi) - 2·noise > 0`` the concave ``g`` has a slope of at
    least ``rise / w`` at ``hi``; any ``t`` with ``hi - t > 2·noise·w / rise`` then has
    ``f(t) <= g(hi) - slope·(hi - t) + noise < f(hi)``.
    """
    width = max(1, hi // 64)
    if noise is None or hi < 1 or hi + width > top_uncapped:
        return 1
    at_hi, right = probe(hi), probe(hi + width)
    if at_hi is None or right is None:
        return 1
    rise = right - at_hi - 2 * noise
    if rise <= 0:
        return 1
    return max(1, hi - 2 * noise * width // rise - 1)


def _interior_top(t: Terms) -> int:
    """The last level of the searched range: uncapped, within the close factor and,
    under v3.3, leaving no dust (``_no_dust_level``)."""
    hi = min(t.max_level(), t.top_uncapped_level())
    if t.rules is CloseFactorRules.V3_3:
        hi = last_true(_no_dust_level(t), 1, hi)
    return hi


def _extension_bound(
    t: Terms,
    best: Amounts,
    profit: int,
    probe: Callable[[int], int | None],
    hi: int,
    noise: int | None,
) -> int | None:
    """Upper bound on the profit of plans repaying beyond this call's range ``1..hi``.

    None when none can pay: the range is bounded by the collateral (or the call took
    it all, or all the debt), or the profit at ``hi`` is more than ``2·noise`` below the
    best (the smooth profit ``g`` peaks inside the range and only falls after it).
    Otherwise ``g`` is concave, so beyond ``hi`` it stays under its tangent there, whose
    slope is at most the chord's over ``[hi - w, hi]`` (+ the noise). Two calls round
    twice (``g + 2·noise``), ``f(hi)`` is within ``noise`` of ``g(hi)``, and a total
    below ``hi`` earns at most the one-call optimum, itself within a few ``noise`` of
    ``best``: ``max(best, f(hi)) + 8·noise + slope·(levels beyond hi)`` bounds them all.
    """
    if noise is None or hi < 2 or hi >= t.top_uncapped_level():
        return None
    if best.capped or best.debt_repaid >= t.reserve_debt:
        return None
    top = probe(hi)
    if top is None or top < profit - 2 * noise:
        return None
    width = max(1, hi // 64)
    below = probe(hi - width)
    if below is None:
        return None
    # Up to the whole reserve debt, and no further than the collateral goes.
    beyond = max(0, min(t.level_of(t.reserve_debt), t.top_uncapped_level() + 2) - hi)
    rise = max(0, top - below + 2 * noise)  # over ``width`` levels; the slope is rational
    return max(profit, top) + 8 * noise - (-rise * beyond // width)


def _no_dust_level(t: Terms) -> Callable[[int], bool]:
    """v3.3: does the call at ``level`` leave >= 1,000 base of both debt and collateral?

    True then false along the levels (both leftovers shrink), so ``last_true`` finds the
    largest interior level; the exempt full repayments are separate candidates.
    """
    at = seized_at_level(t)

    def ok(level: int) -> bool:
        debt, seized = at(level)
        if debt >= t.reserve_debt or seized >= t.balance:
            return False
        return leaves_no_dust(t, debt, seized, 0)

    return ok


def _capped_cover(t: Terms) -> int:
    """``debtToCover`` for the capped branch (the whole balance is seized).

    The pool then takes ``debt_needed``, recomputed from the balance. Passing exactly
    that amount is preferred (the pool takes what is passed) when it still lands in the
    capped branch; otherwise the smallest capped amount is passed and the pool takes
    slightly less than ``debt_to_cover`` (about two units of the coarser asset at most).
    """
    first = t.first_capped_debt()
    a = amounts(t, first)
    if a is not None and a.debt_repaid > 0:
        exact = amounts(t, a.debt_repaid)
        if exact is not None and exact.capped and exact.debt_repaid == a.debt_repaid:
            return a.debt_repaid
    return first


def _second_call(
    pair: _Pair, position: UserPosition, t1: Terms
) -> tuple[tuple[Step, ...], int] | None:
    """The best two-call plan on the pair: its steps and profit, or None.

    A plan's profit depends (to rounding) only on the total repaid and seized, so the
    first call repays as much as it may while leaving the user liquidatable -- the most
    the two calls together can then repay (``_first_of_two``) -- and the second call is
    searched with the first one's collateral and debt carried into the same swap and
    flash loan.
    """
    first = _first_of_two(pair, position, t1)
    if first is None:
        return None
    a1, t2 = first
    second = best_call(pair, t2, prior_seized=a1.collateral_seized, prior_debt=a1.debt_repaid)
    if second is None:
        return None
    return ((t1, a1), (t2, second.amounts)), second.profit


def _first_of_two(pair: _Pair, position: UserPosition, t1: Terms) -> tuple[Amounts, Terms] | None:
    """The first call of a two-call plan, and the terms of the second: the largest call
    that leaves the user liquidatable. None when none does (or it takes everything).

    "Liquidatable" after the first call means HF below ``1 - inp.two_step_hf_buffer``:
    a first call that leaves HF a hair below 1 is exact only for the exact block state.
    Interest at another timestamp, or an earlier transaction in the block that raises an
    index the user holds (a flash loan's premium goes to that reserve's suppliers), lifts
    HF above 1 and the second call, with the whole transaction, reverts.
    """
    inp, evaluator = pair.inp, pair.round.evaluator
    limit = HF_ONE - inp.two_step_hf_buffer
    hi = _interior_top(t1)

    states: dict[int, tuple[Amounts, UserPosition, AccountData] | None] = {}

    def state_after(level: int) -> tuple[Amounts, UserPosition, AccountData] | None:
        if level not in states:
            a = amounts(t1, t1.debt_at(level))
            moved = None if a is None else after(position, t1, a, inp.ts)
            states[level] = (
                None if a is None or moved is None else (a, moved, evaluator.evaluate(moved))
            )
        return states[level]

    def margin(level: int) -> int | None:
        """``percentMul(collateral, threshold) - debt * limit`` after the first call (in
        base * WAD): nearly linear in the amount (unlike HF), negative exactly when
        HF < limit."""
        state = state_after(level)
        if state is None:
            return None
        acc = state[2]
        m = percent_mul(acc.total_collateral_base, acc.current_liquidation_threshold) * HF_ONE
        m -= acc.total_debt_base * limit
        return min(m, -1) if acc.health_factor < limit else max(m, 0)

    state = state_after(hi)
    if state is None or state[2].health_factor >= limit:
        # Repaying less leaves the user liquidatable; the largest such first call leaves
        # the most for the second call's close factor.
        at_low, at_high = margin(1), margin(hi)
        if at_low is None or at_low >= 0:
            return None
        high = at_high if at_high is not None else 0
        # To 2^-30 of the range: a relative 1e-9 of the two calls' reach, at most.
        level = last_below(margin, 1, at_low, hi, high, max(1, hi >> 30))
        state = state_after(level)
        if state is None:
            return None
    a1, moved, account = state
    if creates_deficit(t1, a1):
        return None
    t2 = pair.terms(moved, account)
    return None if t2 is None else (a1, t2)


def _check_reference(inp: StrategyInput, emode: int, t: Terms, a: Amounts) -> None:
    """Re-derive a step's amounts with ``health.liquidation_amounts``.

    Under v3.3 the close factor differs: the reference is given HF <= 0.95 (so it caps
    at the whole reserve debt) and the v3.3 cap is applied to ``debtToCover`` first.
    """
    health_factor, cover = t.health_factor, a.debt_to_cover
    if t.rules is CloseFactorRules.V3_3:
        health_factor = min(health_factor, CLOSE_FACTOR_HF_THRESHOLD)
        cover = min(cover, t.max_debt)
    reference = liquidation_amounts(
        health_factor=health_factor,
        collateral_reserve=t.collateral,
        debt_reserve=t.debt,
        user_collateral=t.user_collateral,
        user_debt=t.user_debt,
        user_emode=emode,
        emode_categories=inp.market.emode_categories,
        debt_to_cover=cover,
        ts=inp.ts,
        emode_prices=inp.emode_prices,
    )
    mine = LiquidationAmounts(a.debt_repaid, a.collateral_seized, a.protocol_fee)
    if reference != mine:
        raise ModelMismatchError(f"model {mine} != liquidation_amounts {reference}")


def _build_plan(
    inp: StrategyInput,
    user: str,
    position: UserPosition,
    health_factor: int,
    candidate: _Candidate,
) -> LiquidationPlan:
    """The plan of a candidate, every figure recomputed from its steps.

    ``LiquidationStep.debt_to_cover`` is the argument to pass. The pool takes exactly
    that, except in the capped branch when no argument is taken verbatim (the pool
    recomputes the debt from the balance, and that amount is not itself capped); then
    it takes slightly less (about two units of the coarser asset at most). ``flash_amount``
    is always the exact total taken.
    """
    first_terms = candidate.steps[0][0]
    collateral = first_terms.collateral.asset
    debt = first_terms.debt.asset
    steps: list[LiquidationStep] = []
    for t, a in candidate.steps:
        _check_reference(inp, position.emode, t, a)
        steps.append(
            LiquidationStep(
                user=user,
                collateral_asset=collateral,
                debt_asset=debt,
                debt_to_cover=a.debt_to_cover,
                collateral_seized=a.collateral_seized,
                protocol_fee=a.protocol_fee,
                bonus_bps=t.bonus,
            )
        )
    seized = sum(a.collateral_seized for _, a in candidate.steps)
    fees = sum(a.protocol_fee for _, a in candidate.steps)
    flash = sum(a.debt_repaid for _, a in candidate.steps)
    bonus_base = first_terms.collateral_base(seized) - first_terms.debt_base(flash)
    premium = 0 if candidate.keep else percent_mul(flash, inp.flash_premium_bps)
    swaps: tuple[SwapLeg, ...] = ()
    received = seized  # collateral that already is the debt asset
    swap_cost_base = 0
    if candidate.pool is not None:
        received = candidate.pool.amount_out(collateral, seized)
        swaps = (SwapLeg(candidate.pool.pair, collateral, debt, seized, received),)
        swap_cost_base = first_terms.collateral_base(seized) - first_terms.debt_base(received)
    # A keep plan's profit is the collateral itself, worth the bonus above the debt.
    profit = seized if candidate.keep else received - flash - premium
    if profit != candidate.profit:
        raise ModelMismatchError(f"plan profit {profit} != searched profit {candidate.profit}")
    gas_units = inp.gas_units(len(steps), keep=candidate.keep)
    gas_cost_base = inp.gas_cost_base(gas_units)
    profit_base = bonus_base if candidate.keep else first_terms.debt_base(profit)
    return LiquidationPlan(
        protocol=inp.protocol,
        user=user,
        debt_asset=debt,
        health_factor=health_factor,
        steps=tuple(steps),
        swaps=swaps,
        flash_amount=flash,
        flash_premium=premium,
        profit=profit,
        profit_base=profit_base,
        bonus_base=bonus_base,
        protocol_fee_base=first_terms.collateral_base(fees),
        swap_cost_base=swap_cost_base,
        flash_premium_base=first_terms.debt_base(premium),
        gas_units=gas_units,
        gas_price_wei=inp.gas_price_wei,
        gas_cost_base=gas_cost_base,
        net_profit_base=profit_base - gas_cost_base,
        keep=candidate.keep,
    )
