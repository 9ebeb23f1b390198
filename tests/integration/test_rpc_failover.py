"""Failover between RPC endpoints: a primary that fails or lags is set aside for a while
and requests move to the fallback at once; the primary is used again once its time is up.

The primary is the devnet behind a fault proxy, the fallback the devnet itself: the proxy
counts exactly which requests reached the primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.devnet.devnet import Devnet
from bot.errors import RpcTransportError
from bot.rpc import JsonRpcClient, RpcSettings, to_int
from bot.testing.fault_proxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# A long backoff: if the client slept on it instead of failing over, a test would hang
# for minutes and its timeout would fail it.
SLOW_BACKOFF = RpcSettings(
    timeout_s=1.0, retries=3, backoff_base_s=60.0, backoff_max_s=60.0, set_aside_s=60.0
)


@pytest_asyncio.fixture
async def proxy(devnet: Devnet) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(devnet.url) as p:
        yield p


@pytest.mark.parametrize(
    "fault",
    [Fault.HTTP_5XX, Fault.HTTP_429, Fault.DROP, Fault.GARBAGE, Fault.TIMEOUT],
    ids=lambda f: f.value,
)
async def test_a_failing_primary_is_set_aside_and_the_fallback_answers(
    proxy: FaultProxy, devnet: Devnet, fault: Fault
) -> None:
    rule = proxy.inject(fault, times=None, delay_s=5.0, retry_after_s=60.0)
    async with (
        asyncio.timeout(20),
        JsonRpcClient(proxy.url, SLOW_BACKOFF, fallbacks=[devnet.url]) as rpc,
    ):
        for _ in range(10):
            assert to_int(await rpc.call("eth_chainId")) == devnet.manifest.chain_id
        results = await rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])])
        assert not any(isinstance(r, Exception) for r in results)
    # One failed request, then the primary sat out: nothing else reached it.
    assert rule.hits == 1 and proxy.requests == 1
    assert rpc.set_asides[proxy.url] == 1


async def test_the_primary_is_used_again_once_its_time_is_up(
    proxy: FaultProxy, devnet: Devnet
) -> None:
    settings = RpcSettings(timeout_s=1.0, retries=3, set_aside_s=0.2)
    proxy.inject(Fault.HTTP_5XX, times=1)
    async with JsonRpcClient(proxy.url, settings, fallbacks=[devnet.url]) as rpc:
        await rpc.call("eth_chainId")  # 5xx at the primary, answered by the fallback
        assert proxy.requests == 1
        await asyncio.sleep(0.3)  # the set-aside period is the thing under test
        await rpc.call("eth_chainId")
        assert proxy.requests == 2  # back on the primary


async def test_a_primary_whose_head_lags_is_set_aside(proxy: FaultProxy, devnet: Devnet) -> None:
    async with (
        JsonRpcClient(devnet.url) as chain,
        JsonRpcClient(
            proxy.url, RpcSettings(max_head_lag=2, set_aside_s=60.0), fallbacks=[devnet.url]
        ) as rpc,
    ):
        frozen = await proxy.freeze_head()
        await chain.call("anvil_mine", [hex(5)])
        # Head queries ask both: the answer is the true head, and the primary is set aside.
        assert to_int(await rpc.call("eth_blockNumber")) == frozen + 5
        latest = await rpc.call("eth_getBlockByNumber", ["latest", False])
        assert to_int(latest["number"]) == frozen + 5
        assert rpc.set_asides[proxy.url] == 1
        before = proxy.calls["eth_getBlockByNumber"]
        block = await rpc.call("eth_getBlockByNumber", [hex(frozen + 4), False])
        assert block is not None and to_int(block["number"]) == frozen + 4
        assert proxy.calls["eth_getBlockByNumber"] == before  # served by the fallback


async def test_a_node_missing_a_known_block_is_set_aside(proxy: FaultProxy, devnet: Devnet) -> None:
    """The primary answers, but null for a block the chain has: its data is behind, so
    the question goes to the fallback (a lone node's null would be the answer)."""
    async with (
        JsonRpcClient(devnet.url) as chain,
        JsonRpcClient(proxy.url, RpcSettings(set_aside_s=60.0), fallbacks=[devnet.url]) as rpc,
    ):
        frozen = await proxy.freeze_head()
        await chain.call("anvil_mine", [hex(3)])
        rpc.note_head(frozen + 3)  # e.g. from a websocket subscription to another node
        (block,) = await rpc.batch([("eth_getBlockByNumber", [hex(frozen + 3), False])])
        assert block is not None and to_int(block["number"]) == frozen + 3
        assert rpc.set_asides[proxy.url] == 1
        async with JsonRpcClient(proxy.url) as alone:
            assert await alone.call("eth_getBlockByNumber", [hex(frozen + 3), False]) is None


async def test_every_endpoint_failing_still_raises(proxy: FaultProxy, devnet: Devnet) -> None:
    async with FaultProxy(devnet.url) as second:
        proxy.inject(Fault.HTTP_5XX, times=None)
        second.inject(Fault.HTTP_5XX, times=None)
        settings = RpcSettings(timeout_s=1.0, retries=3, backoff_base_s=0.01, backoff_max_s=0.02)
        async with JsonRpcClient(proxy.url, settings, fallbacks=[second.url]) as rpc:
            with pytest.raises(RpcTransportError, match="HTTP 503"):
                await rpc.call("eth_chainId")
        assert proxy.requests + second.requests == settings.retries + 1
