"""Optimistic mode on the test devnet's fork: each of the ten riskiest borrowers made
liquidatable (its largest collateral's price set just below its liquidation point),
liquidated through our contract for real, and reverted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.abi import load_abi
from bot.chain.anvil import AnvilProcess
from bot.config import Settings, manifest_settings
from bot.devnet.manifest import Manifest
from bot.research.optimistic import CSV_FILE, run_optimistic, write_csv
from bot.rpc import JsonRpcClient, to_int

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAD = 10**18
POOL = load_abi("Pool")
ORACLE = load_abi("AaveOracle")
LIMIT = 10


async def chain_state(rpc: JsonRpcClient, m: Manifest) -> tuple[Any, ...]:
    """Head, every borrower's account data and every oracle price."""
    account = POOL.fn("getUserAccountData")
    price = ORACLE.fn("getAssetPrice")
    calls = [
        ("eth_call", [{"to": m.aave.pool, "data": account.encode_hex(b.address)}, "latest"])
        for b in m.borrowers
    ] + [
        ("eth_call", [{"to": m.aave.oracle, "data": price.encode_hex(r.address)}, "latest"])
        for r in m.reserves
    ]
    out = await rpc.batch_strict(calls)
    return to_int(await rpc.call("eth_blockNumber")), tuple(out)


async def test_each_account_liquidated_then_reverted(
    fork: AnvilProcess, manifest: Manifest, fork_rpc: JsonRpcClient, tmp_path: Path
) -> None:
    m = manifest.with_rpc_url(fork.url)
    settings = Settings.model_validate(manifest_settings(m))
    before = await chain_state(fork_rpc, m)

    records = await run_optimistic(settings, m, tmp_path, limit=LIMIT)

    assert await chain_state(fork_rpc, m) == before  # everything was reverted
    assert len(records) == LIMIT
    assert len({r.user for r in records}) == LIMIT  # one record per account
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) >= LIMIT // 2, records
    for r in ok:
        assert r.error == "", r
        assert 0 < r.shocked_price <= r.price, r
        # the largest price making it liquidatable: HF < 1 there, >= 1 one unit higher
        assert r.health_factor_before < WAD <= r.health_factor_one_up, r
        assert r.health_factor_after > r.health_factor_before, r
        assert r.realized_profit == r.simulated_profit == r.predicted_profit > 0, r
        assert r.gas_used > 0 and r.tx.startswith("0x"), r
    for r in records:
        assert r.status in ("ok", "no-plan", "simulation-reverted", "not-liquidatable", "error")
        if r.status != "ok":
            assert r.realized_profit == 0 and r.gas_used == 0, r

    with (tmp_path / CSV_FILE).open("w", newline="") as f:
        write_csv(records, f)
    lines = (tmp_path / CSV_FILE).read_text().splitlines()
    assert len(lines) == LIMIT + 1 and lines[0].startswith("user,collateral_asset,price,")
