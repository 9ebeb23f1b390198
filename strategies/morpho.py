"""``MorphoStrategy``: the most profitable ``liquidateMorpho`` of each unhealthy Morpho Blue
position.

The liquidator contract calls ``Morpho.liquidate(params, borrower, seizedAssets, 0, data)``;
Morpho sends the collateral, the callback sells all of it on the Uniswap V2 pair
collateral/loan, and Morpho then pulls ``repaidAssets`` of the loan token. No loan, no
premium: the owner receives exactly

    profit(seized) = pair.amount_out(collateral, seized) - repaid_assets(seized)

with ``repaid_assets`` from ``math.liquidate`` (the contract's own rounding, in its favour).
Morpho has no close factor, so ``seized`` ranges over ``1..max``: ``max`` is the largest
seizure whose repaid shares the borrower still owes and whose collateral they still hold
(found by bisection; the predicate is monotone). Seizing all the collateral writes the
rest of the debt off as bad debt, which costs the liquidator nothing: the profit formula is
the same there.

``profit`` is concave up to rounding (a concave V2 output minus a linear repayment), so
``strategies.search.argmax`` finds it, certified exact with the noise bound of
``profit_noise``.

Base-currency figures floor every conversion (``amount * price // 10**decimals``) like
``strategies.default``. The collateral is valued at its market's oracle (the price the
liquidation itself uses) converted through the loan token's base price, so ``bonus_base``
is what the incentive factor gives and ``swap_cost_base`` the slippage against that
oracle; only loan tokens need ``base_prices`` and ``decimals`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from bot.adapters.morpho_blue.math import (
    ORACLE_PRICE_SCALE,
    VIRTUAL_ASSETS,
    VIRTUAL_SHARES,
    WAD,
    Liquidation,
    MorphoRevert,
    borrowed_assets,
    is_healthy,
    liquidate,
    liquidation_incentive_factor,
    max_borrow,
    mul_div_up,
    to_shares_up,
    w_div_down,
    w_div_up,
)
from bot.adapters.morpho_blue.types import Market, MarketParams, Position
from bot.api import LiquidationPlan, LiquidationStep, SwapLeg
from strategies.api import PairQuote, pair_key
from strategies.search import argmax, last_true

PROTOCOL = "morpho-blue"
# Gas of one ``liquidateMorpho`` (Morpho's accrual and liquidation, the callback's swap and
# approval, Morpho's pull, the transfer to the owner), measured on the devnet by
# tests/integration/test_morpho_liquidator.py: 253,155 or 280,515 on USDC/WETH (the same
# plan; which one varies between runs with the devnet's block timestamps), 262,320 on
# DAI/WETH seizing all the collateral (bad debt). Rounded up from the highest.
MORPHO_LIQUIDATION_GAS = 300_000


def position_key(market_id: str, borrower: str) -> str:
    """The key of ``MorphoStrategyInput.positions`` and the plans' ``user``."""
    return f"{market_id.lower()}:{borrower.lower()}"


@dataclass(frozen=True, slots=True)
class MorphoMarketView:
    """One market at the planning timestamp."""

    id: str  # market id, 0x-prefixed lower-case hex
    params: MarketParams
    market: Market  # accrued to the input's ts (what liquidate sees after its own accrual)
    price: int  # oracle price: loan units per collateral unit, scaled by 1e36
    # Accrued to the earliest timestamp the transaction may execute at (the head's own:
    # anvil and some L2s give the next block the same timestamp). A seizure's repaid
    # shares are largest then (less interest: fewer assets per share), so seizures are
    # capped to fit the borrower's shares at any inclusion time; None: only ``ts``.
    earliest: Market | None = None


@dataclass(frozen=True, slots=True)
class MorphoTarget:
    """A borrower's position in one market."""

    market_id: str
    borrower: str
    position: Position


@dataclass(frozen=True, slots=True, kw_only=True)
class MorphoStrategyInput:
    """One planning round over Morpho Blue markets (the counterpart of ``StrategyInput``).

    ``positions`` are keyed by ``position_key(market_id, borrower)``; the key is passed
    through as the plans' ``user``. ``pairs`` are Uniswap V2 pairs keyed by ``pair_key``.
    ``base_prices`` and ``decimals`` are keyed by lower-case token address (base prices
    with the Aave oracle's 8 decimals); a target whose loan token has neither gets no
    plan. Gas costs ``gas_units * gas_price_wei * native_price_base // 10**18`` base.
    """

    markets: Mapping[str, MorphoMarketView]
    ts: int  # block.timestamp the transaction will execute at
    positions: Mapping[str, MorphoTarget]
    pairs: Mapping[frozenset[str], PairQuote]
    base_prices: Mapping[str, int]
    decimals: Mapping[str, int]
    gas_price_wei: int
    native_price_base: int
    min_profit_base: int = 0
    gas_units: int = MORPHO_LIQUIDATION_GAS
    protocol: str = PROTOCOL

    def __post_init__(self) -> None:
        for name in ("gas_price_wei", "native_price_base", "gas_units"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for key, view in self.markets.items():
            if view.market.last_update != self.ts:
                raise ValueError(
                    f"Morpho market {key} is accrued to {view.market.last_update},"
                    f" not to the planning timestamp {self.ts}"
                )

    def gas_cost_base(self) -> int:
        """Gas of one liquidation in base currency, floored."""
        return self.gas_units * self.gas_price_wei * self.native_price_base // 10**18

    def pair(self, token_a: str, token_b: str) -> PairQuote | None:
        return self.pairs.get(pair_key(token_a, token_b))


def profit_noise(market: Market) -> int:
    """A bound on ``|profit - g|`` for a concave ``g`` (see ``strategies.search``).

    With ``x = seized·price/1e36·WAD/LIF`` (real numbers) and ``r`` the market's shares
    per asset, ``repaid_assets`` lies in ``[x, x + 3 + 1/r)``: ``mulDivUp`` and ``wDivUp``
    add under 2 (LIF >= 1), ``toSharesUp`` under 1 share, ``toAssetsUp`` under ``1/r + 1``.
    The floored V2 output lies in ``(out - 1, out]``. The profit is then within
    ``2 + 1/(2r)`` of the concave ``out - x`` shifted by half that width.
    """
    per_share = -(
        -(market.total_borrow_assets + VIRTUAL_ASSETS)
        // (market.total_borrow_shares + VIRTUAL_SHARES)
    )
    return 3 + per_share


@dataclass(frozen=True, slots=True)
class _Target:
    """What the search of one position needs."""

    key: str
    view: MorphoMarketView
    target: MorphoTarget
    pair: PairQuote

    @property
    def collateral(self) -> str:
        return self.view.params.collateral_token

    def liquidation(self, seized: int) -> Liquidation | None:
        """``math.liquidate`` seizing ``seized``; None where the contract would revert."""
        v = self.view
        try:
            return liquidate(
                v.market, self.target.position, v.price, v.params.lltv, seized_assets=seized
            )
        except MorphoRevert:
            return None

    def profit(self, seized: int) -> int | None:
        """The owner's exact profit; None where Morpho or the pair would revert."""
        liq = self.liquidation(seized)
        if liq is None:
            return None
        out = self.pair.amount_out(self.collateral, seized)
        return None if out == 0 else out - liq.repaid_assets

    def fits_early(self, seized: int) -> bool:
        """Whether the shares ``seized`` repays stay within the borrower's if the
        transaction lands at the earliest possible timestamp (else Morpho underflows)."""
        v, early = self.view, self.view.earliest
        if early is None:
            return True
        quoted = mul_div_up(seized, v.price, ORACLE_PRICE_SCALE)
        lif = liquidation_incentive_factor(v.params.lltv)
        shares = to_shares_up(
            w_div_up(quoted, lif), early.total_borrow_assets, early.total_borrow_shares
        )
        return shares <= self.target.position.borrow_shares

    def max_seized(self) -> int:
        """The largest seizure ``liquidate`` accepts at ``ts`` and at the earliest time
        (0: none): the repaid shares grow with the seizure, so "does not revert" is true
        then false on ``1..collateral``."""
        return last_true(
            lambda s: self.liquidation(s) is not None and self.fits_early(s),
            1,
            self.target.position.collateral,
        )


class MorphoStrategy:
    """Best single ``liquidateMorpho`` per unhealthy position, ranked by net profit.

    Satisfies ``strategies.api.Strategy`` structurally, on ``MorphoStrategyInput``.
    """

    name: str = "morpho-default"
    protocol: str = PROTOCOL  # the adapter whose planning input it takes

    def committed(self, inp: MorphoStrategyInput, plan: LiquidationPlan) -> MorphoStrategyInput:
        """``inp`` after ``plan`` executes: its market's totals (and, on bad debt, supply)
        move, which changes every other borrower's shares-to-assets conversion there."""
        target = inp.positions.get(plan.user)
        view = inp.markets.get(target.market_id) if target else None
        if target is None or view is None:
            return inp
        seized = plan.steps[0].collateral_seized
        lltv = view.params.lltv
        liq = liquidate(view.market, target.position, view.price, lltv, seized_assets=seized)
        earliest = view.earliest
        if earliest is not None:
            try:
                earliest = liquidate(
                    earliest, target.position, view.price, lltv, seized_assets=seized
                ).market
            except MorphoRevert:  # healthy that early: the cap's view is the later one
                earliest = liq.market
        markets = {**inp.markets, view.id: replace(view, market=liq.market, earliest=earliest)}
        positions = {**inp.positions, plan.user: replace(target, position=liq.position)}
        return replace(inp, markets=markets, positions=positions)

    def plan(self, inp: MorphoStrategyInput) -> list[LiquidationPlan]:
        """One plan per profitable unhealthy position (``net_profit_base >=
        inp.min_profit_base``, ``profit >= 0``), best first, equal ones by key."""
        plans: list[LiquidationPlan] = []
        for key in sorted(inp.positions):
            t = _prepare(inp, key, inp.positions[key])
            if t is None:
                continue
            plan = _plan_target(inp, t)
            if plan is not None and plan.net_profit_base >= inp.min_profit_base:
                plans.append(plan)
        plans.sort(key=lambda p: (-p.net_profit_base, p.user))
        return plans


def _prepare(inp: MorphoStrategyInput, key: str, target: MorphoTarget) -> _Target | None:
    """The target, if it is unhealthy at a non-zero price and its collateral can be sold
    and valued."""
    view = inp.markets.get(target.market_id)
    if view is None:
        return None
    params, position = view.params, target.position
    # An oracle answering 0 is broken, not a free seizure (Morpho would allow one).
    if view.price == 0 or is_healthy(position, view.market, view.price, params.lltv):
        return None
    loan = params.loan_token.lower()
    if loan not in inp.base_prices or loan not in inp.decimals:
        return None
    pair = inp.pair(params.collateral_token, params.loan_token)
    if pair is None or pair.reserve0 == 0 or pair.reserve1 == 0:
        return None
    return _Target(key, view, target, pair)


def _plan_target(inp: MorphoStrategyInput, t: _Target) -> LiquidationPlan | None:
    hi = t.max_seized()
    if hi < 1:
        return None
    seized = argmax(t.profit, 1, hi, noise=profit_noise(t.view.market))
    if seized is None:
        return None
    liq = t.liquidation(seized)
    profit = t.profit(seized)
    if liq is None or profit is None or profit < 0:
        return None
    return _build_plan(inp, t, liq, profit)


def _base_converters(
    inp: MorphoStrategyInput, view: MorphoMarketView
) -> tuple[Callable[[int], int], Callable[[int], int]]:
    """(loan units -> base, collateral units -> base at the market's oracle), floored."""
    loan = view.params.loan_token.lower()
    price, unit = inp.base_prices[loan], 10 ** inp.decimals[loan]

    def loan_base(amount: int) -> int:
        return amount * price // unit

    def collateral_base(amount: int) -> int:
        return amount * view.price * price // (ORACLE_PRICE_SCALE * unit)

    return loan_base, collateral_base


def _build_plan(
    inp: MorphoStrategyInput, t: _Target, liq: Liquidation, profit: int
) -> LiquidationPlan:
    view, target = t.view, t.target
    params, position = view.params, target.position
    loan_base, collateral_base = _base_converters(inp, view)
    seized, repaid = liq.seized_assets, liq.repaid_assets
    received = t.pair.amount_out(t.collateral, seized)
    if received - repaid != profit:  # a bug, not a market condition
        raise AssertionError(f"plan profit {received - repaid} != searched profit {profit}")
    step = LiquidationStep(
        user=target.borrower,
        collateral_asset=params.collateral_token,
        debt_asset=params.loan_token,
        debt_to_cover=repaid,
        collateral_seized=seized,
        protocol_fee=0,
        bonus_bps=liquidation_incentive_factor(params.lltv) * 10_000 // WAD,
    )
    swap = SwapLeg(t.pair.pair, params.collateral_token, params.loan_token, seized, received)
    gas_cost_base = inp.gas_cost_base()
    profit_base = loan_base(profit)
    return LiquidationPlan(
        protocol=inp.protocol,
        user=t.key,
        debt_asset=params.loan_token,
        health_factor=w_div_down(
            max_borrow(position, view.price, params.lltv),
            borrowed_assets(position, view.market),
        ),
        steps=(step,),
        swaps=(swap,),
        flash_amount=0,
        flash_premium=0,
        profit=profit,
        profit_base=profit_base,
        bonus_base=collateral_base(seized) - loan_base(repaid),
        protocol_fee_base=0,
        swap_cost_base=collateral_base(seized) - loan_base(received),
        flash_premium_base=0,
        gas_units=inp.gas_units,
        gas_price_wei=inp.gas_price_wei,
        gas_cost_base=gas_cost_base,
        net_profit_base=profit_base - gas_cost_base,
    )
