"""Shared checks: the indexer's state and exact health factors against the chain's views."""

from __future__ import annotations

from bot.adapters.aave_v3.adapter import AaveV3Adapter, AaveV3Market
from bot.adapters.aave_v3.health import calculate_account_data
from bot.devnet.manifest import Manifest
from bot.devnet.report import read_accounts
from bot.indexer.indexer import Indexer, IndexerSettings
from bot.indexer.logs import WindowSettings
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient, to_int


def market_of(manifest: Manifest) -> AaveV3Market:
    return AaveV3Market(
        manifest.aave.pool_addresses_provider, manifest.multicall3, manifest.deploy_block
    )


async def make_indexer(
    rpc: JsonRpcClient,
    manifest: Manifest,
    *,
    store: Store | None = None,
    confirmations: int = 3,
    window: WindowSettings | None = None,
    reread_depth: int = 64,
) -> tuple[Indexer, AaveV3Adapter]:
    adapter = await AaveV3Adapter.connect(rpc, market_of(manifest))
    settings = IndexerSettings(
        start_block=manifest.deploy_block,
        confirmations=confirmations,
        reread_depth=reread_depth,
        window=window or WindowSettings(),
    )
    indexer = Indexer(rpc, adapter.indexing, store or Store(":memory:"), settings)
    indexer.load()
    return indexer, adapter


async def assert_parity(
    rpc: JsonRpcClient, manifest: Manifest, adapter: AaveV3Adapter, block: int
) -> dict[str, int]:
    """Every indexed user's raw state equals the tokens' views, and every borrower's exact
    account data equals getUserAccountData, at ``block``. Returns the health factors."""
    book = adapter.indexing.book
    users = sorted(set(book.users) | {b.address.lower() for b in manifest.borrowers})
    market = await adapter.market(block)
    chain = await adapter.reader.users(users, market.tokens, block)
    for u in users:
        mine = book.get(u)
        got = dict(mine.reserves) if mine else {}
        assert got == dict(chain[u].reserves), f"scaled state differs for {u}"
        assert (mine.emode if mine else 0) == chain[u].emode, f"e-mode differs for {u}"
    ts = to_int((await rpc.call("eth_getBlockByNumber", [hex(block), False]))["timestamp"])
    rows = await read_accounts(rpc, manifest, users, block)
    hfs = {}
    for u, row in zip(users, rows, strict=True):
        pos = book.get(u)
        if pos is None:
            assert row.total_collateral_base == row.total_debt_base == 0
            continue
        acc = calculate_account_data(
            pos.reserves, market.reserves, pos.emode, market.emode_categories, ts
        )
        assert (acc.total_collateral_base, acc.total_debt_base, acc.health_factor) == (
            row.total_collateral_base,
            row.total_debt_base,
            row.health_factor,
        ), f"account data differs for {u}"
        hfs[u] = acc.health_factor
    return hfs
