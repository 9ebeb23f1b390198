"""Shared checks: the Morpho indexer's state against the contract's own storage getters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.abi import load_abi
from bot.adapters.morpho_blue.indexing import MorphoBlueIndexing
from bot.adapters.morpho_blue.state import MarketState, MorphoBook
from bot.adapters.morpho_blue.types import Market, MarketParams, Position
from bot.db.api import Database
from bot.devnet.manifest import MorphoInfo
from bot.indexer.indexer import Indexer, IndexerSettings
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient

MORPHO = load_abi("Morpho")


def make_indexer(
    rpc: JsonRpcClient,
    info: MorphoInfo,
    *,
    store: Database | None = None,
    confirmations: int = 2,
) -> tuple[Indexer, MorphoBlueIndexing]:
    protocol = MorphoBlueIndexing(info.morpho, rpc)
    settings = IndexerSettings(start_block=info.deploy_block, confirmations=confirmations)
    indexer = Indexer(rpc, protocol, store or Store(":memory:"), settings)
    indexer.load()
    return indexer, protocol


async def calls(
    rpc: JsonRpcClient, to: str, fn: str, args: Sequence[tuple[Any, ...]], block: int
) -> list[Any]:
    f = MORPHO.fn(fn)
    raw = await rpc.batch_strict(
        [("eth_call", [{"to": to, "data": f.encode_hex(*a)}, hex(block)]) for a in args]
    )
    return [f.decode(r) for r in raw]


def _id(market_id: str) -> bytes:
    return bytes.fromhex(market_id[2:])


async def chain_markets(rpc: JsonRpcClient, info: MorphoInfo, block: int) -> dict[str, Market]:
    ids = [m.id for m in info.markets]
    rows = await calls(rpc, info.morpho, "market", [(_id(i),) for i in ids], block)
    return {i: Market(*r) for i, r in zip(ids, rows, strict=True)}


async def chain_positions(
    rpc: JsonRpcClient, morpho: str, pairs: Sequence[tuple[str, str]], block: int
) -> dict[tuple[str, str], Position]:
    rows = await calls(rpc, morpho, "position", [(_id(i), u) for i, u in pairs], block)
    return {p: Position(*r) for p, r in zip(pairs, rows, strict=True)}


def snapshot(
    book: MorphoBook,
) -> tuple[dict[str, MarketState], dict[tuple[str, str], Position], str]:
    positions = {(i, u): p for i, users in book.positions.items() for u, p in users.items()}
    return dict(book.markets), positions, book.fee_recipient


async def assert_parity(
    rpc: JsonRpcClient,
    info: MorphoInfo,
    protocol: MorphoBlueIndexing,
    block: int,
    extra_users: Sequence[str] = (),
) -> None:
    """Every market (params and struct) and every position the book holds, or the manifest
    and ``extra_users`` name, equals the contract's getters at ``block``, field for field."""
    book = protocol.book
    assert set(book.markets) == {m.id for m in info.markets}
    chain = await chain_markets(rpc, info, block)
    params = await calls(
        rpc, info.morpho, "idToMarketParams", [(_id(m.id),) for m in info.markets], block
    )
    for m, p in zip(info.markets, params, strict=True):
        mine = book.markets[m.id]
        assert mine.market == chain[m.id], f"market {m.id} differs"
        loan, collateral, oracle, irm, lltv = p
        assert mine.params == MarketParams(
            loan.lower(), collateral.lower(), oracle.lower(), irm.lower(), lltv
        )
        assert mine.params.id == m.id
    users = {u.lower() for u in (info.liquidity_provider, *extra_users)}
    users |= {b.address.lower() for b in info.borrowers}
    (recipient,) = await calls(rpc, info.morpho, "feeRecipient", [()], block)
    users.add(recipient[0].lower())
    assert book.fee_recipient == recipient[0].lower()
    pairs = sorted({(m.id, u) for m in info.markets for u in users} | set(snapshot(book)[1]))
    on_chain = await chain_positions(rpc, info.morpho, pairs, block)
    for pair in pairs:
        assert book.position(*pair) == on_chain[pair], f"position {pair} differs"
