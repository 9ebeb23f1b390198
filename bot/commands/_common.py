"""Arguments shared by commands that talk to a market: where the settings come from."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
        "--db", default=None, help="database path or postgresql:// URL (overrides indexer.database)"
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="a network preset (ethereum, arbitrum, base, optimism, polygon, sepolia) or a "
        "preset .toml path, under the config file and environment (overrides `preset`)",
    )


def load_settings(args: argparse.Namespace) -> Settings:
    if args.config is None and args.manifest is None:
        default = Path("liqbot.toml")
        args.config = default if default.is_file() else None
    overrides: dict[str, Any] = {"indexer": {"database": str(args.db)}} if args.db else {}
    if args.preset:
        overrides["preset"] = args.preset
    return Settings.load(args.config, manifest=args.manifest, overrides=overrides)
