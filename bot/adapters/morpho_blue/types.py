"""Morpho Blue's storage structs as immutable Python values (``IMorpho.sol``).

Field names follow the contract's (snake case); widths are the contract's: the market
totals, ``lastUpdate``, ``fee``, ``borrowShares`` and ``collateral`` are uint128,
``supplyShares`` is uint256.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak


@dataclass(frozen=True, slots=True)
class MarketParams:
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int  # WAD

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        """The ABI tuple ``(loanToken, collateralToken, oracle, irm, lltv)``."""
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)

    @property
    def id(self) -> str:
        """``MarketParamsLib.id``: keccak256 of the five words, as 0x-prefixed lower hex."""
        raw = encode(["address", "address", "address", "address", "uint256"], self.as_tuple())
        return "0x" + keccak(raw).hex()


@dataclass(frozen=True, slots=True)
class Market:
    total_supply_assets: int = 0
    total_supply_shares: int = 0
    total_borrow_assets: int = 0
    total_borrow_shares: int = 0
    last_update: int = 0
    fee: int = 0  # WAD, at most 0.25e18

    def as_tuple(self) -> tuple[int, int, int, int, int, int]:
        """In the order of the struct and of ``market(id)``'s outputs."""
        return (
            self.total_supply_assets,
            self.total_supply_shares,
            self.total_borrow_assets,
            self.total_borrow_shares,
            self.last_update,
            self.fee,
        )


@dataclass(frozen=True, slots=True)
class Position:
    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0

    @property
    def empty(self) -> bool:
        return not (self.supply_shares or self.borrow_shares or self.collateral)
