"""``liqbot shock``: liquidatable positions, debt, bonus and profit across price levels."""

from __future__ import annotations

import argparse
from pathlib import Path


def _percent(text: str) -> int:
    """'-5%' or '-5' -> -500 basis points."""
    return round(float(text.rstrip("%")) * 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument("--asset", required=True, help="reserve symbol (WETH) or address")
    parser.add_argument("--from", dest="from_pct", type=_percent, required=True, help="e.g. -5%%")
    parser.add_argument("--to", dest="to_pct", type=_percent, required=True, help="e.g. -50%%")
    parser.add_argument("--steps", type=int, default=10, help="price levels (default 10)")
    parser.add_argument("--block", type=int, default=None, help="market block (default: latest)")
    parser.add_argument("--out", type=Path, default=Path("shock"), help="output directory")


async def run(args: argparse.Namespace) -> int:
    import csv

    from bot.adapters.aave_v3.kernel import PackedBook
    from bot.commands._common import load_settings
    from bot.research.planner import Planner
    from bot.research.plots import liquidation_curve
    from bot.research.shock import levels, resolve_asset, shock
    from bot.wiring import open_index

    settings = load_settings(args)
    args.out.mkdir(parents=True, exist_ok=True)
    async with open_index(settings) as svc:
        head = (
            await svc.indexer.latest()
            if args.block is None
            else await svc.indexer.block(args.block)
        )
        await svc.indexer.sync(head.number)
        planner = await Planner.connect(svc.aave, settings)
        asset = await resolve_asset(planner, args.asset)
        market = await svc.adapter.market(head.number)
        packed = PackedBook(svc.adapter.indexing.book.users)
        rows = await shock(
            planner, packed, head, market, asset, levels(args.from_pct, args.to_pct, args.steps)
        )
    unit = planner.unit
    path = args.out / "shock.csv"
    names = [
        "change_bps",
        "price",
        "liquidatable",
        "debt_base",
        "planned",
        "bonus_base",
        "profit_base",
        "net_base",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for r in rows:
            w.writerow([getattr(r, n) for n in names])
    print(f"{args.asset} at block {head.number}")
    print(f"{'change':>8} {'price':>12} {'liq.':>5} {'debt liq.':>16} {'bonus':>14} {'profit':>14}")
    for r in rows:
        print(
            f"{r.change_bps / 100:>7.1f}% {r.price / unit:>12,.2f} {r.liquidatable:>5} "
            f"{r.debt_base / unit:>16,.0f} {r.bonus_base / unit:>14,.0f} "
            f"{r.profit_base / unit:>14,.0f}"
        )
    plot = liquidation_curve(
        args.asset,
        [r.price / unit for r in rows],
        [r.debt_base / unit for r in rows],
        [r.profit_base / unit for r in rows],
        args.out / "liquidation_curve.png",
    )
    print(f"table {path}; figure {plot}")
    return 0
