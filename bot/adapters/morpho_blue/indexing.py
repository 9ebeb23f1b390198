"""Morpho Blue's event side for the indexer: filter, decode, resolve, apply, persist as rows.

Rows: ``morpho.market/<id>`` (params and the ``Market`` struct), ``morpho.pos/<id>:<user>``
(the ``Position`` struct; absent when all zero) and ``morpho.global/fee_recipient``.

``resolve`` completes two things the logs do not carry: the block timestamp (``lastUpdate``
of every accruing effect; ``RawLog`` has no timestamp, so the headers of the blocks with
such logs are read in one batch) and the fee recipient of each ``AccrueInterest`` that
minted fee shares (state as of that log: the live state plus earlier ``SetFeeRecipient``
effects of the same batch, since the indexer resolves each batch right before applying
it). Resolved effects then apply to just the rows ``keys`` names, as the indexer's
confirmation step needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from bot.adapters.morpho_blue.events import (
    ALL_TOPICS,
    FeeRecipientSet,
    FeeSet,
    InterestAccrued,
    MarketCreated,
    PositionChange,
    decode_logs,
)
from bot.adapters.morpho_blue.state import ZERO_ADDRESS, MarketState, MorphoBook
from bot.adapters.morpho_blue.types import Market, MarketParams, Position
from bot.api import BlockRef, IndexedProtocol, Key, LogFilter, RawLog, Row
from bot.errors import AdapterError, RpcTransportError
from bot.rpc import JsonRpcClient

NS_MARKET = "morpho.market"
NS_POSITION = "morpho.pos"
NS_GLOBAL = "morpho.global"
FEE_RECIPIENT = "fee_recipient"

_Timed = MarketCreated | FeeSet | InterestAccrued | PositionChange


def _market_row(ms: MarketState) -> Row:
    p, m = ms.params, ms.market
    return ",".join(
        (p.loan_token, p.collateral_token, p.oracle, p.irm, *map(str, (p.lltv, *m.as_tuple())))
    )


def _parse_market(row: Row) -> MarketState:
    loan, coll, oracle, irm, lltv, *totals = row.split(",")
    tsa, tss, tba, tbs, last, fee = map(int, totals)
    return MarketState(
        MarketParams(loan, coll, oracle, irm, int(lltv)), Market(tsa, tss, tba, tbs, last, fee)
    )


def _position_row(p: Position) -> Row:
    return f"{p.supply_shares},{p.borrow_shares},{p.collateral}"


def _parse_position(row: Row) -> Position:
    s, b, c = row.split(",")
    return Position(int(s), int(b), int(c))


def _needs_timestamp(e: Any) -> bool:
    return isinstance(e, MarketCreated | FeeSet | InterestAccrued) or (
        isinstance(e, PositionChange) and e.accrues
    )


class MorphoBlueIndexing(IndexedProtocol):
    name = "morpho-blue"

    def __init__(
        self, morpho: str, rpc: JsonRpcClient | None = None, book: MorphoBook | None = None
    ) -> None:
        self.morpho = morpho.lower()
        self.rpc = rpc
        self.book = book if book is not None else MorphoBook()

    def log_filter(self) -> LogFilter:
        return LogFilter((self.morpho,), ALL_TOPICS)

    def decode(self, logs: Sequence[RawLog]) -> list[Any]:
        return list(decode_logs(logs, self.morpho))

    async def resolve(self, effects: list[Any]) -> list[Any]:
        blocks = sorted({e.block for e in effects if _needs_timestamp(e)})
        times = await self._timestamps(blocks) if blocks else {}
        recipient = self.book.fee_recipient
        out: list[Any] = []
        for e in effects:
            if isinstance(e, FeeRecipientSet):
                recipient = e.recipient
            elif isinstance(e, InterestAccrued):
                e = replace(
                    e, timestamp=times[e.block], fee_recipient=recipient if e.fee_shares else None
                )
            elif _needs_timestamp(e):
                e = replace(e, timestamp=times[e.block])
            out.append(e)
        return out

    async def _timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        if self.rpc is None:
            raise AdapterError("Morpho events need an RPC client to read block timestamps")
        headers = await self.rpc.batch_strict(
            [("eth_getBlockByNumber", [hex(n), False]) for n in blocks]
        )
        if any(h is None for h in headers):
            raise RpcTransportError("eth_getBlockByNumber", f"a block of {blocks} is missing")
        refs = [BlockRef.from_json(h) for h in headers]
        return {r.number: r.timestamp for r in refs}

    def apply(self, effects: Sequence[Any]) -> set[Key]:
        book = self.book
        for e in effects:
            if isinstance(e, PositionChange):
                book.change(e)
            elif isinstance(e, InterestAccrued):
                book.accrue(e)
            elif isinstance(e, MarketCreated):
                book.create_market(e)
            elif isinstance(e, FeeSet):
                book.set_fee(e)
            elif isinstance(e, FeeRecipientSet):
                book.set_fee_recipient(e)
        return self.keys(effects)

    def keys(self, effects: Sequence[Any]) -> set[Key]:
        out: set[Key] = set()
        for e in effects:
            if isinstance(e, PositionChange):
                out.add((NS_MARKET, e.id))
                out.add((NS_POSITION, f"{e.id}:{e.user}"))
            elif isinstance(e, InterestAccrued):
                out.add((NS_MARKET, e.id))
                if e.fee_recipient is not None:
                    out.add((NS_POSITION, f"{e.id}:{e.fee_recipient}"))
            elif isinstance(e, MarketCreated | FeeSet):
                out.add((NS_MARKET, e.id))
            elif isinstance(e, FeeRecipientSet):
                out.add((NS_GLOBAL, FEE_RECIPIENT))
        return out

    def rows(self, keys: Iterable[Key]) -> dict[Key, Row | None]:
        book = self.book
        out: dict[Key, Row | None] = {}
        for ns, key in keys:
            if ns == NS_MARKET:
                ms = book.markets.get(key)
                out[(ns, key)] = _market_row(ms) if ms is not None else None
            elif ns == NS_POSITION:
                mid, user = key.split(":")
                pos = book.position(mid, user)
                out[(ns, key)] = None if pos.empty else _position_row(pos)
            elif ns == NS_GLOBAL and key == FEE_RECIPIENT:
                zero = book.fee_recipient == ZERO_ADDRESS
                out[(ns, key)] = None if zero else book.fee_recipient
        return out

    def load(self, rows: Iterable[tuple[Key, Row]]) -> None:
        book = MorphoBook()
        for (ns, key), value in rows:
            if ns == NS_MARKET:
                book.put_market(key, _parse_market(value))
            elif ns == NS_POSITION:
                mid, user = key.split(":")
                book.put_position(mid, user, _parse_position(value))
            elif ns == NS_GLOBAL and key == FEE_RECIPIENT:
                book.fee_recipient = value
        self.book = book

    def fresh(self) -> MorphoBlueIndexing:
        return MorphoBlueIndexing(self.morpho, self.rpc)
