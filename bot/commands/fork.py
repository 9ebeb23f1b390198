"""``liqbot fork --preset NAME --rpc URL``: a local anvil fork of a real network, to
rehearse ``config check`` and a dry run against real positions before going live.

The fork keeps the network's chain id, so the preset applies unchanged; only the RPC URL
differs. The printed commands use their own database: a fork's blocks diverge from the
network's, and an index built on them must not be resumed against the real chain.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        required=True,
        help="the network: a built-in preset (ethereum, arbitrum, ...) or a preset .toml path",
    )
    parser.add_argument(
        "--rpc", required=True, help="an RPC URL of that network (archive, for old blocks)"
    )
    parser.add_argument("--block", type=int, default=None, help="fork block (default: latest)")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")


async def run(args: argparse.Namespace) -> int:
    from bot.commands._signals import stop_event
    from bot.devnet.devnet import start_fork
    from bot.errors import ConfigError
    from bot.presets import load_preset
    from bot.redact import mask_url
    from bot.rpc import JsonRpcClient, to_int

    preset = load_preset(args.preset)
    expected = preset.get("chain", {}).get("chain_id")
    async with JsonRpcClient(args.rpc) as rpc:
        actual = to_int(await rpc.call("eth_chainId"))
    if expected is not None and expected != actual:
        raise ConfigError(
            "--rpc",
            f"{mask_url(args.rpc)} is chain {actual}, preset {args.preset} is chain {expected}",
            fix=f"pass an RPC URL of chain {expected}, or the preset of chain {actual}",
        )
    stop = stop_event()
    proc = await start_fork(args.rpc, args.block, port=args.port)
    try:
        stem = Path(args.preset).stem  # "ethereum", or a preset file's name
        env = f"LIQBOT_CHAIN__RPC_URL={proc.url}"
        opts = f"--preset {shlex.quote(args.preset)} --db {shlex.quote(f'fork-{stem}.db')}"
        print(
            f"fork of {args.preset} (chain {actual}) ready: {proc.url}\n"
            f"check it:    {env} liqbot config check {opts}\n"
            f"rehearse:    {env} liqbot run {opts} --dry-run\n"
            "Ctrl-C to stop.",
            flush=True,
        )
        await stop.wait()
    finally:
        proc.stop()
    return 0
