"""The owner's own tokens that ``keep`` plans may repay with (``strategy.inventory``).

A keep plan's transaction takes its debt tokens from the owner (``transferFrom`` by the
liquidator contract), so what it may spend is the smaller of the owner's balance and the
allowance the owner gave the contract. Both are read for every market asset at each
head, in the head's turn, so they ride the market read's ``eth_call`` (``Multicall``
merges them). Our unmined keep transactions have not spent theirs yet: the runner
subtracts them (``PlanSequence.spend``).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.abi import load_abi
from bot.multicall import Multicall, Read

_ERC20 = load_abi("ERC20")
_BALANCE = _ERC20.fn("balanceOf")
_ALLOWANCE = _ERC20.fn("allowance")


class Inventory:
    def __init__(self, multicall: Multicall, owner: str, liquidator: str, use: str) -> None:
        """``use``: how plans may use it (``strategy.inventory``: "fallback", "best")."""
        self.mc = multicall
        self.owner = owner
        self.liquidator = liquidator
        self.use = use

    async def read(self, assets: Sequence[str], block: int | str) -> dict[str, int]:
        """Lower-case asset -> what the liquidator may take from the owner at ``block``.
        A token that fails either read (not an ERC-20 after all) counts as 0."""
        reads = []
        for asset in assets:
            reads.append(Read(asset, _BALANCE, (self.owner,)))
            reads.append(Read(asset, _ALLOWANCE, (self.owner, self.liquidator)))
        got = await self.mc.read(reads, block, optional=len(reads))
        out: dict[str, int] = {}
        for i, asset in enumerate(assets):
            balance, allowed = got[2 * i], got[2 * i + 1]
            out[asset.lower()] = 0 if balance is None or allowed is None else min(balance, allowed)
        return out
