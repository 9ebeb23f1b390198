"""``liqbot devnet up|fork``: local chains for development, tests and rehearsals."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="devnet_command", required=True, metavar="ACTION")
    up = sub.add_parser(
        "up",
        help="start an origin anvil with a real Aave V3 market and seeded borrowers",
        description="Start an origin anvil, deploy Aave V3 + Uniswap V2 + Multicall3, seed "
        "borrowers, write the manifest, and serve until Ctrl-C.",
    )
    up.add_argument("--borrowers", type=int, default=200, help="borrowers to seed (default 200)")
    up.add_argument("--seed", type=int, default=1, help="random seed of the borrower mix")
    up.add_argument(
        "--morpho",
        action="store_true",
        help="also deploy Morpho Blue (compiled from the pinned sources) with 3 seeded markets",
    )
    up.add_argument("--manifest", type=Path, default=Path("devnet.json"), help="manifest path")
    up.add_argument(
        "--state-cache",
        type=Path,
        default=None,
        help="reuse/record the deployed state here (e.g. .cache/devnet)",
    )
    up.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    up.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop right after deploying (for timing and cache warm-up)",
    )
    fork = sub.add_parser(
        "fork",
        help="start a second anvil forking an RPC at a block",
        description="Start anvil with --fork-url/--fork-block-number and serve until Ctrl-C.",
    )
    fork.add_argument("--from", dest="from_url", required=True, help="RPC URL to fork")
    fork.add_argument("--block", type=int, default=None, help="fork block (default: latest)")
    fork.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    from bot.commands.devnet_history import add_history_parser

    add_history_parser(sub)


async def run(args: argparse.Namespace) -> int:
    import time

    from bot.commands._signals import stop_event
    from bot.devnet.devnet import DevnetSpec, start_devnet, start_fork

    if args.devnet_command == "history":
        from bot.commands.devnet_history import run_history

        return await run_history(args)
    stop = stop_event()
    if args.devnet_command == "up":
        t0 = time.monotonic()
        devnet = await start_devnet(
            DevnetSpec(borrowers=args.borrowers, seed=args.seed, morpho=args.morpho),
            state_cache=args.state_cache,
            manifest_path=args.manifest,
            port=args.port,
        )
        try:
            m = devnet.manifest
            print(
                f"devnet ready in {time.monotonic() - t0:.1f}s: {devnet.url} chain {m.chain_id}, "
                f"pool {m.aave.pool}, {len(m.reserves)} reserves, {len(m.borrowers)} borrowers"
                f"{f', Morpho {m.morpho.morpho}' if m.morpho else ''}"
                f"{' (from state cache)' if devnet.from_cache else ''}; manifest {args.manifest}",
                flush=True,
            )
            if not args.exit_when_ready:
                print("Ctrl-C to stop.", flush=True)
                await stop.wait()
        finally:
            devnet.stop()
        return 0
    proc = await start_fork(args.from_url, args.block, port=args.port)
    try:
        print(f"fork ready: {proc.url} forking {args.from_url}. Ctrl-C to stop.", flush=True)
        await stop.wait()
    finally:
        proc.stop()
    return 0
