"""``liqbot ledger``: the PnL ledger — every plan and its outcome — as a table or CSV."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.db.api import Database
    from bot.ledger import Ledger


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default="liqbot.db",
        help="the bot's database: a SQLite file (liqbot.db) or a postgresql:// URL",
    )
    parser.add_argument("--csv", type=Path, default=None, help="write CSV here ('-': stdout)")


async def run(args: argparse.Namespace) -> int:
    from bot.db.api import Database
    from bot.ledger import Ledger

    db = _database(args.db)
    try:
        with Ledger(db) as ledger:
            return _show(ledger, args.csv)
    finally:
        if isinstance(db, Database):
            db.close()


def _database(target: str) -> Database | str:
    """A ``postgresql://`` URL opened read-only (a live bot may be writing there: this
    view reads and creates nothing), or the path of a SQLite file that must exist."""
    from bot.db.api import is_url, open_database
    from bot.errors import ConfigError

    if is_url(target):
        return open_database(target, read_only=True)
    if not Path(target).is_file():
        raise ConfigError("--db", f"{target} does not exist")
    return target


def _show(ledger: Ledger, out: Path | None) -> int:
    import sys

    from bot.commands._tables import ledger_table

    if out is not None:
        if str(out) == "-":
            ledger.export_csv(sys.stdout)
        else:
            with out.open("w", newline="") as f:
                n = ledger.export_csv(f)
            print(f"wrote {n} rows to {out}")
        return 0
    from rich.console import Console

    Console().print(ledger_table(ledger.rows(), base_unit=10**8))
    return 0
