"""Uniswap V2 pool state for the strategy: which pairs exist, and their reserves per block.

Pairs are discovered once (``factory.getPair`` for every pair of market assets, one
multicall), and again for the pairs a new asset brings (``include``: a Morpho market
created after start); each block then costs one multicall of ``getReserves`` for all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from bot.abi import load_abi
from bot.multicall import Multicall, Read
from strategies.api import PairQuote

_FACTORY = load_abi("UniswapV2Factory")
_PAIR = load_abi("UniswapV2Pair")
ZERO = "0x" + "0" * 40


@dataclass(frozen=True, slots=True)
class _Pair:
    address: str
    token0: str
    token1: str


class PairBook:
    def __init__(
        self,
        multicall: Multicall,
        pairs: Sequence[_Pair],
        factory: str | None = None,
        assets: Iterable[str] = (),
    ) -> None:
        self.mc = multicall
        self.pairs = tuple(pairs)
        self.factory = factory
        self.assets = frozenset(a.lower() for a in assets)

    async def include(self, assets: Iterable[str], block: int | str = "latest") -> bool:
        """Discover the pairs ``assets`` add (nothing to do, and no call, when none is new).
        Whether any asset was new."""
        want = self.assets | {a.lower() for a in assets}
        if want == self.assets or self.factory is None:
            return False
        fresh = await PairBook.discover(self.mc, self.factory, sorted(want), block)
        self.pairs, self.assets = fresh.pairs, want
        return True

    @classmethod
    async def discover(
        cls, multicall: Multicall, factory: str, assets: Sequence[str], block: int | str = "latest"
    ) -> PairBook:
        combos = list(combinations(sorted({a.lower() for a in assets}), 2))
        found = await multicall.read(
            [Read(factory, _FACTORY.fn("getPair"), (a, b)) for a, b in combos], block
        )
        addresses = [p for p in found if int(p, 16) != 0]
        token0s = await multicall.read([Read(p, _PAIR.fn("token0")) for p in addresses], block)
        pairs = []
        for address, token0 in zip(addresses, token0s, strict=True):
            a, b = next((a, b) for (a, b), p in zip(combos, found, strict=True) if p == address)
            t0 = token0.lower()
            pairs.append(_Pair(address, t0, b if t0 == a else a))
        return cls(multicall, pairs, factory, assets)

    async def quotes(self, block: int | str) -> dict[frozenset[str], PairQuote]:
        """Every pair's reserves at ``block``, keyed by its two lower-case token addresses."""
        if not self.pairs:
            return {}
        reserves = await self.mc.read(
            [Read(p.address, _PAIR.fn("getReserves")) for p in self.pairs], block
        )
        return {
            frozenset((p.token0, p.token1)): PairQuote(
                p.address, p.token0, p.token1, int(r[0]), int(r[1])
            )
            for p, r in zip(self.pairs, reserves, strict=True)
        }
