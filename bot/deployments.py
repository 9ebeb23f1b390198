"""The record of liquidators deployed by ``liqbot deploy-executor``, next to the database.

``<database>.deployments.json`` (``liqbot.deployments.json`` for a database URL) maps a
chain id to the deployment on that chain, so one record serves a bot pointed at a testnet
today and at mainnet tomorrow. The bot uses it only when ``executor.liquidator`` is unset:
the config (file or environment) always wins, so an operator can pin or override a
deployment without editing the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Deployment:
    liquidator: str
    owner: str
    tx_hash: str
    block: int


def record_path(database: str | Path) -> Path:
    """Next to a SQLite database file; for a database URL (PostgreSQL), in the working
    directory, as ``liqbot.deployments.json`` (a URL has no directory to sit in)."""
    if "://" in str(database):
        return Path("liqbot.deployments.json")
    path = Path(database)
    return path.with_name(path.name + ".deployments.json")


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(
            "executor.liquidator",
            f"deployments record {path} is unreadable: {e}",
            fix="repair or delete it, or set executor.liquidator",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            "executor.liquidator",
            f"deployments record {path} is not a JSON object",
            fix="repair or delete it, or set executor.liquidator",
        )
    return data


def recorded(database: str | Path, chain_id: int) -> Deployment | None:
    entry = _read(record_path(database)).get(str(chain_id))
    if entry is None:
        return None
    try:
        return Deployment(
            liquidator=str(entry["liquidator"]),
            owner=str(entry["owner"]),
            tx_hash=str(entry["tx_hash"]),
            block=int(str(entry["block"])),
        )
    except (KeyError, ValueError):
        raise ConfigError(
            "executor.liquidator",
            f"deployments record {record_path(database)} has a malformed entry for {chain_id}",
            fix="repair or delete it, or set executor.liquidator",
        ) from None


def record(database: str | Path, chain_id: int, deployment: Deployment) -> Path:
    """Add (or replace) this chain's deployment; written atomically."""
    path = record_path(database)
    data = _read(path)
    data[str(chain_id)] = asdict(deployment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
