"""The production strategy's inputs for research: what ``liqbot run`` would plan with.

Same pieces and settings as the bot (its ``AaveV3Liquidation``: flash premium, close
factor rules, gas model; ``DefaultStrategy``; Uniswap V2 quotes from ``PairBook``;
``[strategy]`` settings); only the block and the market state are the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bot.adapters.aave_v3.adapter import AaveV3Adapter
from bot.adapters.aave_v3.liquidation import AaveV3Liquidation
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import BlockRef, PlanTerms
from bot.config import Settings
from bot.execution.quotes import PairBook
from bot.wiring import pair_book
from strategies.api import PairQuote, StrategyInput
from strategies.default import DefaultStrategy

_GWEI = Decimal(10**9)


@dataclass(slots=True)
class Planner:
    liquidation: AaveV3Liquidation  # the bot's own Aave V3 adapter: premium, rules, gas model
    pairs: PairBook
    strategy: DefaultStrategy
    min_profit_base: int
    block_time_s: int
    priority_fee_wei: int

    @classmethod
    async def connect(cls, liquidation: AaveV3Liquidation, settings: Settings) -> Planner:
        st = settings.strategy
        return cls(
            liquidation=liquidation,
            pairs=await pair_book(liquidation.market.rpc, liquidation, settings),
            strategy=DefaultStrategy(),
            min_profit_base=int(st.min_profit * liquidation.base_unit),
            block_time_s=st.block_time_s,
            priority_fee_wei=int(settings.executor.priority_fee_gwei * _GWEI),
        )

    @property
    def adapter(self) -> AaveV3Adapter:
        return self.liquidation.market

    @property
    def unit(self) -> int:
        """The oracle's base currency unit (1e8 for USD)."""
        return self.liquidation.base_unit

    def native_price(self, market: MarketState) -> int:
        """Base-currency value of 1e18 wei of gas token (0 when it is not a reserve)."""
        return self.liquidation.native_price(market)

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
        terms = PlanTerms(
            ts=head.timestamp + self.block_time_s,
            gas_price_wei=self.gas_price_wei(head),
            native_price_base=self.native_price(market),
            min_profit_base=self.min_profit_base,
        )
        quotes = pairs if pairs is not None else await self.pairs.quotes(head.number)
        return self.liquidation.strategy_input(market, targets, quotes, terms)
