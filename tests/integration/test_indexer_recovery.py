"""The indexer resumes after an interruption and rolls back reorgs, ending in the same
state as a fresh re-index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aave_parity import assert_parity, make_indexer

from bot.abi import load_abi
from bot.api import BlockRef
from bot.chain.anvil import AnvilProcess
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.errors import RpcTransportError
from bot.indexer.indexer import ReorgTooDeep
from bot.indexer.logs import WindowSettings
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient
from bot.testing.fault_proxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
POOL = load_abi("Pool")
ERC20 = load_abi("ERC20")
MAX = 2**256 - 1
SMALL = WindowSettings(initial=8, maximum=8)


class Crash(Exception):
    pass


async def test_restart_mid_backfill_resumes(
    origin_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    head = int(await origin_rpc.call("eth_blockNumber"), 16)
    ref = Store(tmp_path / "uninterrupted.db")
    indexer, _ = await make_indexer(origin_rpc, manifest, store=ref, window=SMALL, confirmations=0)
    await indexer.sync(head)
    expected_rows = sorted(ref.load_rows())
    expected_cp = ref.checkpoint()
    assert expected_cp is not None and expected_cp.number == head

    path = tmp_path / "interrupted.db"
    store = Store(path)
    indexer, _ = await make_indexer(
        origin_rpc, manifest, store=store, window=SMALL, confirmations=0
    )
    chunks = 0

    def crash_after_five(done: int, target: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 5:
            raise Crash

    with pytest.raises(Crash):
        await indexer.sync(head, progress=crash_after_five)
    store.close()

    store = Store(path)
    cp = store.checkpoint()
    assert cp is not None and manifest.deploy_block < cp.number < head
    indexer, adapter = await make_indexer(
        origin_rpc, manifest, store=store, window=SMALL, confirmations=0
    )
    await indexer.sync(head)
    assert sorted(store.load_rows()) == expected_rows
    assert store.checkpoint() == expected_cp
    await assert_parity(origin_rpc, manifest, adapter, head)


async def _activity(sc: Scenario, m: Manifest, who: str, blocks: int) -> None:
    """``blocks`` blocks, each with a state change for ``who``."""
    weth, usdc = m.reserve("WETH"), m.reserve("USDC")
    await sc.fund_eth(who, 10**19)
    await sc.fund(who, "WETH", 100 * 10**18)
    await sc.send(who, weth.address, ERC20.fn("approve"), m.aave.pool, MAX)
    for i in range(blocks):
        if i % 2 == 0:
            await sc.send(who, m.aave.pool, POOL.fn("supply"), weth.address, 10**18, who, 0)
        else:
            await sc.send(who, m.aave.pool, POOL.fn("borrow"), usdc.address, 100 * 10**6, 2, 0, who)


async def _same_as_fresh(rpc: JsonRpcClient, m: Manifest, live: object) -> None:
    fresh, fresh_adapter = await make_indexer(rpc, m, confirmations=0)
    await fresh.sync()
    assert fresh_adapter.indexing.book.users == live


@pytest.fixture
def origin_scenario(origin_rpc: JsonRpcClient, manifest: Manifest) -> Scenario:
    """Reorgs whose outcome is compared with the chain run on the origin: on anvil 1.7.1,
    ``anvil_reorg`` on a fork now and then leaves the storage writes of the dropped blocks
    in place (a dropped supply still shows in ``scaledBalanceOf``)."""
    return Scenario(origin_rpc, manifest)


@pytest.mark.parametrize("depth", [1, 3, 6])
async def test_reorg_within_depth_is_rolled_back(
    origin_scenario: Scenario, origin_rpc: JsonRpcClient, manifest: Manifest, depth: int
) -> None:
    indexer, adapter = await make_indexer(origin_rpc, manifest, confirmations=8)
    await indexer.sync()
    who = "0x00000000000000000000000000000000000b0001"
    await _activity(origin_scenario, manifest, who, blocks=depth + 2)
    await indexer.sync()
    assert who in adapter.indexing.book.users

    # Replace the last `depth` blocks with empty ones: their supplies/borrows vanish.
    await origin_rpc.call("anvil_reorg", [depth, []])
    report = await indexer.sync()
    assert report.reorged
    head = report.head.number
    await assert_parity(origin_rpc, manifest, adapter, head)
    await _same_as_fresh(origin_rpc, manifest, adapter.indexing.book.users)

    # A rollback followed by different activity at the same heights.
    await origin_rpc.call("anvil_rollback", [depth])
    await _activity(
        origin_scenario, manifest, "0x00000000000000000000000000000000000b0002", blocks=depth
    )
    report = await indexer.sync()
    assert report.reorged
    await assert_parity(origin_rpc, manifest, adapter, report.head.number)
    await _same_as_fresh(origin_rpc, manifest, adapter.indexing.book.users)


async def test_reorg_deeper_than_depth_is_fatal(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    indexer, _ = await make_indexer(fork_rpc, manifest, confirmations=2)
    await _activity(fork_scenario, manifest, "0x00000000000000000000000000000000000b0003", blocks=6)
    await indexer.sync()
    await fork_rpc.call("anvil_reorg", [6, []])
    with pytest.raises(ReorgTooDeep, match="re-index"):
        await indexer.sync()


async def test_restart_on_an_orphaned_checkpoint_is_fatal(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    store = Store(tmp_path / "ix.db")
    indexer, _ = await make_indexer(fork_rpc, manifest, store=store, confirmations=0)
    await _activity(fork_scenario, manifest, "0x00000000000000000000000000000000000b0004", blocks=3)
    await indexer.sync()
    # While the bot is down the chain reorganises below its checkpoint.
    await fork_rpc.call("anvil_reorg", [3, []])
    await fork_scenario.mine(5)
    indexer, _ = await make_indexer(fork_rpc, manifest, store=store, confirmations=0)
    with pytest.raises(ReorgTooDeep):
        await indexer.sync()


async def test_catch_up_reports_what_changed(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    indexer, adapter = await make_indexer(fork_rpc, manifest, confirmations=2, reread_depth=8)
    await indexer.sync()
    who = "0x00000000000000000000000000000000000b0005"
    await _activity(fork_scenario, manifest, who, blocks=2)
    await fork_scenario.mine(20)  # far behind: the catch-up goes through backfill
    report = await indexer.sync()
    assert who in adapter.indexing.users_of(report.dirty)


@pytest.mark.parametrize("behind", [6, 30])
async def test_a_catch_up_stores_nothing_a_lagging_replica_left_out(
    fork: AnvilProcess,
    fork_scenario: Scenario,
    fork_rpc: JsonRpcClient,
    manifest: Manifest,
    behind: int,
) -> None:
    """The head jumps past the tip (a burst of blocks, a stall) while a lagging replica
    answers ``[]`` for its newest blocks: those are not stored on that one answer. 6
    blocks behind (more than twice the confirmations) go through the tip; of 30, all but
    the newest ``reread_depth`` (8) go through backfill. The next head's true answer
    contradicts the lie and the tip is replayed."""
    async with FaultProxy(fork.url) as proxy, JsonRpcClient(proxy.url) as rpc:
        indexer, adapter = await make_indexer(rpc, manifest, confirmations=2, reread_depth=8)
        await indexer.sync()
        who = "0x00000000000000000000000000000000000b0007"
        await fork_scenario.mine(behind - 6)
        await _activity(fork_scenario, manifest, who, blocks=1)  # among the newest 6 blocks
        now = int(await fork_rpc.call("eth_blockNumber"), 16)
        assert now - indexer.head <= behind
        await fork_scenario.mine(behind - (now - indexer.head))
        rule = proxy.inject(Fault.LOGS_EMPTY, times=None)
        await indexer.sync()
        assert rule.hits > 0
        assert who not in adapter.indexing.book.users  # taken for quiet blocks, for now
        proxy.clear()

        # Blocks the lie made the tip drop are read again through the tip, so a head
        # may catch up only part of the way.
        await fork_scenario.mine(1)
        target = int(await fork_rpc.call("eth_blockNumber"), 16)
        reports = [await indexer.sync()]
        while reports[-1].head.number < target and len(reports) < 3:
            reports.append(await indexer.sync())
        assert reports[-1].head.number == target
        assert reports[0].reorged
        assert who in adapter.indexing.users_of(frozenset().union(*(r.dirty for r in reports)))
        await assert_parity(fork_rpc, manifest, adapter, target)
        await _same_as_fresh(fork_rpc, manifest, adapter.indexing.book.users)


async def test_tip_replays_logs_a_lagging_replica_left_out(
    fork: AnvilProcess, fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    """A load-balanced provider may answer ``eth_getLogs`` for a fresh head from a replica
    whose log index lags: ``[]`` and no error, indistinguishable from a quiet block. The
    next head's ``eth_getLogs`` covers the in-memory tip again; its answer disagrees, and
    the tip is replayed from that block, ending equal to the chain."""
    async with FaultProxy(fork.url) as proxy, JsonRpcClient(proxy.url) as rpc:
        indexer, adapter = await make_indexer(rpc, manifest, confirmations=4)
        await fork_scenario.mine(5)  # a tip of quiet blocks: nothing to contradict the lie
        await indexer.sync()
        who = "0x00000000000000000000000000000000000b0003"
        await _activity(fork_scenario, manifest, who, blocks=1)
        rule = proxy.inject(Fault.LOGS_EMPTY, times=1)
        await indexer.sync()
        assert rule.hits == 1
        assert who not in adapter.indexing.book.users  # taken for a quiet block, for now

        await fork_scenario.mine(1)
        report = await indexer.sync()
        assert report.reorged
        assert who in adapter.indexing.book.users
        await assert_parity(fork_rpc, manifest, adapter, report.head.number)
        await _same_as_fresh(fork_rpc, manifest, adapter.indexing.book.users)


async def _backfill_with_reorg(
    rpc: JsonRpcClient, manifest: Manifest, *, confirmations: int, depth: int, at: int
) -> tuple[object, object]:
    """An indexer backfilling in windows of 4 blocks; when it reaches block ``at``, the
    chain's last ``depth`` blocks are replaced by empty ones (a reorg mid-backfill)."""
    indexer, adapter = await make_indexer(
        rpc, manifest, confirmations=confirmations, window=WindowSettings(initial=4, maximum=4)
    )
    check = indexer._check_window
    reorged: list[int] = []

    async def reorg_at(first: int, last: int, logs: Any) -> BlockRef:
        if last >= at and not reorged:
            await rpc.call("anvil_reorg", [depth, []])
            reorged.append(last)
        return await check(first, last, logs)

    indexer._check_window = reorg_at  # type: ignore[method-assign]
    return indexer, adapter


@pytest.mark.parametrize("depth", [1, 3, 6, 10])
async def test_reorg_during_backfill_equals_a_fresh_index(
    origin_scenario: Scenario, origin_rpc: JsonRpcClient, manifest: Manifest, depth: int
) -> None:
    """Backfill reads only blocks ``confirmations`` deep, so a reorg no deeper than that
    during a backfill changes blocks it has not read yet: the result (backfill, then
    following the head) equals a fresh index of the reorganised chain."""
    who = "0x00000000000000000000000000000000000b0006"
    await _activity(origin_scenario, manifest, who, blocks=12)
    head = int(await origin_rpc.call("eth_blockNumber"), 16)
    indexer, adapter = await _backfill_with_reorg(
        origin_rpc, manifest, confirmations=12, depth=depth, at=head - 20
    )
    await indexer.sync(head)
    assert indexer.checkpoint is not None and indexer.checkpoint.number == head - 12
    report = await indexer.sync()
    assert report.head.number == head
    await assert_parity(origin_rpc, manifest, adapter, head)
    await _same_as_fresh(origin_rpc, manifest, adapter.indexing.book.users)


async def test_reorg_below_written_windows_during_backfill_is_fatal(
    fork_scenario: Scenario, fork_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    """A reorg deeper than ``confirmations`` while backfilling drops blocks of windows
    already written. The window in hand fails its hash sample (a transient error: the run
    loop retries at the next head); the retry re-reads the checkpoint's header with its
    first window and stops with ``ReorgTooDeep``, instead of writing the new fork on top
    of the old one (whose final checkpoint alone would look canonical)."""
    await _activity(fork_scenario, manifest, "0x00000000000000000000000000000000000b0007", 12)
    head = int(await fork_rpc.call("eth_blockNumber"), 16)
    indexer, _ = await _backfill_with_reorg(
        fork_rpc, manifest, confirmations=2, depth=10, at=head - 8
    )
    errors: list[str] = []
    for _ in range(3):
        try:
            await indexer.sync()
        except ReorgTooDeep as e:
            assert "re-index" in str(e)
            break
        except RpcTransportError as e:
            errors.append(str(e))
    else:
        pytest.fail(f"the backfill went on over the dropped fork: {errors}")
    assert indexer.checkpoint is not None
    assert head - 10 < indexer.checkpoint.number < head - 2
