"""``liqbot optimistic``: on an anvil fork, make each borrower liquidatable, liquidate, revert."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument("--rpc", default=None, help="an anvil fork's URL (default: the manifest's)")
    parser.add_argument("--limit", type=int, default=None, help="only the N riskiest borrowers")
    parser.add_argument("--out", type=Path, default=Path("optimistic"), help="output directory")


async def run(args: argparse.Namespace) -> int:
    from bot.commands._common import load_settings
    from bot.devnet.manifest import Manifest
    from bot.errors import ConfigError
    from bot.research.optimistic import CSV_FILE, run_optimistic, write_csv

    if args.manifest is None:
        raise ConfigError("--manifest", "optimistic mode needs a devnet manifest (its price feeds)")
    settings = load_settings(args)
    if args.rpc:
        chain = settings.chain.model_copy(update={"rpc_url": args.rpc})
        settings = settings.model_copy(update={"chain": chain})
    records = await run_optimistic(settings, Manifest.load(args.manifest), args.out, args.limit)
    path = args.out / CSV_FILE
    with path.open("w", newline="") as f:
        write_csv(records, f)
    ok = [r for r in records if r.status == "ok"]
    exact = sum(r.realized_profit == r.predicted_profit for r in ok)
    print(f"{len(records)} accounts: {len(ok)} liquidated (profit = prediction: {exact})")
    for status in sorted({r.status for r in records} - {"ok"}):
        print(f"  {status}: {sum(r.status == status for r in records)}")
    print(f"records {path}")
    return 0
