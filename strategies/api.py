"""The strategy interface: what a strategy is given, and what it answers.

A strategy is pure: ``plan`` reads a ``StrategyInput`` snapshot (market, candidate
positions, pool reserves, gas terms) and returns ``LiquidationPlan`` objects (see
``bot.api``), exact to the wei for the liquidator contract that executes them. No I/O,
no asyncio.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import LiquidationPlan

# Uniswap V2's swap fee: the pair keeps 3 of every 1,000 units in.
V2_FEE_NUMERATOR = 997
V2_FEE_DENOMINATOR = 1000


@dataclass(frozen=True, slots=True)
class PairQuote:
    """A Uniswap V2 pair's reserves (``getReserves``) at the planning block."""

    pair: str
    token0: str
    token1: str
    reserve0: int
    reserve1: int

    def reserves_for(self, token_in: str) -> tuple[int, int]:
        """(reserve of ``token_in``, reserve of the other token)."""
        token = token_in.lower()
        if token == self.token0.lower():
            return self.reserve0, self.reserve1
        if token == self.token1.lower():
            return self.reserve1, self.reserve0
        raise ValueError(f"{token_in} is not a token of pair {self.pair}")

    def token_out(self, token_in: str) -> str:
        token = token_in.lower()
        if token == self.token0.lower():
            return self.token1
        if token == self.token1.lower():
            return self.token0
        raise ValueError(f"{token_in} is not a token of pair {self.pair}")

    def amount_out(self, token_in: str, amount_in: int) -> int:
        """``UniswapV2Library.getAmountOut``: what ``swap`` may send for ``amount_in``.

        ``in·997·rOut // (rIn·1000 + in·997)``. Returns 0 for a zero input (a swap of
        nothing), where the pair would revert anyway.
        """
        if amount_in < 0:
            raise ValueError(f"negative amount_in {amount_in}")
        if amount_in == 0:
            return 0
        return v2_amount_out(amount_in, *self.reserves_for(token_in))


def v2_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """``UniswapV2Library.getAmountOut`` on raw reserves (the 0.3% fee stays in the pair)."""
    with_fee = amount_in * V2_FEE_NUMERATOR
    return with_fee * reserve_out // (reserve_in * V2_FEE_DENOMINATOR + with_fee)


def pair_key(token_a: str, token_b: str) -> frozenset[str]:
    """The key of ``StrategyInput.pairs``: both token addresses, lower-cased."""
    return frozenset((token_a.lower(), token_b.lower()))


class CloseFactorRules(enum.Enum):
    """Which ``liquidationCall`` rules the pool runs; they bound what one call may repay.

    ``V3_0`` (core-v3 1.19.x, what the devnet runs): one call repays at most 50% of the
    user's debt in the debt reserve, 100% when HF <= 0.95.

    ``V3_3`` (aave-v3-origin v3.3 ``LiquidationLogic``), modelled on top of the 3.0.x
    amount math (bonus, protocol fee, collateral cap and rounding are unchanged):

    * close factor: the whole reserve debt may be repaid, unless the user's collateral
      in the *collateral reserve* and debt in the *debt reserve* are both worth >= 2,000
      base (2000e8) and HF > 0.95; then, if the reserve debt is worth more than half the
      user's *total* debt, at most ``percentMul(totalDebtBase, 50%)`` converted to the
      debt asset (truncating) -- not 50% of the reserve debt as in 3.0;
    * dust: a call that neither repays the whole reserve debt nor takes the whole
      collateral balance reverts (``MUST_NOT_LEAVE_DUST``) unless the debt left and the
      collateral left (balance minus what the liquidator gets; the fee is not
      subtracted, as in the contract) are both worth >= 1,000 base;
    * deficit: a call that takes all of the user's collateral burns all their debt, so
      no second call can follow.

    Base values use the same prices as the amounts (v3.3 has no e-mode price sources,
    so on a real v3.3 market they are the asset prices). Not modelled: the liquidation
    grace period (v3.1+) and the price-oracle sentinel.
    """

    V3_0 = "v3.0"
    V3_3 = "v3.3"


class InventoryUse(enum.Enum):
    """When a plan repays with the owner's own debt tokens and keeps the collateral
    (``LiquidationPlan.keep``) rather than flash-borrow the debt and sell the collateral.

    A kept collateral is valued at the oracle's price: no swap cost and no flash premium,
    but the owner holds it (and its price risk) afterwards.
    """

    OFF = "off"  # flash loans only
    FALLBACK = "fallback"  # keep only when no flash-loan sale clears min_profit_base
    BEST = "best"  # whichever nets more


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyInput:
    """One planning round: the market at a block, the candidates, and the execution terms.

    ``positions`` are the users to consider (keys are passed through to the plans);
    ``pairs`` are Uniswap V2 pairs keyed by ``pair_key``. ``native_price_base`` is the
    base-currency value of 1e18 wei of the gas token (e.g. the WETH oracle price), so
    gas costs ``gas_units * gas_price_wei * native_price_base // 10**18`` base units.
    ``emode_prices`` maps an e-mode category id to its price source's oracle price, for
    categories that have one. ``inventory`` maps a token (lower-case) to what the owner
    can spend of it on ``keep`` plans, as ``inventory_use`` allows.
    """

    market: MarketState
    ts: int  # block.timestamp the transaction will execute at
    positions: Mapping[str, UserPosition]
    pairs: Mapping[frozenset[str], PairQuote]
    gas_price_wei: int
    native_price_base: int
    flash_premium_bps: int
    min_profit_base: int = 0
    rules: CloseFactorRules = CloseFactorRules.V3_0
    emode_prices: Mapping[int, int] | None = None
    gas_units_base: int = 300_000  # the transaction without liquidations (flash loan, swaps)
    gas_units_per_step: int = 250_000  # each liquidationCall
    gas_units_keep_base: int = 230_000  # a ``keep`` transaction without liquidations
    inventory: Mapping[str, int] = field(default_factory=dict)
    inventory_use: InventoryUse = InventoryUse.OFF
    # A two-call plan's first call must leave HF at most 1 - this (WAD): see
    # default._second_call. 1e-4 costs a negligible part of the second call's reach.
    two_step_hf_buffer: int = 10**14
    protocol: str = "aave-v3"

    def __post_init__(self) -> None:
        for name in (
            "gas_price_wei",
            "native_price_base",
            "gas_units_base",
            "gas_units_per_step",
            "gas_units_keep_base",
            "two_step_hf_buffer",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.flash_premium_bps <= 10_000:
            raise ValueError("flash_premium_bps must be within 0..10000")

    def gas_units(self, steps: int, *, keep: bool = False) -> int:
        base = self.gas_units_keep_base if keep else self.gas_units_base
        return base + self.gas_units_per_step * steps

    def inventory_of(self, token: str) -> int:
        """What ``keep`` plans may repay in ``token`` (0 when inventory is off)."""
        if self.inventory_use is InventoryUse.OFF:
            return 0
        return self.inventory.get(token.lower(), 0)

    def gas_cost_base(self, gas_units: int) -> int:
        """Gas in base currency, floored like every base conversion of the strategies."""
        return gas_units * self.gas_price_wei * self.native_price_base // 10**18

    def pair(self, token_a: str, token_b: str) -> PairQuote | None:
        return self.pairs.get(pair_key(token_a, token_b))


@runtime_checkable
class Strategy(Protocol):
    """Turns liquidatable positions into plans.

    ``plan`` returns at most one plan per user, only plans with ``net_profit_base >=
    inp.min_profit_base``, best (highest ``net_profit_base``) first. A strategy may also
    have ``plans_best_first(inp)``: the same plans in the same order, priced as they are
    read (see ``best_first``).
    """

    name: str
    protocol: str  # the adapter whose planning input it takes (``LiquidationAdapter.name``)

    # ``inp`` is the adapter's planning input: ``StrategyInput`` for Aave V3.
    def plan(self, inp: Any) -> list[LiquidationPlan]: ...


def best_first(strategy: Strategy, inp: Any) -> Iterator[LiquidationPlan]:
    """``strategy.plan(inp)``, in its order, priced only as far as it is read when the
    strategy has a ``plans_best_first(inp)`` iterator (the same plans, lazily)."""
    lazy = getattr(strategy, "plans_best_first", None)
    return iter(strategy.plan(inp)) if lazy is None else iter(lazy(inp))
