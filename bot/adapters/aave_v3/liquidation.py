"""Aave V3's liquidation side for the runner, and its plugin (``liqbot.adapters``:
``aave-v3``).

Health comes from ``HealthMonitor`` (exact, incremental); plans from a strategy taking
``strategies.api.StrategyInput``; transactions from the flash-loan ``Liquidator``. Any
Aave V3 deployment works, forks included (Spark, ...): only the market section changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.abi import load_abi
from bot.adapters.aave_v3.adapter import AaveV3Adapter, AaveV3Market
from bot.adapters.aave_v3.indexing import AaveV3Indexing
from bot.adapters.aave_v3.monitor import BlockHealth, HealthMonitor
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import AdapterPlugin, BlockRef, LiquidationAdapter, LiquidationPlan, PlanTerms, Scan
from bot.execution.liquidator import encode_liquidate
from bot.multicall import Read
from bot.rpc import JsonRpcClient
from strategies.api import CloseFactorRules, InventoryUse, StrategyInput

log = logging.getLogger(__name__)
_POOL = load_abi("Pool")

# Measured on the devnet: 540k gas for one flash liquidation + swap, 662k for two.
GAS_UNITS_BASE = 420_000
GAS_UNITS_PER_STEP = 122_000
# A keep plan (no flash loan, no swap): 471k for one liquidation.
GAS_UNITS_KEEP_BASE = 350_000


class AaveV3Liquidation(LiquidationAdapter):
    name = "aave-v3"

    def __init__(
        self,
        market: AaveV3Adapter,
        *,
        base_unit: int,
        flash_premium_bps: int,
        rules: CloseFactorRules = CloseFactorRules.V3_0,
        native_asset: str | None = None,
        max_price_age_s: int | None = None,
        funded: bool = False,
    ) -> None:
        self.market = market
        self.multicall = market.multicall
        self.indexing: AaveV3Indexing = market.indexing
        self.monitor = HealthMonitor(market, max_price_age_s)
        self.base_unit = base_unit
        self.flash_premium_bps = flash_premium_bps
        self.rules = rules
        self.native_asset = native_asset
        self.funded = funded

    def positions_of(self, keys: Iterable[Any]) -> set[str]:
        return self.indexing.users_of(keys)

    def positions(self) -> Mapping[str, UserPosition]:
        return self.indexing.book.users

    def assets(self) -> Sequence[str]:
        return [t.asset for t in self.indexing.tokens.values()]

    def prefetch(self, head: BlockRef) -> None:
        self.monitor.prefetch(head.number)

    async def scan(self, head: BlockRef, changed: set[str]) -> Scan:
        health = await self.monitor.on_block(head, changed)
        return Scan(
            head.number,
            health.liquidatable,
            self.native_price(health.market),
            health,
            len(health.evaluated),
            health.set_aside,
        )

    def native_price(self, market: MarketState) -> int:
        """The gas token's oracle price (0 if it is not a reserve: gas is then not
        charged against plans, which the simulation still guards)."""
        if self.native_asset is None:
            return 0
        try:
            return market.by_asset(self.native_asset).price
        except KeyError:
            log.warning("native asset is not a reserve", extra={"asset": self.native_asset})
            return 0

    def planning_input(
        self,
        scan: Scan,
        targets: Sequence[str],
        pairs: Mapping[frozenset[str], Any],
        terms: PlanTerms,
    ) -> StrategyInput:
        health: BlockHealth = scan.snapshot
        book = self.indexing.book.users
        return self.strategy_input(
            health.market, {u: book[u] for u in targets if u in book}, pairs, terms
        )

    def strategy_input(
        self,
        market: MarketState,
        positions: Mapping[str, UserPosition],
        pairs: Mapping[frozenset[str], Any],
        terms: PlanTerms,
    ) -> StrategyInput:
        """The strategy's input for ``positions`` on ``market`` (any market state: the
        research tools plan on shocked and historical ones)."""
        return StrategyInput(
            market=market,
            ts=terms.ts,
            positions=positions,
            pairs=pairs,
            gas_price_wei=terms.gas_price_wei,
            native_price_base=terms.native_price_base,
            flash_premium_bps=self.flash_premium_bps,
            min_profit_base=terms.min_profit_base,
            rules=self.rules,
            gas_units_base=GAS_UNITS_BASE,
            gas_units_per_step=GAS_UNITS_PER_STEP,
            gas_units_keep_base=GAS_UNITS_KEEP_BASE,
            inventory=terms.inventory,
            inventory_use=InventoryUse(terms.inventory_use),
        )

    def calldata(self, plan: LiquidationPlan, min_profit: int) -> bytes:
        return encode_liquidate(plan, min_profit, funded=self.funded)


class AaveV3Plugin(AdapterPlugin):
    name = "aave-v3"
    default_strategy = "default"

    def identity(self, market: Any) -> str:
        return str(market.pool_addresses_provider)

    def contracts(self, market: Any) -> Mapping[str, str]:
        return {
            "market.pool_addresses_provider": market.pool_addresses_provider,
            "market.multicall3": market.multicall3,
        }

    async def connect(
        self, rpc: JsonRpcClient, market: Any, context: Mapping[str, Any]
    ) -> AaveV3Liquidation:
        adapter = await AaveV3Adapter.connect(
            rpc, AaveV3Market(market.pool_addresses_provider, market.multicall3, market.start_block)
        )
        (premium,) = await adapter.multicall.read(
            [Read(adapter.reader.pool, _POOL.fn("FLASHLOAN_PREMIUM_TOTAL"))]
        )
        rules = context.get("close_factor_rules", "v3.0")
        return AaveV3Liquidation(
            adapter,
            base_unit=await adapter.reader.base_currency_unit(),
            flash_premium_bps=int(premium),
            rules=CloseFactorRules(rules),
            native_asset=context.get("native_asset"),
            max_price_age_s=context.get("max_price_age_s"),
            funded=bool(context.get("funded", False)),
        )


PLUGIN = AaveV3Plugin()
