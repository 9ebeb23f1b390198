"""Aave V3's event side for the indexer: filter, decode, apply, persist as rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.abi import load_abi
from bot.adapters.aave_v3.events import (
    ALL_TOPICS,
    ATOKEN,
    SDEBT,
    VDEBT,
    CollateralFlag,
    EModeChange,
    ScaledDelta,
    StableRefresh,
    StableTerms,
    TokenMap,
    decode_logs,
)
from bot.adapters.aave_v3.health import UserReserve
from bot.adapters.aave_v3.reader import ReserveTokens
from bot.adapters.aave_v3.state import Book
from bot.api import IndexedProtocol, Key, LogFilter, RawLog, Row
from bot.errors import AdapterError
from bot.multicall import Multicall, Read

NS_POSITION = "aave.pos"
NS_EMODE = "aave.emode"
_STABLE = load_abi("StableDebtToken")


def token_map(pool: str, tokens: Mapping[int, ReserveTokens]) -> TokenMap:
    by_token: dict[str, tuple[int, str]] = {}
    for rid, t in tokens.items():
        by_token[t.a_token.lower()] = (rid, ATOKEN)
        by_token[t.variable_debt_token.lower()] = (rid, VDEBT)
        by_token[t.stable_debt_token.lower()] = (rid, SDEBT)
    return TokenMap(by_token, {t.asset.lower(): rid for rid, t in tokens.items()}, pool.lower())


def _pos_row(u: UserReserve) -> Row:
    return (
        f"{u.scaled_atoken},{u.scaled_variable_debt},{u.stable_debt_principal},"
        f"{u.stable_rate},{u.stable_last_update},{int(u.collateral_enabled)}"
    )


def _parse_pos(row: Row) -> UserReserve:
    a, v, sp, sr, st, c = row.split(",")
    return UserReserve(int(a), int(v), int(sp), int(sr), int(st), c == "1")


class AaveV3Indexing(IndexedProtocol):
    name = "aave-v3"

    def __init__(
        self,
        pool: str,
        tokens: Mapping[int, ReserveTokens],
        multicall: Multicall | None = None,
        book: Book | None = None,
    ) -> None:
        self.pool = pool.lower()
        self.tokens = dict(tokens)
        self.map = token_map(pool, tokens)
        self.multicall = multicall
        self.book = book if book is not None else Book()

    def log_filter(self) -> LogFilter:
        return LogFilter((self.pool, *sorted(self.map.tokens)), ALL_TOPICS)

    def decode(self, logs: Sequence[RawLog]) -> list[Any]:
        return list(decode_logs(logs, self.map))

    async def resolve(self, effects: list[Any]) -> list[Any]:
        refresh = [e for e in effects if isinstance(e, StableRefresh)]
        if not refresh:
            return effects
        if self.multicall is None:
            raise AdapterError("stable-debt events need a multicall reader to resolve")
        terms: dict[StableRefresh, StableTerms] = {}
        for e in refresh:
            token = self.tokens[e.reserve].stable_debt_token
            p, r, t = await self.multicall.read(
                [
                    Read(token, _STABLE.fn("principalBalanceOf"), (e.user,)),
                    Read(token, _STABLE.fn("getUserStableRate"), (e.user,)),
                    Read(token, _STABLE.fn("getUserLastUpdated"), (e.user,)),
                ],
                e.block,
            )
            terms[e] = StableTerms(e.user, e.reserve, p, r, t)
        return [terms.get(e, e) if isinstance(e, StableRefresh) else e for e in effects]

    def apply(self, effects: Sequence[Any]) -> set[Key]:
        book = self.book
        dirty: set[Key] = set()
        for e in effects:
            if isinstance(e, ScaledDelta):
                book.add_scaled(e.user, e.reserve, atoken=e.atoken, vdebt=e.vdebt)
                dirty.add((NS_POSITION, f"{e.user}:{e.reserve}"))
            elif isinstance(e, CollateralFlag):
                book.set_collateral(e.user, e.reserve, e.enabled)
                dirty.add((NS_POSITION, f"{e.user}:{e.reserve}"))
            elif isinstance(e, EModeChange):
                book.set_emode(e.user, e.category)
                dirty.add((NS_EMODE, e.user))
            elif isinstance(e, StableTerms):
                book.set_stable(e.user, e.reserve, e.principal, e.rate, e.last_update)
                dirty.add((NS_POSITION, f"{e.user}:{e.reserve}"))
            elif isinstance(e, StableRefresh):
                raise AdapterError("unresolved stable-debt refresh reached apply()")
        return dirty

    def keys(self, effects: Sequence[Any]) -> set[Key]:
        out: set[Key] = set()
        for e in effects:
            if isinstance(e, ScaledDelta | CollateralFlag | StableTerms | StableRefresh):
                out.add((NS_POSITION, f"{e.user}:{e.reserve}"))
            elif isinstance(e, EModeChange):
                out.add((NS_EMODE, e.user))
        return out

    def rows(self, keys: Iterable[Key]) -> dict[Key, Row | None]:
        out: dict[Key, Row | None] = {}
        for ns, key in keys:
            if ns == NS_POSITION:
                user, rid = key.split(":")
                pos = self.book.get(user)
                u = pos.reserves.get(int(rid)) if pos else None
                out[(ns, key)] = _pos_row(u) if u is not None else None
            elif ns == NS_EMODE:
                pos = self.book.get(key)
                out[(ns, key)] = str(pos.emode) if pos and pos.emode else None
        return out

    def load(self, rows: Iterable[tuple[Key, Row]]) -> None:
        book = Book()
        for (ns, key), value in rows:
            if ns == NS_POSITION:
                user, rid = key.split(":")
                book.put_reserve(user, int(rid), _parse_pos(value))
            elif ns == NS_EMODE:
                book.set_emode(key, int(value))
        self.book = book

    def fresh(self) -> AaveV3Indexing:
        return AaveV3Indexing(self.pool, self.tokens, self.multicall)

    def users_of(self, keys: Iterable[Key]) -> set[str]:
        """Users whose rows are among ``keys`` (to re-evaluate after a sync)."""
        return {k.split(":")[0] for ns, k in keys if ns in (NS_POSITION, NS_EMODE)}
