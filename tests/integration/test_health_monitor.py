"""Per-block affected-set re-evaluation: exact where needed, and never missing anyone."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from aave_parity import make_indexer

from bot.adapters.aave_v3.monitor import HealthMonitor
from bot.devnet.manifest import Manifest
from bot.devnet.report import read_accounts
from bot.devnet.scenario import Scenario
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAD = 10**18


async def _chain_liquidatable(
    rpc: JsonRpcClient, m: Manifest, users: list[str], block: int
) -> set[str]:
    rows = await read_accounts(rpc, m, users, block)
    return {r.user.lower() for r in rows if r.health_factor < WAD}


async def test_price_change_reevaluates_holders_only(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    indexer, adapter = await make_indexer(fork_rpc, manifest, confirmations=2)
    monitor = HealthMonitor(adapter)
    report = await indexer.sync()
    users = sorted(adapter.indexing.book.users)
    assert len(users) > len(manifest.borrowers)
    first = await monitor.on_block(report.head, adapter.indexing.users_of(report.dirty))
    assert first.evaluated == frozenset(adapter.indexing.book.users)
    assert first.liquidatable == await _chain_liquidatable(
        fork_rpc, manifest, users, report.head.number
    )

    await fork_scenario.scale_price("WETH", 7_000)
    report = await indexer.sync()
    crash = await monitor.on_block(report.head, adapter.indexing.users_of(report.dirty))
    weth = manifest.reserve("WETH").address.lower()
    weth_id = next(i for i, t in adapter.indexing.tokens.items() if t.asset.lower() == weth)
    assert crash.changed_prices == {weth_id}
    holders = adapter.indexing.book.holders[weth_id]
    assert holders <= crash.evaluated
    assert len(crash.evaluated) < len(adapter.indexing.book.users), "everyone was re-evaluated"
    expected = await _chain_liquidatable(fork_rpc, manifest, users, report.head.number)
    assert expected, "the crash should make positions liquidatable"
    assert crash.liquidatable == expected
    # Each evaluated user's account data is the pool's own, to the wei.
    chain = await read_accounts(fork_rpc, manifest, sorted(crash.evaluated), report.head.number)
    assert len(crash.accounts) == len(crash.evaluated)
    for row in chain:
        got = crash.accounts[row.user]
        assert (got.total_collateral_base, got.total_debt_base, got.health_factor) == (
            row.total_collateral_base,
            row.total_debt_base,
            row.health_factor,
        )

    # A year of interest and no price change: only the screen's candidates are re-evaluated,
    # and drift into liquidation is still caught exactly.
    await fork_scenario.advance_time(365 * 86_400)
    report = await indexer.sync()
    drift = await monitor.on_block(report.head, adapter.indexing.users_of(report.dirty))
    assert drift.changed_prices == frozenset()
    assert drift.liquidatable == await _chain_liquidatable(
        fork_rpc, manifest, users, report.head.number
    )
    assert len(drift.evaluated) < len(adapter.indexing.book.users)


async def test_a_market_read_ahead_of_its_head_is_evaluated_at_its_own_time(
    fork_scenario: Scenario,
    fork_rpc: JsonRpcClient,
    manifest: Manifest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node may answer a read at its newest block from a state a second ahead (anvil
    under load: every evaluation of two heads at 10,000 borrowers underflowed by one
    second in the interest accrual). Evaluated at the head's time, each position would
    fail; at the state's own time every one is exact, and the mismatch is logged."""
    indexer, adapter = await make_indexer(fork_rpc, manifest, confirmations=2)
    await fork_scenario.scale_price("WETH", 7_000)
    report = await indexer.sync()
    market = await adapter.market(report.head.number)
    newest = max(r.last_update_timestamp for r in market.reserves.values())
    assert newest <= report.head.timestamp
    early = dataclasses.replace(report.head, timestamp=newest - 1)
    monitor = HealthMonitor(adapter)
    with caplog.at_level(logging.WARNING):
        health = await monitor.on_block(early, adapter.indexing.users_of(report.dirty))
    assert not [r for r in caplog.records if r.getMessage() == "account data reverts"]
    assert [
        r.ahead_s for r in caplog.records if r.getMessage() == "market state newer than its block"
    ] == [1]  # type: ignore[attr-defined]
    assert health.timestamp == newest
    assert health.evaluated == frozenset(adapter.indexing.book.users)
    users = sorted(adapter.indexing.book.users)
    expected = await _chain_liquidatable(fork_rpc, manifest, users, report.head.number)
    assert expected and health.liquidatable == expected


async def test_a_prefetched_market_read_is_used_only_for_what_it_was_read_for(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    """The runner starts the market read before the indexer's sync of a head; the
    monitor takes it for that head only, and reads again when the sync changed what the
    read depends on (here: a user entered an e-mode category no one used before)."""
    indexer, adapter = await make_indexer(fork_rpc, manifest, confirmations=2)
    monitor = HealthMonitor(adapter)
    report = await indexer.sync()
    await monitor.on_block(report.head, adapter.indexing.users_of(report.dirty))
    calls = fork_rpc.calls["eth_call"]
    monitor.prefetch(report.head.number)
    health = await monitor.on_block(report.head, set())
    assert fork_rpc.calls["eth_call"] == calls + 1  # the prefetched read, once
    assert health.market.block == report.head.number
    monitor.prefetch(report.head.number - 1)  # another block's: not used
    assert (await monitor.on_block(report.head, set())).market.block == report.head.number
    book = adapter.indexing.book
    user = next(u for u, p in book.users.items() if p.emode == 0)
    monitor.prefetch(report.head.number)
    book.users[user] = dataclasses.replace(book.users[user], emode=77)  # a new category
    try:
        health = await monitor.on_block(report.head, set())
    finally:
        book.users[user] = dataclasses.replace(book.users[user], emode=0)
    assert 77 in health.market.emode_categories  # read after the change, not before
