"""The PnL ledger: every liquidation plan the bot produced and what became of it.

One row per plan handed to the executor, in the bot's database (a table of its own next to
the indexer's; in a shared PostgreSQL database each row also names its market and the
instance that wrote it). The row is written when the plan is decided on and updated
as its transaction settles, so a crash loses at most the outcome of an in-flight
transaction, never the plan. Token amounts are exact integers stored as text (they do
not fit SQLite's 64-bit integers); ``*_base`` values are oracle base-currency units.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from bot.api import LiquidationPlan
from bot.db.api import Database, open_database


class Outcome(StrEnum):
    DRY_RUN = "dry-run"  # planned and simulated; no key, nothing sent
    SENT = "sent"  # in flight
    WON = "won"  # mined, succeeded
    RACED = "raced"  # someone liquidated first (seen in simulation or on chain)
    REVERTED = "reverted"  # mined and reverted for another reason
    UNPROFITABLE = "unprofitable"  # the simulation said it would not pay: not sent
    CANCELLED = "cancelled"  # replaced by a transfer to ourselves: it no longer paid a bump
    DISPLACED = "displaced"  # its nonce went to a more valuable plan before it was mined


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    block: int  # head the plan was made at
    protocol: str
    user: str
    debt_asset: str
    collateral_assets: str  # comma-separated, step order
    steps: int
    debt_repaid: int
    collateral_seized: int
    bonus_base: int
    protocol_fee_base: int
    swap_cost_base: int
    flash_premium: int
    flash_premium_base: int
    predicted_profit: int  # profit_asset units, what the contract should send the owner
    predicted_gas_cost_base: int
    predicted_net_base: int
    outcome: str
    tx_hash: str
    settled_block: int
    gas_used: int
    gas_price_wei: int
    realized_profit: int  # profit_asset units the owner received (0 unless won)
    realized_gas_cost_base: int
    realized_net_base: int
    reason: str
    # The debt asset, or the collateral a keep plan hands over unsold (rows written
    # before keep plans existed read as their debt asset).
    profit_asset: str


_INT_COLUMNS = {f.name for f in fields(LedgerRow) if f.type == "int"}
_COLUMNS = [f.name for f in fields(LedgerRow)]


class Ledger:
    """The ledger table of ``db`` (a ``Database``, shared with the index and not closed
    here), or of the database at a path or URL (opened and closed here). ``instance`` tags
    the rows where the database is shared (the signer's address)."""

    def __init__(self, db: Database | Path | str, *, instance: str = "") -> None:
        self._owned = not isinstance(db, Database)
        self._db = db if isinstance(db, Database) else open_database(str(db))
        self._db.ledger_open(_COLUMNS[1:], instance)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(
        self, plan: LiquidationPlan, block: int, outcome: Outcome, *, reason: str = ""
    ) -> int:
        """A new row for ``plan``, made at head ``block``; returns its id."""
        values: dict[str, Any] = {
            "block": block,
            "protocol": plan.protocol,
            "user": plan.user,
            "debt_asset": plan.debt_asset,
            "collateral_assets": ",".join(s.collateral_asset for s in plan.steps),
            "steps": len(plan.steps),
            "debt_repaid": plan.flash_amount,
            "collateral_seized": sum(s.collateral_seized for s in plan.steps),
            "bonus_base": plan.bonus_base,
            "protocol_fee_base": plan.protocol_fee_base,
            "swap_cost_base": plan.swap_cost_base,
            "flash_premium": plan.flash_premium,
            "flash_premium_base": plan.flash_premium_base,
            "predicted_profit": plan.profit,
            "profit_asset": plan.profit_asset,
            "predicted_gas_cost_base": plan.gas_cost_base,
            "predicted_net_base": plan.net_profit_base,
            "outcome": outcome.value,
            "reason": reason,
        }
        return self._db.ledger_insert({k: str(v) for k, v in values.items()})

    def update(self, row_id: int, outcome: Outcome, **values: int | str) -> None:
        """Settle or annotate a row (``tx_hash``, ``gas_used``, ``realized_profit``...)."""
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
        values = {"outcome": outcome.value, **values}
        self._db.ledger_update(row_id, {k: str(v) for k, v in values.items()})

    def rows(self) -> list[LedgerRow]:
        return list(self._iter())

    def _iter(self) -> Iterator[LedgerRow]:
        for raw in self._db.ledger_select(_COLUMNS):
            values: dict[str, Any] = {
                name: int(v or 0) if name in _INT_COLUMNS else str(v)
                for name, v in zip(_COLUMNS, raw, strict=True)
            }
            values["profit_asset"] = values["profit_asset"] or values["debt_asset"]
            yield LedgerRow(**values)

    def export_csv(self, out: IO[str]) -> int:
        """Write every row as CSV (header first); returns the number of rows."""
        writer = csv.writer(out)
        writer.writerow(_COLUMNS)
        n = 0
        for row in self._iter():
            writer.writerow([getattr(row, c) for c in _COLUMNS])
            n += 1
        return n
