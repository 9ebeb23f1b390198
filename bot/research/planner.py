"""The production strategy's inputs for research: what ``liqbot run`` would plan with.

Same pieces and settings as the bot (``DefaultStrategy``, Uniswap V2 quotes from
``PairBook``, the flash premium read from the pool, ``[strategy]`` settings, the
runner's gas model); only the block is chosen by the caller instead of the head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.adapters.aave_v3.adapter import AaveV3Adapter
from bot.adapters.aave_v3.liquidation import GAS_UNITS_BASE, GAS_UNITS_PER_STEP
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import BlockRef
from bot.config import Settings
from bot.execution.quotes import PairBook
from bot.wiring import market_constants
from strategies.api import CloseFactorRules, PairQuote, StrategyInput
from strategies.default import DefaultStrategy

_GWEI = Decimal(10**9)


@dataclass(slots=True)
class Planner:
    adapter: AaveV3Adapter
    pairs: PairBook
    strategy: DefaultStrategy
    unit: int  # the oracle's base currency unit (1e8 for USD)
    min_profit_base: int
    rules: CloseFactorRules
    native_asset: str | None
    block_time_s: int
    flash_premium_bps: int
    priority_fee_wei: int

    @classmethod
    async def connect(cls, adapter: AaveV3Adapter, settings: Settings) -> Planner:
        consts = await market_constants(adapter, settings)
        unit = consts.base_unit
        st = settings.strategy
        return cls(
            adapter=adapter,
            pairs=consts.pairs,
            strategy=DefaultStrategy(),
            unit=unit,
            min_profit_base=int(st.min_profit * unit),
            rules=CloseFactorRules.V3_3
            if st.close_factor_rules == "v3.3"
            else CloseFactorRules.V3_0,
            native_asset=st.native_asset,
            block_time_s=st.block_time_s,
            flash_premium_bps=consts.flash_premium_bps,
            priority_fee_wei=int(settings.executor.priority_fee_gwei * _GWEI),
        )

    def native_price(self, market: MarketState) -> int:
        """Base-currency value of 1e18 wei of gas token (0 when it is not a reserve)."""
        if self.native_asset is None:
            return 0
        try:
            return market.by_asset(self.native_asset).price
        except KeyError:
            return 0

    def gas_price_wei(self, head: BlockRef) -> int:
        return head.base_fee + self.priority_fee_wei

    async def input(
        self,
        head: BlockRef,
        market: MarketState,
        targets: Mapping[str, UserPosition],
        pairs: Mapping[frozenset[str], PairQuote] | None = None,
    ) -> StrategyInput:
        """Plans priced for the block after ``head``; pools as of ``head`` unless given."""
        return StrategyInput(
            market=market,
            ts=head.timestamp + self.block_time_s,
            positions=targets,
            pairs=pairs if pairs is not None else await self.pairs.quotes(head.number),
            gas_price_wei=self.gas_price_wei(head),
            native_price_base=self.native_price(market),
            flash_premium_bps=self.flash_premium_bps,
            min_profit_base=self.min_profit_base,
            rules=self.rules,
            # The bot's own measured gas model, not a copy of its numbers.
            gas_units_base=GAS_UNITS_BASE,
            gas_units_per_step=GAS_UNITS_PER_STEP,
        )
