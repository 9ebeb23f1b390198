"""``liqbot status``: a live view of a running bot, read from its database and the node.

Head and lag (the node's head against the index checkpoint), positions tracked, the
riskiest borrowers with exact health factors at the head, the latest plans and outcomes
and PnL totals from the ledger. Read-only: the database is opened read-only (no schema,
no lock, no writes), and blocks past the writer's checkpoint are replayed in memory.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType

    from bot.ledger import Ledger
    from bot.wiring import IndexService

WAD = 10**18
# Replaying more blocks than this past the checkpoint on every refresh is a re-index, not
# a status view: past it, positions are not shown and the lag says why.
MAX_REPLAY_BLOCKS = 1_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between refreshes (default 5)"
    )
    parser.add_argument("--top", type=int, default=10, help="riskiest positions shown")
    parser.add_argument("--plans", type=int, default=10, help="latest ledger rows shown")


async def frame(svc: IndexService, ledger: Ledger, *, top: int, plans: int) -> RenderableType:
    """One view of the bot: everything is read afresh (the writer keeps moving)."""
    import time

    from eth_utils import to_checksum_address
    from rich.console import Group
    from rich.table import Table

    from bot.commands.positions import borrowers_at
    from bot.ledger import Outcome

    ix = svc.indexer
    ix.load()  # the writer's latest checkpoint and rows
    head = await ix.latest()
    checkpoint = ix.confirmed_block
    lag = head.number - checkpoint
    summary = Table.grid(padding=(0, 2))
    summary.add_row("database", svc.store.path)
    summary.add_row("node head", f"{head.number} ({time.time() - head.timestamp:,.0f} s old)")
    summary.add_row("index checkpoint", f"{checkpoint} (lag {lag} blocks)")
    parts: list[RenderableType] = [summary]
    base_unit = await svc.adapter.reader.base_currency_unit()
    if lag <= MAX_REPLAY_BLOCKS:
        synced = await ix.sync(head.number)  # in memory only: the store is read-only
        borrowers, base_unit = await borrowers_at(svc, synced.head)
        summary.add_row("positions tracked", f"{len(svc.adapter.indexing.book)} accounts")
        summary.add_row(
            "borrowers",
            f"{len(borrowers)} ({sum(a.health_factor < WAD for _, a in borrowers)} liquidatable)",
        )
        risky = Table(title=f"Riskiest positions at block {synced.head.number}")
        for col in ("user", "health factor", "collateral", "debt"):
            risky.add_column(col, justify="right")
        for u, a in borrowers[:top]:
            risky.add_row(
                to_checksum_address(u),
                f"{a.health_factor / WAD:.6f}",
                f"{a.total_collateral_base / base_unit:,.2f}",
                f"{a.total_debt_base / base_unit:,.2f}",
            )
        parts.append(risky)
    else:
        summary.add_row("positions", f"not shown: the index is {lag} blocks behind the node")
    rows = ledger.rows()
    by_outcome = {o.value: sum(r.outcome == o for r in rows) for o in Outcome}
    realized = sum(r.realized_net_base for r in rows)
    summary.add_row(
        "plans", ", ".join(f"{n} {o}" for o, n in by_outcome.items() if n) or "none yet"
    )
    summary.add_row("realized net PnL", f"{realized / base_unit:,.2f} (base currency, after gas)")
    if rows:
        latest = Table(
            title="Latest plans (profit: base units of the debt asset or the collateral kept; "
            "realized when won)"
        )
        for col in ("#", "block", "user", "outcome", "profit", "net $", "tx"):
            latest.add_column(col, justify="left" if col in ("user", "outcome", "tx") else "right")
        for r in reversed(rows[-plans:]):
            won = r.outcome == Outcome.WON
            latest.add_row(
                str(r.id),
                str(r.block),
                to_checksum_address(r.user),
                r.outcome + (f": {r.reason[:30]}" if r.reason and not won else ""),
                str(r.realized_profit if won else r.predicted_profit),
                f"{(r.realized_net_base if won else r.predicted_net_base) / base_unit:,.2f}",
                r.tx_hash[:12] + "…" if r.tx_hash else "",
            )
        parts.append(latest)
    return Group(*parts)


async def run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import sys

    from rich.console import Console
    from rich.live import Live

    from bot.commands._common import load_settings
    from bot.commands._signals import stop_event
    from bot.ledger import Ledger
    from bot.wiring import open_index

    settings = load_settings(args)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    stop = stop_event()
    async with open_index(settings, read_only=True) as svc:
        ledger = Ledger(svc.store)
        if args.once:
            console.print(await frame(svc, ledger, top=args.top, plans=args.plans))
            return 0
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while not stop.is_set():
                live.update(await frame(svc, ledger, top=args.top, plans=args.plans))
                live.refresh()
                # Wakes at once on Ctrl-C / SIGTERM instead of finishing a sleep.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.interval)
    return 0
