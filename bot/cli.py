"""The ``liqbot`` command line: one entry point, thin subcommands imported lazily."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.errors import ChainMismatchError, ConfigError, LiqbotError

# subcommand -> (module, help)
COMMANDS = {
    "devnet": ("bot.commands.devnet", "local chains: a deployed Aave V3 market and forks of it"),
    "demo": ("bot.commands.demo", "the embedded demo on a fresh local devnet"),
    "index": ("bot.commands.index", "backfill positions from events, then follow the head"),
    "positions": ("bot.commands.positions", "borrowers' exact health factors at the head"),
    "run": ("bot.commands.run", "index, plan and execute liquidations on every new head"),
    "ledger": ("bot.commands.ledger", "the PnL ledger: every plan and its outcome (table or CSV)"),
    "status": ("bot.commands.status", "live view: head, lag, riskiest positions, plans, PnL"),
    "config": ("bot.commands.config", "check the settings against the node (secrets masked)"),
    "fork": ("bot.commands.fork", "a local anvil fork of a preset's network, to rehearse on"),
    "deploy-executor": (
        "bot.commands.deploy_executor",
        "deploy the Liquidator contract with the operator's key and record it",
    ),
    "backtest": ("bot.commands.backtest", "replay a block range: opportunities, profit, plots"),
    "shock": ("bot.commands.shock", "liquidatable debt and profit across price shocks of an asset"),
    "optimistic": (
        "bot.commands.optimistic",
        "on a fork, make each borrower liquidatable, liquidate it, revert: one record each",
    ),
    "new-adapter": (
        "bot.commands.new_adapter",
        "the skeleton of a third-party adapter package, with the conformance tests",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liqbot", description="Find and execute profitable DeFi lending liquidations."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(glue_negative_values(sys.argv[1:] if argv is None else argv))
    from bot.logs import configure_logging

    configure_logging(args.log_level)
    command = importlib.import_module(args._module)
    try:
        return int(asyncio.run(command.run(args)) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error; keep Python from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ConfigError, ChainMismatchError) as e:
        print(f"liqbot: configuration error: {e}", file=sys.stderr)
        return 2
    except LiqbotError as e:
        print(f"liqbot: {e}", file=sys.stderr)
        return 1


def glue_negative_values(argv: Sequence[str]) -> list[str]:
    """``--from -5%`` → ``--from=-5%``: argparse takes a value that starts with "-" and is
    not a plain number for an option, but price moves are written that way."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


_NEGATIVE = re.compile(r"^-\d+(\.\d+)?%$")


def default_cache_dir() -> Path:
    return Path(".cache") / "devnet"


if __name__ == "__main__":
    sys.exit(main())
