"""`liqbot status --once` after the bot liquidated on the devnet fork: the head, the
riskiest borrower and a won plan, from a database it opens read-only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.chain.anvil import AnvilProcess
from bot.devnet.crash import CrashSpec, run_crash
from bot.devnet.manifest import Manifest
from bot.ledger import Outcome
from bot.rpc import JsonRpcClient, to_int

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def liqbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=cwd,
    )


def database_files(where: Path) -> dict[str, bytes]:
    """The database file and its WAL; not -shm (readers keep their read marks there),
    nor an empty WAL (SQLite creates one for any reader of a WAL-mode file)."""
    files = {p.name: p.read_bytes() for p in where.glob("bot.db*")}
    return {k: v for k, v in files.items() if not k.endswith("-shm") and (v or k == "bot.db")}


async def test_status_once_shows_head_riskiest_user_and_won_plan(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    m = manifest.with_rpc_url(fork.url)
    db = tmp_path / "bot.db"
    result = await run_crash(fork.url, m, db, CrashSpec())
    won = [r for r in result.ledger if r.outcome == Outcome.WON]
    assert won, [(r.outcome, r.reason) for r in result.ledger]
    path = tmp_path / "fork.json"
    m.save(path)
    # The riskiest borrower as `liqbot positions` (the writer's path) sees it, on a copy.
    shutil.copy(db, tmp_path / "copy.db")
    pos = liqbot("positions", "--manifest", str(path), "--db", str(tmp_path / "copy.db"),
                 "--json", cwd=tmp_path)  # fmt: skip
    assert pos.returncode == 0, pos.stderr
    riskiest = json.loads(pos.stdout)[0]["user"]
    files = database_files(tmp_path)

    out = liqbot("status", "--once", "--manifest", str(path), "--db", str(db), cwd=tmp_path)

    assert out.returncode == 0, out.stderr
    head = to_int(await fork_rpc.call("eth_blockNumber"))
    text = out.stdout
    assert "node head" in text and "lag " in text
    assert f"Riskiest positions at block {head}" in text
    assert riskiest in text
    last = result.ledger[-1]  # the newest plan is listed, with its exact profit
    assert last.outcome == "won" and str(last.realized_profit) in text, text
    assert f"{len(won)} won" in text
    # Read-only: the database and its write-ahead log are byte for byte what they were.
    assert database_files(tmp_path) == files
