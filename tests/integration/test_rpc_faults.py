"""The real indexer and RPC client against the origin devnet, through the fault proxy.

Transient faults (slow, hung, 5xx, 429, dropped, truncated, garbage answers) are ridden
out by the client's retries: the backfill completes and the state equals the chain. A node
on the wrong chain is refused at start-up. A node that lies about logs is caught in the
tip (hash linkage) and in the backfill (window bounds and sampled block hashes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aave_parity import assert_parity, make_indexer

from bot.config import Settings, deep_merge, manifest_settings
from bot.devnet.devnet import Devnet
from bot.devnet.manifest import Manifest
from bot.errors import ChainMismatchError, LiqbotError, RpcTransportError
from bot.indexer.logs import WindowSettings
from bot.rpc import JsonRpcClient, RpcSettings
from bot.testing.fault_proxy import Fault, FaultProxy
from bot.wiring import check_chain

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# Small timeouts and backoffs keep each test to about a second; 4 retries outlast the
# 3 injected faults, so a test failing here means the client or the indexer gave up.
FAST = RpcSettings(timeout_s=1.0, retries=4, backoff_base_s=0.01, backoff_max_s=0.05)
WINDOW = WindowSettings(initial=8, maximum=8)  # many eth_getLogs calls over the devnet
TIMES = 3
TRANSIENT: list[tuple[Fault, dict[str, Any]]] = [
    (Fault.DELAY, {"delay_s": 0.2}),
    (Fault.TIMEOUT, {}),
    (Fault.HTTP_5XX, {"status": 502}),
    (Fault.HTTP_429, {"retry_after_s": 0.1}),
    (Fault.DROP, {}),
    (Fault.TRUNCATED, {}),
    (Fault.GARBAGE, {}),
]


@pytest_asyncio.fixture
async def proxy(devnet: Devnet) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(devnet.url) as p:
        yield p


@pytest_asyncio.fixture
async def direct(devnet: Devnet) -> AsyncIterator[JsonRpcClient]:
    """A client that bypasses the proxy, to read the truth."""
    async with JsonRpcClient(devnet.url) as rpc:
        yield rpc


async def log_blocks(rpc: JsonRpcClient, m: Manifest) -> list[int]:
    """The blocks holding the market's events, oldest first."""
    ix, _ = await make_indexer(rpc, m)
    head = int(await rpc.call("eth_blockNumber"), 16)
    return sorted({lg.block_number for lg in await ix.fetcher.get(m.deploy_block, head)})


@pytest.mark.parametrize("method", ["eth_getLogs", "eth_call"])
@pytest.mark.parametrize(("fault", "opts"), TRANSIENT, ids=[f.name for f, _ in TRANSIENT])
async def test_backfill_rides_out_transient_faults(
    proxy: FaultProxy,
    direct: JsonRpcClient,
    manifest: Manifest,
    fault: Fault,
    opts: dict[str, Any],
    method: str,
) -> None:
    head = int(await direct.call("eth_blockNumber"), 16)
    first_event = (await log_blocks(direct, manifest))[0]
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        if method == "eth_call":
            # The adapter's reads at start-up (and any resolve reads) are eth_calls.
            rule = proxy.inject(fault, times=TIMES, methods={method}, **opts)
            indexer, adapter = await make_indexer(rpc, manifest, confirmations=0, window=WINDOW)
            await indexer.sync(head)
        else:
            indexer, adapter = await make_indexer(rpc, manifest, confirmations=0, window=WINDOW)
            rules = []

            def fault_near_the_events(done: int, target: int) -> None:
                # The early windows are empty; fail the ones that carry the events.
                if not rules and done >= first_event - 2 * WINDOW.maximum:
                    rules.append(proxy.inject(fault, times=TIMES, methods={method}, **opts))

            await indexer.sync(head, progress=fault_near_the_events)
            (rule,) = rules
        assert rule.hits == TIMES, "the faults were not all injected"
        proxy.clear()
        assert indexer.checkpoint is not None and indexer.checkpoint.number == head
        assert indexer.fetcher.shrinks == 0  # retried by the client, not taken for a cap
        await assert_parity(direct, manifest, adapter, head)


async def test_429_retry_after_is_waited_for(
    proxy: FaultProxy, direct: JsonRpcClient, manifest: Manifest
) -> None:
    head = int(await direct.call("eth_blockNumber"), 16)
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        indexer, _ = await make_indexer(rpc, manifest, confirmations=0, window=WINDOW)
        proxy.inject(Fault.HTTP_429, times=1, methods={"eth_getLogs"}, retry_after_s=0.5)
        t0 = time.monotonic()
        await indexer.sync(head)
        # Without Retry-After the backoff would be at most FAST.backoff_max_s.
        assert time.monotonic() - t0 >= 0.5


async def test_wrong_chain_id_is_refused(proxy: FaultProxy, manifest: Manifest) -> None:
    settings = Settings.model_validate(
        deep_merge(manifest_settings(manifest), {"chain": {"rpc_url": proxy.url}})
    )
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        assert await check_chain(rpc, settings) == manifest.chain_id
        proxy.inject(Fault.WRONG_CHAIN_ID, chain_id=1)
        with pytest.raises(ChainMismatchError) as err:
            await check_chain(rpc, settings)
    assert (err.value.expected, err.value.actual) == (manifest.chain_id, 1)
    assert proxy.url in str(err.value)


LIES = [Fault.LOGS_WRONG_HASH, Fault.LOGS_OTHER_RANGE]


@pytest.mark.parametrize("lie", LIES, ids=[f.name for f in LIES])
async def test_tip_refuses_lying_logs(
    proxy: FaultProxy, direct: JsonRpcClient, manifest: Manifest, lie: Fault
) -> None:
    """Tip logs are checked against the headers and the window: a lie that shows (a
    foreign block hash, a log of a block outside the window) looks like a chain that
    keeps reorganising, the sync gives up, nothing of the lie is applied, and once the
    node tells the truth the same sync succeeds. (A lie by omission is caught one head
    later: test_indexer_recovery.py.)"""
    blocks = await log_blocks(direct, manifest)
    h = blocks[-1]
    depth = 3
    assert any(h - depth < b for b in blocks[:-1]), "the last tip extension must hold events"
    # After syncing to h - depth the tip starts at h - 2 * depth + 1, and a head's
    # eth_getLogs covers the tip too; the shifted range ends on an older block with events.
    earlier = max(b for b in blocks if b < h - 2 * depth + 1)
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        indexer, adapter = await make_indexer(rpc, manifest, confirmations=depth)
        await indexer.sync(h - depth)
        proxy.inject(lie, shift=earlier - h)
        with pytest.raises(RpcTransportError, match="kept reorganising"):
            await indexer.sync(h)
        assert indexer.head == h - depth
        await assert_parity(direct, manifest, adapter, h - depth)
        proxy.clear()
        report = await indexer.sync(h)
        assert report.head.number == h
        await assert_parity(direct, manifest, adapter, h)


@pytest.mark.parametrize("lie", LIES, ids=[f.name for f in LIES])
async def test_backfill_refuses_lying_logs(
    proxy: FaultProxy, direct: JsonRpcClient, manifest: Manifest, lie: Fault
) -> None:
    head = int(await direct.call("eth_blockNumber"), 16)
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        indexer, _ = await make_indexer(rpc, manifest, confirmations=0, window=WINDOW)
        proxy.inject(lie, shift=-3)
        with pytest.raises(LiqbotError):
            await indexer.sync(head)
