"""``liqbot demo``: the embedded default job on a fresh local devnet.

Brings up the devnet (a real Aave V3 market with seeded borrowers), prints the market and
its positions, crashes ETH by 30% in four steps while the bot liquidates through its
flash-loan contract, prints the PnL ledger, and stops everything it started.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from bot.devnet.manifest import Manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--borrowers", type=int, default=200, help="borrowers to seed (default 200)"
    )
    parser.add_argument(
        "--state-cache",
        type=Path,
        default=Path(".cache/devnet"),
        help="devnet state cache (default .cache/devnet; 'none' disables)",
    )
    parser.add_argument("--top", type=int, default=10, help="riskiest positions to list")
    parser.add_argument(
        "--protocol",
        choices=("aave-v3", "morpho-blue"),
        default="aave-v3",
        help="the market the bot liquidates in (morpho-blue: Morpho Blue markets deployed "
        "beside Aave, their oracles following the crash)",
    )
    parser.add_argument(
        "--crash-steps",
        type=int,
        default=4,
        help="ETH falls 8.5%% per step (4 steps: -30%%); 0 skips the crash",
    )


async def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from rich.console import Console
    from rich.table import Table

    from bot.devnet.devnet import DevnetSpec, start_devnet
    from bot.devnet.report import WAD, hf_display, read_accounts, read_reserves
    from bot.rpc import JsonRpcClient

    # Piped output (CI logs, files) gets a fixed width instead of rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=150)
    cache = None if str(args.state_cache) == "none" else args.state_cache
    t0 = time.monotonic()
    with console.status("bringing up the devnet (anvil + Aave V3 + Uniswap V2 + borrowers)…"):
        devnet = await start_devnet(
            DevnetSpec(borrowers=args.borrowers, morpho=args.protocol == "morpho-blue"),
            state_cache=cache,
        )
    try:
        m = devnet.manifest
        console.print(
            f"[bold]devnet[/] {devnet.url} chain {m.chain_id}: Aave V3 pool {m.aave.pool}, "
            f"{len(m.borrowers)} borrowers, ready in {time.monotonic() - t0:.1f}s"
            f"{' (state cache)' if devnet.from_cache else ''}"
        )
        if m.morpho is not None:
            console.print(
                f"[bold]Morpho Blue[/] {m.morpho.morpho}: "
                + ", ".join(
                    f"{x.collateral_symbol}/{x.loan_symbol} LLTV {x.lltv / 1e16:g}%"
                    for x in m.morpho.markets
                )
                + f"; {len(m.morpho.borrowers)} borrowers"
            )
        async with JsonRpcClient(devnet.url) as rpc:
            reserves = await read_reserves(rpc, m)
            accounts = await read_accounts(rpc, m, [b.address for b in m.borrowers])

        t = Table(title="Market (Aave V3 on the devnet)")
        for col in (
            "asset",
            "price $",
            "LTV",
            "liq. threshold",
            "bonus",
            "protocol fee",
            "supplied",
            "borrowed",
        ):
            t.add_column(col, justify="right")
        for r in reserves:
            unit = 10**r.decimals
            t.add_row(
                r.symbol,
                f"{r.price_8 / 1e8:,.2f}",
                f"{r.ltv / 100:.2f}%",
                f"{r.liquidation_threshold / 100:.2f}%",
                f"{r.liquidation_bonus / 100 - 100:.2f}%",
                f"{r.protocol_fee / 100:.2f}%",
                f"{r.total_supplied / unit:,.2f}",
                f"{r.total_borrowed / unit:,.2f}",
            )
        console.print(t)

        bands = [
            (0.0, 1.0),
            (1.0, 1.05),
            (1.05, 1.1),
            (1.1, 1.25),
            (1.25, 1.5),
            (1.5, 2.0),
            (2.0, 1e9),
        ]
        h = Table(title=f"Positions by health factor ({len(accounts)} borrowers)")
        for col in ("health factor", "positions", "collateral $", "debt $"):
            h.add_column(col, justify="right")
        for lo, hi in bands:
            sel = [a for a in accounts if lo <= a.health_factor / WAD < hi]
            label = f"< {hi:g}" if lo == 0 else f"≥ {lo:g}" if hi > 1e8 else f"{lo:g} – {hi:g}"
            h.add_row(
                label,
                str(len(sel)),
                f"{sum(a.total_collateral_base for a in sel) / 1e8:,.0f}",
                f"{sum(a.total_debt_base for a in sel) / 1e8:,.0f}",
            )
        console.print(h)

        risk = Table(title=f"Riskiest {args.top} positions")
        for col in ("user", "health factor", "collateral $", "debt $"):
            risk.add_column(col, justify="right")
        for a in sorted(accounts, key=lambda a: a.health_factor)[: args.top]:
            risk.add_row(
                a.user,
                hf_display(a.health_factor),
                f"{a.total_collateral_base / 1e8:,.2f}",
                f"{a.total_debt_base / 1e8:,.2f}",
            )
        console.print(risk)
        if args.crash_steps > 0:
            await _crash(console, devnet.url, m, args.crash_steps, args.protocol)
    finally:
        devnet.stop()
    console.print("devnet stopped.")
    return 0


async def _crash(console: Console, url: str, m: Manifest, steps: int, protocol: str) -> None:
    import tempfile
    from pathlib import Path

    from bot.commands._tables import ledger_table
    from bot.devnet.crash import CrashSpec, run_crash
    from bot.runner import HeadReport

    def step(i: int, price: int) -> None:
        console.print(
            f"[bold red]crash step {i + 1}/{steps}[/]: ETH oracle price ${price / 1e8:,.2f}"
        )

    def report(r: HeadReport) -> None:
        sent = sum(a.outcome == "sent" for a in r.attempts)
        won = sum(a.outcome == "won" for a in r.settled)
        if r.liquidatable or r.attempts or r.settled:
            console.print(
                f"  block {r.head.number}: {r.liquidatable} liquidatable, {r.planned} planned, "
                f"{sent} sent, {won} won ({r.elapsed_s * 1e3:.0f} ms)"
            )

    with tempfile.TemporaryDirectory(prefix="liqbot-demo-") as tmp:
        result = await run_crash(
            url,
            m,
            Path(tmp) / "liqbot.db",
            CrashSpec(steps_bps=(9_150,) * steps, protocol=protocol),
            on_step=step,
            on_report=report,
        )
    symbols = {r.address: r.symbol for r in m.reserves}
    decimals = {r.address: r.decimals for r in m.reserves}
    console.print(
        ledger_table(
            result.ledger,
            base_unit=10**8,
            symbols=symbols,
            decimals=decimals,
            title=f"PnL ledger — bot {result.bot}, liquidator {result.liquidator}",
        )
    )
    won = [r for r in result.ledger if r.outcome == "won"]
    exact = sum(r.realized_profit == r.predicted_profit for r in won)
    net = sum(r.realized_net_base for r in won)
    console.print(
        f"[bold]{len(won)} liquidations won[/], realized net ${net / 1e8:,.2f} after gas; "
        f"{exact}/{len(won)} realized profits equal the prediction to the wei; "
        f"{result.liquidatable_after} positions still below HF 1, "
        f"{result.profitable_after} of them profitably liquidatable."
    )
