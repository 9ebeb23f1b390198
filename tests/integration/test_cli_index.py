"""`liqbot index` and `liqbot positions` as an operator runs them against the devnet."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.chain.heads import LatestHeads, PollingHeads, WebsocketHeads
from bot.devnet.devnet import Devnet
from bot.devnet.report import read_accounts
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient

pytestmark = pytest.mark.integration


def liqbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def manifest_file(devnet: Devnet, tmp_path: Path) -> Path:
    path = tmp_path / "devnet.json"
    devnet.manifest.save(path)
    return path


@pytest.mark.asyncio
async def test_index_then_positions_json_matches_chain(
    devnet: Devnet, manifest_file: Path, tmp_path: Path
) -> None:
    db = tmp_path / "ix.db"
    out = liqbot(
        "index", "--manifest", str(manifest_file), "--db", str(db), "--no-follow", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "indexed to block" in out.stdout
    out = liqbot(
        "positions", "--manifest", str(manifest_file), "--db", str(db), "--json", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == len(devnet.manifest.borrowers)
    hfs = [int(r["health_factor"]) for r in rows]
    assert hfs == sorted(hfs)
    assert {"user", "health_factor", "total_collateral_base", "total_debt_base", "block"} == rows[
        0
    ].keys()
    async with JsonRpcClient(devnet.url) as rpc:
        chain = await read_accounts(
            rpc, devnet.manifest, [r["user"] for r in rows], rows[0]["block"]
        )
    for r, c in zip(rows, chain, strict=True):
        assert (
            int(r["health_factor"]),
            int(r["total_collateral_base"]),
            int(r["total_debt_base"]),
        ) == (c.health_factor, c.total_collateral_base, c.total_debt_base)
    out = liqbot(
        "positions",
        "--manifest",
        str(manifest_file),
        "--db",
        str(db),
        "--max-hf",
        "1.1",
        "--json",
        cwd=tmp_path,
    )
    assert all(int(r["health_factor"]) < 11 * 10**17 for r in json.loads(out.stdout))


def test_wrong_chain_id_and_foreign_database_exit_2(manifest_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "ix.db"
    bad = tmp_path / "bad.toml"
    bad.write_text("[chain]\nchain_id = 1\n")
    out = liqbot(
        "index",
        "--manifest",
        str(manifest_file),
        "--config",
        str(bad),
        "--db",
        str(db),
        "--no-follow",
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "chain id mismatch" in out.stderr and "expected 1" in out.stderr
    assert not db.exists(), "nothing is written when the chain is wrong"

    other = tmp_path / "other.toml"
    other.write_text(
        '[market]\npool_addresses_provider = "0x0000000000000000000000000000000000000001"\n'
    )
    out = liqbot(
        "index",
        "--manifest",
        str(manifest_file),
        "--config",
        str(other),
        "--db",
        str(db),
        "--no-follow",
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "market.pool_addresses_provider" in out.stderr and "no contract" in out.stderr

    # A database already bound to another market is refused, not mixed.
    foreign = Store(db)
    foreign.check_identity({"chain_id": "31337", "protocol": "aave-v3", "market": "0x" + "11" * 20})
    foreign.close()
    out = liqbot(
        "index", "--manifest", str(manifest_file), "--db", str(db), "--no-follow", cwd=tmp_path
    )
    assert out.returncode == 2
    assert "database" in out.stderr and "another database path" in out.stderr


@pytest.mark.asyncio
async def test_head_sources_over_anvil(fork_rpc: JsonRpcClient, fork: object) -> None:
    url = fork.url  # type: ignore[attr-defined]
    head = int(await fork_rpc.call("eth_blockNumber"), 16)
    ws = WebsocketHeads(url.replace("http", "ws"))
    polling = PollingHeads(fork_rpc, interval_s=0.05)
    try:
        subscribed = asyncio.create_task(ws.next_head())
        await asyncio.sleep(0.3)  # the subscription only reports blocks after it starts
        await fork_rpc.call("anvil_mine", ["0x1"])
        assert (await asyncio.wait_for(subscribed, 10)).number == head + 1
        assert (await asyncio.wait_for(polling.next_head(), 10)).number == head + 1
    finally:
        await ws.close()
    # A slow consumer sees only the newest head; the others are counted as skipped.
    async with LatestHeads(PollingHeads(fork_rpc, interval_s=0.02)) as heads:
        first = await asyncio.wait_for(heads.next(), 10)
        await fork_rpc.call("anvil_mine", ["0x1"])
        await asyncio.sleep(0.2)
        await fork_rpc.call("anvil_mine", ["0x1"])
        await asyncio.sleep(0.2)
        newest = await asyncio.wait_for(heads.next(), 10)
        assert newest.number == first.number + 2
        assert heads.skipped >= 1
