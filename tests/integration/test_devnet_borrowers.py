"""Seeded borrowers: varied mixes, and on-chain health factors spread as planned."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.abi import load_abi
from bot.devnet.manifest import Manifest
from bot.devnet.report import read_accounts
from bot.multicall import Multicall, Read
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAD = 10**18


async def test_health_factors_spread_as_planned(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    users = [b.address for b in manifest.borrowers]
    rows = await read_accounts(origin_rpc, manifest, users)
    hfs = sorted(r.health_factor for r in rows)
    assert len(rows) == len(manifest.borrowers) >= 200
    assert hfs[0] > WAD, "a freshly seeded borrower is already liquidatable"
    assert hfs[0] < 105 * WAD // 100, "no borrower close to liquidation"
    assert hfs[-1] > 25 * WAD // 10, "no healthy borrower"
    assert hfs[-1] < 31 * WAD // 10
    near = sum(1 for h in hfs if h < 115 * WAD // 100)
    assert near >= len(hfs) // 5, f"only {near} borrowers within 15% of liquidation"
    for b, r in zip(manifest.borrowers, rows, strict=True):
        # Amounts are rounded down to base units and interest accrues: targets hold to 0.1%.
        assert abs(r.health_factor - b.target_health_factor_wad) * 1000 < b.target_health_factor_wad


async def test_mixes_include_multi_asset_and_emode(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    kinds = Counter(b.kind for b in manifest.borrowers)
    assert len(kinds) >= 6
    pool = load_abi("Pool")
    erc20 = load_abi("ERC20")
    mc = Multicall(origin_rpc, manifest.multicall3)
    users = [b.address for b in manifest.borrowers]
    emodes = await mc.read([Read(manifest.aave.pool, pool.fn("getUserEMode"), (u,)) for u in users])
    in_emode = {u for u, e in zip(users, emodes, strict=True) if e == 1}
    assert in_emode == {b.address for b in manifest.borrowers if b.kind.startswith("emode")}
    assert in_emode

    reads = [
        Read(t, erc20.fn("balanceOf"), (u,))
        for u in users
        for r in manifest.reserves
        for t in (r.a_token, r.variable_debt_token)
    ]
    balances = await mc.read(reads)
    per_user = 2 * len(manifest.reserves)
    multi = 0
    for i in range(len(users)):
        row = balances[i * per_user : (i + 1) * per_user]
        collaterals = sum(1 for v in row[0::2] if v > 0)
        debts = sum(1 for v in row[1::2] if v > 0)
        assert collaterals >= 1 and debts >= 1
        multi += collaterals >= 2 and debts >= 2
    assert multi >= len(users) // 10, f"only {multi} users with several collaterals and debts"
