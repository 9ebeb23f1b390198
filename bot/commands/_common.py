"""Arguments shared by commands that talk to a market: where the settings come from."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.config import Settings


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="a devnet manifest (from `liqbot devnet up`) instead of, or under, --config",
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="database path (overrides indexer.database)"
    )


def load_settings(args: argparse.Namespace) -> Settings:
    if args.config is None and args.manifest is None:
        default = Path("liqbot.toml")
        args.config = default if default.is_file() else None
    overrides = {"indexer": {"database": str(args.db)}} if args.db else None
    return Settings.load(args.config, manifest=args.manifest, overrides=overrides)
