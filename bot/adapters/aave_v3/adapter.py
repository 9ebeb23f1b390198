"""Wire an Aave V3 market from its PoolAddressesProvider: reader, indexing, market reads.

Works for the devnet and for any Aave V3 deployment (Ethereum, Arbitrum, Spark, ...):
only the provider address, Multicall3 and the first block to index are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.abi import load_abi
from bot.adapters.aave_v3.indexing import AaveV3Indexing
from bot.adapters.aave_v3.reader import AaveV3Reader, MarketState
from bot.errors import ConfigError
from bot.multicall import Multicall, Read
from bot.rpc import JsonRpcClient

_PROVIDER = load_abi("PoolAddressesProvider")


@dataclass(frozen=True, slots=True)
class AaveV3Market:
    pool_addresses_provider: str
    multicall3: str
    start_block: int


class AaveV3Adapter:
    """One Aave V3 market: its reader and its indexer-side protocol state."""

    def __init__(
        self,
        rpc: JsonRpcClient,
        multicall: Multicall,
        reader: AaveV3Reader,
        indexing: AaveV3Indexing,
    ) -> None:
        self.rpc = rpc
        self.multicall = multicall
        self.reader = reader
        self.indexing = indexing
        self._reserve_emodes: set[int] = set()

    @classmethod
    async def connect(
        cls, rpc: JsonRpcClient, market: AaveV3Market, block: int | str = "latest"
    ) -> AaveV3Adapter:
        """Discover Pool, oracle and reserve tokens (one multicall each)."""
        for key, address in (
            ("market.pool_addresses_provider", market.pool_addresses_provider),
            ("market.multicall3", market.multicall3),
        ):
            ref = hex(block) if isinstance(block, int) else block
            if await rpc.call("eth_getCode", [address, ref]) in ("0x", "0x0"):
                raise ConfigError(key, f"no contract at {address} on this chain")
        mc = Multicall(rpc, market.multicall3)
        provider = market.pool_addresses_provider
        pool, oracle = await mc.read(
            [
                Read(provider, _PROVIDER.fn("getPool")),
                Read(provider, _PROVIDER.fn("getPriceOracle")),
            ],
            block,
        )
        reader = AaveV3Reader(mc, pool, oracle)
        state = await reader.market(block if isinstance(block, int) else await _head(rpc))
        return cls(rpc, mc, reader, AaveV3Indexing(pool, state.tokens, mc))

    def emode_ids(self) -> list[int]:
        """E-mode categories in use: by reserves' configuration and by indexed users."""
        users = {p.emode for p in self.indexing.book.users.values() if p.emode}
        return sorted(users | self._reserve_emodes)

    async def market(self, block: int) -> MarketState:
        """Reserves, prices and every e-mode category in use, at ``block``: one eth_call
        (two the first time a reserve reveals a category not seen before)."""
        assets = [t.asset for t in self.indexing.tokens.values()]
        state = await self.reader.market(block, assets, self.emode_ids())
        seen = {r.config.emode_category for r in state.reserves.values()} - {0}
        if not seen <= self._reserve_emodes:
            self._reserve_emodes |= seen
            state = await self.reader.market(block, assets, self.emode_ids())
        return state


async def _head(rpc: JsonRpcClient) -> int:
    return int(await rpc.call("eth_blockNumber"), 16)
