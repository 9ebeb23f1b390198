"""Morpho Blue's liquidation side for the runner, and its plugin (``liqbot.adapters``:
``morpho-blue``).

Each head costs one multicall: every market's oracle ``price()`` and IRM
``borrowRateView`` (on the stored market, which is what ``liquidate`` passes to it when
it accrues), and the valuation oracle's base prices of the markets' tokens. Each market
is then accrued exactly to the timestamp the transaction will execute at (head + block
time) and every borrower is checked with ``Morpho._isHealthy``'s arithmetic: the verdict
is the contract's, so a position is liquidatable here iff ``liquidate`` succeeds.

Position keys are ``<market id>:<borrower>`` (``strategies.morpho.position_key``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.abi import AbiFunction, load_abi
from bot.adapters.morpho_blue.indexing import NS_MARKET, NS_POSITION, MorphoBlueIndexing
from bot.adapters.morpho_blue.math import accrue_interest, is_healthy
from bot.adapters.morpho_blue.state import MarketState
from bot.adapters.morpho_blue.types import Market
from bot.api import (
    AdapterPlugin,
    BlockRef,
    Key,
    LiquidationAdapter,
    LiquidationPlan,
    PlanTerms,
    Scan,
)
from bot.errors import ConfigError
from bot.execution.liquidator import encode_morpho_liquidate
from bot.multicall import Multicall, Read
from bot.rpc import JsonRpcClient
from strategies.morpho import MorphoMarketView, MorphoStrategyInput, MorphoTarget, position_key

log = logging.getLogger(__name__)

_PRICE = AbiFunction.parse("price()", ["uint256"])
_BORROW_RATE = AbiFunction.parse(
    "borrowRateView((address,address,address,address,uint256),"
    "(uint128,uint128,uint128,uint128,uint128,uint128))",
    ["uint256"],
)
_DECIMALS = AbiFunction.parse("decimals()", ["uint8"])
_ORACLE = load_abi("AaveOracle")
_ZERO = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class MorphoSnapshot:
    """The markets as ``liquidate`` will see them at ``ts``, and the tokens' base prices."""

    ts: int
    markets: Mapping[str, MorphoMarketView]
    base_prices: Mapping[str, int]


class MorphoBlueLiquidation(LiquidationAdapter):
    name = "morpho-blue"

    def __init__(
        self,
        indexing: MorphoBlueIndexing,
        multicall: Multicall,
        *,
        valuation_oracle: str,
        base_unit: int,
        markets: Sequence[str] = (),
        native_asset: str | None = None,
        block_time_s: int = 12,
    ) -> None:
        self.indexing: MorphoBlueIndexing = indexing
        self.multicall: Multicall = multicall
        self.valuation_oracle = valuation_oracle
        self.base_unit = base_unit
        self.only = frozenset(m.lower() for m in markets)
        self.native_asset = native_asset.lower() if native_asset else None
        self.block_time_s = block_time_s
        self.decimals: dict[str, int] = {}
        self._unpriced: set[str] = set()

    # -- what is indexed -----------------------------------------------------------------
    def _markets(self) -> dict[str, MarketState]:
        book = self.indexing.book
        return {i: m for i, m in book.markets.items() if not self.only or i in self.only}

    def positions_of(self, keys: Iterable[Key]) -> set[str]:
        book = self.indexing.book
        out: set[str] = set()
        for ns, key in keys:
            if ns == NS_POSITION:
                market_id, _, user = key.partition(":")
                if not self.only or market_id in self.only:
                    out.add(position_key(market_id, user))
            elif ns == NS_MARKET and (not self.only or key in self.only):
                # Totals moved (interest, a repay): every borrower's debt in it moved.
                out |= {position_key(key, u) for u in book.borrowers(key)}
        return out

    def positions(self) -> Mapping[str, MorphoTarget]:
        book = self.indexing.book
        return {
            position_key(i, u): MorphoTarget(i, u, p)
            for i in self._markets()
            for u, p in book.positions.get(i, {}).items()
            if p.borrow_shares
        }

    def _target(self, key: str) -> MorphoTarget | None:
        """The position ``key`` names, if it still borrows (no full ``positions()`` pass:
        planning reads only its few targets)."""
        market_id, _, user = key.partition(":")
        position = self.indexing.book.position(market_id, user)
        return MorphoTarget(market_id, user, position) if position.borrow_shares else None

    def assets(self) -> Sequence[str]:
        tokens = {
            t.lower()
            for m in self._markets().values()
            for t in (m.params.loan_token, m.params.collateral_token)
        }
        return sorted(tokens)

    # -- per head ------------------------------------------------------------------------
    async def scan(self, head: BlockRef, changed: set[str]) -> Scan:
        snapshot = await self.snapshot(head)
        targets = self.positions()
        liquidatable = set()
        set_aside = set()
        for key, t in targets.items():
            view = snapshot.markets.get(t.market_id)
            if view is None:
                continue
            if is_healthy(t.position, view.market, view.price, view.params.lltv):
                continue
            if view.price == 0 or t.market_id in self._unpriced:
                set_aside.add(key)
            else:
                liquidatable.add(key)
        native = snapshot.base_prices.get(self.native_asset, 0) if self.native_asset else 0
        return Scan(
            head.number,
            frozenset(liquidatable),
            native,
            snapshot,
            len(targets),
            frozenset(set_aside),
        )

    async def snapshot(self, head: BlockRef) -> MorphoSnapshot:
        """Every market accrued to ``head.timestamp + block_time_s``, with its oracle
        price, and the tokens' base prices: one multicall at ``head``."""
        markets = self._markets()
        tokens = list(self.assets())
        await self._learn_decimals(tokens, head.number)
        ids = list(markets)
        reads = [Read(markets[i].params.oracle, _PRICE) for i in ids]
        reads += [
            Read(
                markets[i].params.irm,
                _BORROW_RATE,
                (markets[i].params.as_tuple(), markets[i].market.as_tuple()),
            )
            for i in ids
            if markets[i].params.irm.lower() != _ZERO
        ]
        reads.append(Read(self.valuation_oracle, _ORACLE.fn("getAssetsPrices"), (tokens,)))
        # A reverting oracle or rate model leaves its market out (optional reads), not the head.
        out = await self.multicall.read(reads, head.number, optional=len(reads))
        prices = out[: len(ids)]
        rates = iter(out[len(ids) : -1])
        base_prices = dict(zip(tokens, out[-1] or [0] * len(tokens), strict=True))
        ts = head.timestamp + self.block_time_s
        views: dict[str, MorphoMarketView] = {}
        unpriced: set[str] = set()
        for i, price in zip(ids, prices, strict=True):
            ms = markets[i]
            has_irm = ms.params.irm.lower() != _ZERO
            rate = next(rates) if has_irm else 0
            if price is None or rate is None:
                unpriced.add(i)
                continue
            r = int(rate) if has_irm else None
            accrued = _accrue(ms.market, ts, r)
            # The next block may come sooner than ``ts`` (even at the head's own timestamp,
            # which anvil and some L2s allow): plans must not revert then.
            earliest = _accrue(ms.market, head.timestamp, r)
            views[i] = MorphoMarketView(i, ms.params, accrued, int(price), earliest)
            if not price or not base_prices.get(ms.params.loan_token.lower()):
                unpriced.add(i)
        if unpriced != self._unpriced:
            for i in unpriced - self._unpriced:
                log.warning(
                    "untrusted price: the market's positions are not liquidated",
                    extra={"market": i, "block": head.number},
                )
            self._unpriced = unpriced
        return MorphoSnapshot(ts, views, base_prices)

    async def _learn_decimals(self, tokens: Sequence[str], block: int) -> None:
        new = [t for t in tokens if t not in self.decimals]
        if new:
            got = await self.multicall.read([Read(t, _DECIMALS) for t in new], block)
            self.decimals.update({t: int(d) for t, d in zip(new, got, strict=True)})

    def planning_input(
        self,
        scan: Scan,
        targets: Sequence[str],
        pairs: Mapping[frozenset[str], Any],
        terms: PlanTerms,
    ) -> MorphoStrategyInput:
        snap: MorphoSnapshot = scan.snapshot
        return MorphoStrategyInput(
            markets=snap.markets,
            ts=terms.ts,
            positions={k: t for k in targets if (t := self._target(k)) is not None},
            pairs=pairs,
            base_prices=snap.base_prices,
            decimals=self.decimals,
            gas_price_wei=terms.gas_price_wei,
            native_price_base=terms.native_price_base,
            min_profit_base=terms.min_profit_base,
        )

    def calldata(self, plan: LiquidationPlan, min_profit: int) -> bytes:
        market_id = plan.user.partition(":")[0]
        params = self.indexing.book.market(market_id).params
        return encode_morpho_liquidate(self.indexing.morpho, params, plan, min_profit)


def _accrue(market: Market, ts: int, rate: int | None) -> Market:
    """``market`` after ``liquidate``'s own accrual at ``ts``; ``rate`` is the IRM's answer
    for the stored market (None: no IRM)."""
    if ts <= market.last_update:
        return market
    return accrue_interest(market, ts, None if rate is None else lambda _m: rate).market


class MorphoBluePlugin(AdapterPlugin):
    name = "morpho-blue"
    default_strategy = "morpho-default"

    def identity(self, market: Any) -> str:
        return str(market.morpho)

    def contracts(self, market: Any) -> Mapping[str, str]:
        return {
            "market.morpho": market.morpho,
            "market.valuation_oracle": market.valuation_oracle,
        }

    async def connect(
        self, rpc: JsonRpcClient, market: Any, context: Mapping[str, Any]
    ) -> MorphoBlueLiquidation:
        mc = Multicall(rpc, market.multicall3)
        try:
            (unit,) = await mc.read(
                [Read(market.valuation_oracle, _ORACLE.fn("BASE_CURRENCY_UNIT"))]
            )
        except Exception as e:
            raise ConfigError(
                "market.valuation_oracle",
                f"{market.valuation_oracle} does not answer BASE_CURRENCY_UNIT() ({e})",
                fix="set it to an Aave V3 oracle of this chain",
            ) from e
        return MorphoBlueLiquidation(
            MorphoBlueIndexing(market.morpho, rpc),
            mc,
            valuation_oracle=market.valuation_oracle,
            base_unit=int(unit),
            markets=market.markets,
            native_asset=context.get("native_asset"),
            block_time_s=int(context.get("block_time_s", 12)),
        )


PLUGIN = MorphoBluePlugin()
