"""``liqbot ledger``: the PnL ledger — every plan and its outcome — as a table or CSV."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, default=Path("liqbot.db"), help="the bot's database (liqbot.db)"
    )
    parser.add_argument("--csv", type=Path, default=None, help="write CSV here ('-': stdout)")


async def run(args: argparse.Namespace) -> int:
    import sys

    from bot.commands._tables import ledger_table
    from bot.errors import ConfigError
    from bot.ledger import Ledger

    if not args.db.is_file():
        raise ConfigError("--db", f"{args.db} does not exist")
    with Ledger(args.db) as ledger:
        if args.csv is not None:
            if str(args.csv) == "-":
                ledger.export_csv(sys.stdout)
            else:
                with args.csv.open("w", newline="") as f:
                    n = ledger.export_csv(f)
                print(f"wrote {n} rows to {args.csv}")
            return 0
        from rich.console import Console

        Console().print(ledger_table(ledger.rows(), base_unit=10**8))
    return 0
