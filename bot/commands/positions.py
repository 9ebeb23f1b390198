"""``liqbot positions``: every borrower's exact health at the head, riskiest first."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.adapters.aave_v3.health import AccountData
    from bot.api import BlockRef
    from bot.wiring import IndexService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (one object per user)")
    parser.add_argument("--max-hf", type=float, default=None, help="only health factors below this")
    parser.add_argument(
        "--min-debt",
        type=float,
        default=0.0,
        help="only debts of at least this (base currency, e.g. USD)",
    )
    parser.add_argument("--user", action="append", default=[], help="only these users (repeatable)")
    parser.add_argument("--limit", type=int, default=50, help="rows in the table (JSON lists all)")


async def borrowers_at(
    svc: IndexService, head: BlockRef, users: Collection[str] = ()
) -> tuple[list[tuple[str, AccountData]], int]:
    """Every borrower's exact health at ``head`` (the index synced to it), riskiest first,
    and the oracle's base currency unit. ``users``: only these (lower-case)."""
    from bot.adapters.aave_v3.evaluator import AccountEvaluator

    market = await svc.adapter.market(head.number)
    book = svc.adapter.indexing.book
    positions = {u: p for u, p in book.users.items() if not users or u in users}
    accounts = AccountEvaluator(market, head.timestamp).evaluate_many(positions)
    base_unit = await svc.adapter.reader.base_currency_unit()
    rows = [(u, a) for u, a in accounts.items() if a.total_debt_base > 0]
    rows.sort(key=lambda r: r[1].health_factor)
    return rows, base_unit


async def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from eth_utils import to_checksum_address
    from rich.console import Console
    from rich.table import Table

    from bot.commands._common import load_settings
    from bot.wiring import open_index

    WAD = 10**18
    settings = load_settings(args)
    async with open_index(settings) as svc:
        report = await svc.indexer.sync()
        block = report.head.number
        borrowers, base_unit = await borrowers_at(svc, report.head, {u.lower() for u in args.user})
    rows = [
        (u, a)
        for u, a in borrowers
        if a.total_debt_base >= args.min_debt * base_unit
        and (args.max_hf is None or a.health_factor < args.max_hf * WAD)
    ]
    if args.json:
        out = [
            {
                "user": to_checksum_address(u),
                "health_factor": str(a.health_factor),
                "total_collateral_base": str(a.total_collateral_base),
                "total_debt_base": str(a.total_debt_base),
                "block": block,
            }
            for u, a in rows
        ]
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=130)
    t = Table(title=f"Positions at block {block}: {len(rows)} borrowers, riskiest first")
    for col in ("user", "health factor", "collateral", "debt", "liquidatable"):
        t.add_column(col, justify="right")
    for u, a in rows[: args.limit]:
        t.add_row(
            to_checksum_address(u),
            f"{a.health_factor / WAD:.6f}",
            f"{a.total_collateral_base / base_unit:,.2f}",
            f"{a.total_debt_base / base_unit:,.2f}",
            "yes" if a.health_factor < WAD else "",
        )
    console.print(t)
    return 0
