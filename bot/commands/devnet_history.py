"""``liqbot devnet history``: a devnet with a generated history, served for backtests."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_history_parser(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="start a devnet and generate a chain history on it (borrowers, prices, a crash, "
        "a competitor)",
        description="Start an origin anvil, deploy and seed the market, generate a history of "
        "--blocks blocks, write the manifest (with the arrivals) and a history record, then "
        "serve until Ctrl-C (or exit with --exit-when-done).",
    )
    p.add_argument("--borrowers", type=int, default=40, help="borrowers seeded before (40)")
    p.add_argument("--blocks", type=int, default=3_000, help="length of the history (3000)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the history")
    p.add_argument("--manifest", type=Path, default=Path("history.json"), help="manifest path")
    p.add_argument(
        "--record",
        type=Path,
        default=Path("history-record.json"),
        help="where to write the range, the actors and the competitor's liquidations",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--exit-when-done", action="store_true", help="stop after generating")


async def run_history(args: argparse.Namespace) -> int:
    import time

    from bot.commands._signals import stop_event
    from bot.devnet.devnet import DevnetSpec, start_devnet
    from bot.research.history import HistorySpec, generate_history

    stop = stop_event()
    t0 = time.monotonic()
    devnet = await start_devnet(DevnetSpec(borrowers=args.borrowers), port=args.port)
    try:
        history, manifest = await generate_history(
            devnet.url,
            devnet.manifest,
            HistorySpec(blocks=args.blocks, seed=args.seed),
            devnet_seed=DevnetSpec().seed,
        )
        manifest.save(args.manifest)
        history.save(args.record)
        print(
            f"history ready in {time.monotonic() - t0:.1f}s: {devnet.url}, blocks "
            f"{history.from_block}..{history.to_block}, {history.arrivals} arrivals, "
            f"{history.exits} exits, {history.price_updates} price updates, "
            f"{len(history.liquidations)} competitor liquidations; manifest {args.manifest}, "
            f"record {args.record}",
            flush=True,
        )
        if not args.exit_when_done:
            print("Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        devnet.stop()
    return 0
