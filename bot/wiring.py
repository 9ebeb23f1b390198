"""Build the running pieces from ``Settings``: the one RPC client, the adapter, the store
and the indexer. Commands call this; nothing here runs at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.adapters.aave_v3.adapter import AaveV3Adapter, AaveV3Market
from bot.api import HeadSource
from bot.chain.heads import head_source
from bot.config import Settings
from bot.errors import ChainMismatchError
from bot.indexer.indexer import Indexer, IndexerSettings
from bot.indexer.logs import WindowSettings
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient, RpcSettings, to_int


@dataclass(slots=True)
class IndexService:
    settings: Settings
    rpc: JsonRpcClient
    adapter: AaveV3Adapter
    store: Store
    indexer: Indexer

    def heads(self) -> HeadSource:
        url = self.settings.chain.ws_url or self.settings.chain.rpc_url
        return head_source(url, self.rpc, self.settings.indexer.poll_interval_s)


def rpc_client(settings: Settings) -> JsonRpcClient:
    r = settings.rpc
    return JsonRpcClient(
        settings.chain.rpc_url,
        RpcSettings(
            rate_limit_per_s=r.rate_limit_per_s,
            max_in_flight=r.max_in_flight,
            timeout_s=r.timeout_s,
            retries=r.retries,
            max_batch=r.max_batch,
        ),
    )


async def check_chain(rpc: JsonRpcClient, settings: Settings) -> int:
    actual = to_int(await rpc.call("eth_chainId"))
    expected = settings.chain.chain_id
    if expected is not None and expected != actual:
        raise ChainMismatchError(expected, actual, settings.chain.rpc_url)
    return actual


@asynccontextmanager
async def open_index(settings: Settings) -> AsyncIterator[IndexService]:
    async with rpc_client(settings) as rpc:
        chain_id = await check_chain(rpc, settings)
        m = settings.market
        adapter = await AaveV3Adapter.connect(
            rpc, AaveV3Market(m.pool_addresses_provider, m.multicall3, m.start_block)
        )
        store = Store(settings.indexer.database)
        try:
            store.check_identity(
                {
                    "chain_id": str(chain_id),
                    "protocol": m.protocol,
                    "market": m.pool_addresses_provider,
                }
            )
            ix = settings.indexer
            indexer = Indexer(
                rpc,
                adapter.indexing,
                store,
                IndexerSettings(
                    start_block=m.start_block,
                    confirmations=ix.confirmations,
                    window=WindowSettings(initial=ix.log_window, maximum=ix.max_log_window),
                ),
            )
            indexer.load()
            yield IndexService(settings, rpc, adapter, store, indexer)
        finally:
            store.close()
