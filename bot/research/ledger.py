"""The backtest ledger: one row per opportunity, and the walk's progress, in SQLite.

A row is written when a position becomes liquidatable (with the plan we would have sent
and its simulation) and completed when the episode ends (liquidated by someone, or back
to health). Rows and the last block walked are committed in one transaction per block,
so an interrupted backtest resumes exactly where it stopped, without duplicates.
Money columns are exact integers stored as text (they exceed SQLite's 64 bits).
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Opportunity:
    """One episode of a position being liquidatable; see docs/research.md for each column."""

    user: str
    block: int  # first block at whose end the position was liquidatable
    timestamp: int
    health_factor: int  # WAD, at the end of ``block``
    total_collateral_base: int
    total_debt_base: int
    # Our plan at ``block`` (priced for block + 1) and its simulation on a fork.
    plan: str  # "planned", "no-plan" (nothing profitable), "not-simulated"
    debt_asset: str = ""
    collateral_assets: str = ""
    steps: int = 0
    debt_repaid: int = 0
    collateral_seized: int = 0
    bonus_base: int = 0
    swap_cost_base: int = 0
    predicted_profit: int = 0  # debt-asset units
    predicted_profit_base: int = 0
    predicted_gas_cost_base: int = 0
    predicted_net_base: int = 0
    simulated: str = ""  # "ok" or the revert reason
    simulated_profit: int = 0  # debt-asset units
    simulated_profit_base: int = 0
    simulated_gas: int = 0
    simulated_gas_cost_base: int = 0
    simulated_net_base: int = 0
    # What happened on chain.
    status: str = "open"  # open, taken, ours, recovered, unresolved
    end_block: int = 0
    delay_blocks: int = 0
    liquidator: str = ""
    liquidation_tx: str = ""
    liquidated_debt_asset: str = ""
    liquidated_debt: int = 0
    liquidated_collateral_asset: str = ""
    liquidated_collateral: int = 0
    health_factor_at_liquidation: int = 0  # WAD, at the end of the block before


COLUMNS = [f.name for f in fields(Opportunity)]
_INTS = {f.name for f in fields(Opportunity) if f.type == "int"}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS opportunities (
    {", ".join(f"{c} TEXT NOT NULL" for c in COLUMNS)},
    PRIMARY KEY (user, block)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _row(values: Mapping[str, Any]) -> Opportunity:
    typed: dict[str, Any] = {c: int(values[c]) if c in _INTS else values[c] for c in COLUMNS}
    return Opportunity(**typed)


class ResearchLedger:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResearchLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind(self, identity: Mapping[str, str], where: str) -> None:
        """Tie the file to one run (chain, market, range); refuse to mix runs."""
        have = dict(self._db.execute("SELECT key, value FROM meta WHERE key != 'last_block'"))
        if not have:
            self._db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(identity.items()))
            return
        for key, want in identity.items():
            if have.get(key) != want:
                raise ConfigError(
                    "--out",
                    f"{where} holds a backtest with {key}={have.get(key)}, not {want}",
                    fix="use another --out directory or delete it",
                )

    @property
    def last_block(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'last_block'").fetchone()
        return None if row is None else int(row[0])

    def commit_block(self, block: int, rows: list[Opportunity]) -> None:
        """Upsert ``rows`` and move the progress mark to ``block``, atomically."""
        marks = ", ".join("?" for _ in COLUMNS)
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                f"INSERT OR REPLACE INTO opportunities ({', '.join(COLUMNS)}) VALUES ({marks})",
                [[str(getattr(r, c)) for c in COLUMNS] for r in rows],
            )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('last_block', ?)", (str(block),))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def rows(self, status: str | None = None) -> list[Opportunity]:
        return list(self._iter(status))

    def _iter(self, status: str | None) -> Iterator[Opportunity]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM opportunities"
        args: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        cur = self._db.execute(sql + " ORDER BY CAST(block AS INTEGER), user", args)
        for raw in cur:
            yield _row(dict(zip(COLUMNS, raw, strict=True)))

    def export_csv(self, out: IO[str]) -> int:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        n = 0
        for row in self._iter(None):
            writer.writerow([getattr(row, c) for c in COLUMNS])
            n += 1
        return n
