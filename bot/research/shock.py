"""Price shocks: what becomes liquidatable, and what it would pay, at each price level.

The market is read once at a block; for each level the asset's oracle price is replaced
in that snapshot (nothing is sent anywhere), every position is evaluated exactly with the
kernel, and the production strategy plans the liquidations against Uniswap V2 pools moved
to the shocked price (arbitraged along their constant product, as a market would), so the
profit is after swap impact. Debt liquidatable follows the close factor: 50% of a
position's debt, 100% at a health factor of 0.95 or less.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bot.abi import load_abi
from bot.adapters.aave_v3.kernel import PackedBook
from bot.adapters.aave_v3.reader import MarketState
from bot.api import BlockRef
from bot.errors import ConfigError
from bot.multicall import Read
from bot.research.planner import Planner
from strategies.api import PairQuote

WAD = 10**18
BPS = 10_000
CLOSE_FACTOR_HF = 95 * 10**16  # 0.95: the whole debt may be repaid at or below it
_ERC20 = load_abi("ERC20")


@dataclass(frozen=True, slots=True)
class ShockLevel:
    change_bps: int  # -500 = the price 5% lower
    price: int  # oracle units (8 decimals for USD markets)
    liquidatable: int  # positions with HF < 1
    users: tuple[str, ...]
    debt_base: int  # debt liquidatable under the close factor
    planned: int  # positions with a profitable plan
    bonus_base: int  # of those plans
    profit_base: int  # after swap impact and flash premium, before gas
    net_base: int  # after gas


def levels(from_bps: int, to_bps: int, steps: int) -> list[int]:
    """``steps`` evenly spaced price changes from ``from_bps`` to ``to_bps`` (inclusive)."""
    if steps < 1:
        raise ConfigError("--steps", "must be at least 1")
    if steps == 1:
        return [from_bps]
    return [from_bps + (to_bps - from_bps) * i // (steps - 1) for i in range(steps)]


async def resolve_asset(planner: Planner, symbol_or_address: str) -> str:
    """A reserve's address from its ERC-20 symbol (case-insensitive) or address."""
    assets = await planner.adapter.reader.reserves_list()
    if symbol_or_address.startswith("0x"):
        for a in assets:
            if a.lower() == symbol_or_address.lower():
                return a
    else:
        symbols = await planner.adapter.multicall.read(
            [Read(a, _ERC20.fn("symbol")) for a in assets]
        )
        for a, s in zip(assets, symbols, strict=True):
            if s.lower() == symbol_or_address.lower():
                return a
    raise ConfigError("--asset", f"{symbol_or_address} is not a reserve of this market")


def shocked(market: MarketState, asset: str, change_bps: int) -> MarketState:
    reserves = {
        rid: replace(r, price=r.price * (BPS + change_bps) // BPS)
        if r.asset.lower() == asset.lower()
        else r
        for rid, r in market.reserves.items()
    }
    return replace(market, reserves=reserves)


def align_pairs(
    pairs: Mapping[frozenset[str], PairQuote], market: MarketState
) -> dict[frozenset[str], PairQuote]:
    """Each pair arbitraged to the oracle price ratio at constant k (the fee ignored)."""
    by_asset = {r.asset.lower(): r for r in market.reserves.values()}
    out = {}
    for key, q in pairs.items():
        r0, r1 = by_asset.get(q.token0.lower()), by_asset.get(q.token1.lower())
        if r0 is None or r1 is None or not r0.price or not r1.price:
            out[key] = q
            continue
        k = q.reserve0 * q.reserve1
        num = k * r1.price * 10**r0.config.decimals
        den = r0.price * 10**r1.config.decimals
        new0 = math.isqrt(num // den)
        out[key] = replace(q, reserve0=new0, reserve1=k // new0 if new0 else q.reserve1)
    return out


async def shock(
    planner: Planner,
    packed: PackedBook,
    head: BlockRef,
    market: MarketState,
    asset: str,
    changes_bps: Sequence[int],
) -> list[ShockLevel]:
    """Evaluate every level of ``changes_bps`` on the snapshot ``market`` at ``head``."""
    book = planner.adapter.indexing.book
    pairs = await planner.pairs.quotes(head.number)
    out = []
    for change in changes_bps:
        m = shocked(market, asset, change)
        batch = packed.evaluate(m, head.timestamp)
        users = tuple(sorted(batch.liquidatable()))
        index = {u: i for i, u in enumerate(batch.users)}
        debt = 0
        for u in users:
            a = batch.account(index[u])
            debt += (
                a.total_debt_base if a.health_factor <= CLOSE_FACTOR_HF else a.total_debt_base // 2
            )
        plans = []
        if users:
            inp = await planner.input(
                head, m, {u: book.users[u] for u in users}, pairs=align_pairs(pairs, m)
            )
            plans = planner.strategy.plan(inp)
        out.append(
            ShockLevel(
                change_bps=change,
                price=m.by_asset(asset).price,
                liquidatable=len(users),
                users=users,
                debt_base=debt,
                planned=len(plans),
                bonus_base=sum(p.bonus_base for p in plans),
                profit_base=sum(p.profit_base for p in plans),
                net_base=sum(p.net_profit_base for p in plans),
            )
        )
    return out
