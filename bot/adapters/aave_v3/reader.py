"""Read Aave V3 market state at a block in as few calls as possible.

``market()`` reads every reserve's data, all prices (one ``getAssetsPrices``) and the
e-mode categories in one Multicall3 ``eth_call``. ``users()`` reads users' raw token state
(scaled balances, stable-debt terms, collateral bits, e-mode) in batched multicalls; the
indexer does not need it, the parity tests and cold starts do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.abi import load_abi
from bot.adapters.aave_v3.config import decode_reserve_config, decode_user_config
from bot.adapters.aave_v3.health import EModeCategory, ReserveState, UserReserve
from bot.multicall import Multicall, Read

_POOL = load_abi("Pool")
_ORACLE = load_abi("AaveOracle")
_SCALED = load_abi("AToken")
_STABLE = load_abi("StableDebtToken")
_FEED = load_abi("SettableAggregator")  # only its Chainlink-standard latestRoundData
MAX_EMODE_CATEGORIES = 256


@dataclass(frozen=True, slots=True)
class ReserveTokens:
    asset: str
    id: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str


@dataclass(frozen=True, slots=True)
class MarketState:
    """Reserves (by id), e-mode categories (by id) and the block they were read at."""

    block: int
    reserves: Mapping[int, ReserveState]
    tokens: Mapping[int, ReserveTokens]
    emode_categories: Mapping[int, EModeCategory]
    # Reserve id -> the price feed's last update (latestRoundData.updatedAt); missing
    # where the source does not tell (not a Chainlink-style feed).
    price_updated_at: Mapping[int, int] = field(default_factory=dict)

    def by_asset(self, asset: str) -> ReserveState:
        for r in self.reserves.values():
            if r.asset.lower() == asset.lower():
                return r
        raise KeyError(asset)


@dataclass(frozen=True, slots=True)
class UserState:
    emode: int
    reserves: Mapping[int, UserReserve]


class AaveV3Reader:
    def __init__(self, multicall: Multicall, pool: str, oracle: str) -> None:
        self.mc = multicall
        self.pool = pool
        self.oracle = oracle
        self._source_of: dict[str, str] = {}

    async def base_currency_unit(self) -> int:
        """The oracle's price unit (1e8 for USD-based markets)."""
        (unit,) = await self.mc.read([Read(self.oracle, _ORACLE.fn("BASE_CURRENCY_UNIT"))])
        return int(unit)

    async def reserves_list(self, block: int | str = "latest") -> list[str]:
        (assets,) = await self.mc.read([Read(self.pool, _POOL.fn("getReservesList"))], block)
        return list(assets)

    async def market(
        self, block: int, assets: Sequence[str] | None = None, emode_ids: Sequence[int] = ()
    ) -> MarketState:
        """All reserves, their prices and the given e-mode categories at ``block``."""
        assets = list(assets) if assets is not None else await self.reserves_list(block)
        sources = await self._sources(assets)
        n, k = len(assets), len(emode_ids)
        reads = [Read(self.pool, _POOL.fn("getReserveData"), (a,)) for a in assets]
        reads += [Read(self.pool, _POOL.fn("getEModeCategoryData"), (i,)) for i in emode_ids]
        # Optional, at the end: the prices (AaveOracle reverts the whole batch when one
        # feed answers <= 0 and there is no fallback oracle), and the feeds' update times
        # (a non-Chainlink source simply answers nothing), all in the same call.
        reads.append(Read(self.oracle, _ORACLE.fn("getAssetsPrices"), (assets,)))
        reads += [Read(src, _FEED.fn("latestRoundData")) for src in sources]
        out = await self.mc.read(reads, block, optional=1 + len(sources))
        prices = out[n + k]
        if prices is None:
            prices = await self._prices_one_by_one(assets, block)
        rounds = out[n + k + 1 :]
        reserves: dict[int, ReserveState] = {}
        tokens: dict[int, ReserveTokens] = {}
        updated_at: dict[int, int] = {}
        for asset, data, price, rnd in zip(assets, out[: len(assets)], prices, rounds, strict=True):
            rid = data[7]
            if rnd is not None:
                updated_at[rid] = int(rnd[3])
            # A zero price is kept (not raised): the positions that depend on it are set
            # aside by the monitor, the rest of the market stays live.
            reserves[rid] = ReserveState(
                asset=asset,
                id=rid,
                config=decode_reserve_config(data[0][0]),
                liquidity_index=data[1],
                current_liquidity_rate=data[2],
                variable_borrow_index=data[3],
                current_variable_borrow_rate=data[4],
                last_update_timestamp=data[6],
                price=price,
            )
            tokens[rid] = ReserveTokens(asset, rid, data[8], data[9], data[10])
        categories = {}
        for cid, c in zip(emode_ids, out[n : n + k], strict=True):
            categories[cid] = EModeCategory(cid, c[0], c[1], c[2], c[3], c[4])
        return MarketState(block, reserves, tokens, categories, updated_at)

    async def _prices_one_by_one(self, assets: Sequence[str], block: int) -> list[int]:
        """Each asset's price on its own; 0 where the oracle reverts for it."""
        reads = [Read(self.oracle, _ORACLE.fn("getAssetPrice"), (a,)) for a in assets]
        prices = await self.mc.read(reads, block, optional=len(reads))
        return [0 if p is None else int(p) for p in prices]

    async def _sources(self, assets: Sequence[str]) -> list[str]:
        """AaveOracle's price source of each asset (read once; governance rarely moves
        them, and a moved source only makes its update time unknown, never wrong)."""
        missing = [a for a in assets if a not in self._source_of]
        if missing:
            found = await self.mc.read(
                [Read(self.oracle, _ORACLE.fn("getSourceOfAsset"), (a,)) for a in missing]
            )
            self._source_of.update(zip(missing, found, strict=True))
        return [self._source_of[a] for a in assets]

    async def users(
        self, users: Sequence[str], tokens: Mapping[int, ReserveTokens], block: int
    ) -> dict[str, UserState]:
        """Each user's raw position in every reserve, read from the tokens at ``block``."""
        per_reserve = (
            lambda t, u: Read(t.a_token, _SCALED.fn("scaledBalanceOf"), (u,)),
            lambda t, u: Read(t.variable_debt_token, _SCALED.fn("scaledBalanceOf"), (u,)),
            lambda t, u: Read(t.stable_debt_token, _STABLE.fn("principalBalanceOf"), (u,)),
            lambda t, u: Read(t.stable_debt_token, _STABLE.fn("getUserStableRate"), (u,)),
            lambda t, u: Read(t.stable_debt_token, _STABLE.fn("getUserLastUpdated"), (u,)),
        )
        ids = sorted(tokens)
        reads: list[Read] = []
        for u in users:
            reads.append(Read(self.pool, _POOL.fn("getUserConfiguration"), (u,)))
            reads.append(Read(self.pool, _POOL.fn("getUserEMode"), (u,)))
            reads += [make(tokens[i], u) for i in ids for make in per_reserve]
        out = await self.mc.read(reads, block)
        stride = 2 + len(ids) * len(per_reserve)
        result: dict[str, UserState] = {}
        for k, u in enumerate(users):
            row = out[k * stride : (k + 1) * stride]
            collateral, _borrowing = decode_user_config(row[0][0], max(ids) + 1 if ids else 0)
            reserves: dict[int, UserReserve] = {}
            for j, rid in enumerate(ids):
                a, v, sp, sr, st = row[2 + j * 5 : 7 + j * 5]
                if a or v or sp or rid in collateral:
                    reserves[rid] = UserReserve(a, v, sp, sr, st, rid in collateral)
            result[u] = UserState(row[1], reserves)
        return result
