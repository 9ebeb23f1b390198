"""Helpers for the operator-tooling tests: a config file for a devnet market, and the real
``liqbot`` CLI run as a subprocess (its stdout, stderr and exit code)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.devnet.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]


def market_toml(m: Manifest, rpc_url: str | None, database: Path) -> str:
    """The settings a devnet manifest implies, as an operator's TOML file (no manifest)."""
    weth = next(r.address for r in m.reserves if r.symbol == "WETH")
    rpc = f'rpc_url = "{rpc_url}"\n' if rpc_url else ""
    return (
        f"[chain]\n{rpc}chain_id = {m.chain_id}\n\n"
        f'[market]\npool_addresses_provider = "{m.aave.pool_addresses_provider}"\n'
        f'multicall3 = "{m.multicall3}"\nstart_block = {m.deploy_block}\n\n'
        f'[swap]\nuniswap_v2_factory = "{m.uniswap.factory}"\n\n'
        f'[strategy]\nnative_asset = "{weth}"\n\n'
        f'[indexer]\ndatabase = "{database}"\npoll_interval_s = 0.2\n'
    )


def files(directory: Path) -> list[str]:
    """The names in ``directory`` (what a command wrote there shows up here)."""
    return sorted(p.name for p in directory.iterdir())


def deployments(database: Path) -> dict[str, Any] | None:
    """The deployments record next to ``database``, or None when there is none."""
    path = Path(f"{database}.deployments.json")
    return json.loads(path.read_text()) if path.exists() else None


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without LIQBOT_* settings or key, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("LIQBOT_") and ("__" in k or k == "LIQBOT_PRIVATE_KEY"))
    }
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **(extra or {})}


async def liqbot(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None, limit_s: float = 120
) -> Result:
    """Run ``liqbot ARGS`` to completion (in a thread: the event loop keeps serving)."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(env),
        timeout=limit_s,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)
