"""``liqbot backtest``: replay a block range on forks; ledger, summary and plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument("--rpc", default=None, help="archive RPC URL (default: chain.rpc_url)")
    parser.add_argument("--from-block", type=int, required=True, help="first block to walk")
    parser.add_argument("--to-block", type=int, required=True, help="last block to walk")
    parser.add_argument(
        "--out", type=Path, default=Path("backtest"), help="output directory (resumable state)"
    )
    parser.add_argument(
        "--ours",
        action="append",
        default=[],
        help="an address whose liquidations count as ours (repeatable)",
    )
    parser.add_argument(
        "--max-blocks", type=int, default=None, help="stop after this many blocks (rerun resumes)"
    )


async def run(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bot.commands._common import load_settings
    from bot.research.backtest import BacktestSpec, run_backtest
    from bot.research.ledger import ResearchLedger
    from bot.research.plots import backtest_figures
    from bot.research.report import format_summary, summarize

    settings = load_settings(args)
    if args.rpc:
        chain = settings.chain.model_copy(update={"rpc_url": args.rpc})
        settings = settings.model_copy(update={"chain": chain})
    spec = BacktestSpec(
        args.from_block,
        args.to_block,
        frozenset(a.lower() for a in args.ours),
        args.max_blocks,
    )
    columns = (
        TextColumn("backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("walk", total=args.to_block - args.from_block + 1)
        result = await run_backtest(
            settings, spec, args.out, lambda done, _t: bar.update(task, completed=done)
        )
    csv_path = args.out / "opportunities.csv"
    with ResearchLedger(args.out / "backtest.db") as ledger, csv_path.open("w", newline="") as f:
        ledger.export_csv(f)
    if not result.complete:
        print(f"walked to block {result.last_block} of {args.to_block}; rerun to continue")
        return 0
    unit = 10**8
    print(format_summary(summarize(result.rows), unit))
    figures = backtest_figures(result.rows, unit, args.out)
    print(f"ledger {csv_path}; figures {', '.join(str(p) for p in figures)}")
    return 0
