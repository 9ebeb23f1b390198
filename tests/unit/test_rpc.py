"""The JSON-RPC client against a local scripted HTTP server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from local_http import serve

from bot.errors import ExecutionReverted, RpcError, RpcTransportError
from bot.rpc import JsonRpcClient, RpcSettings

pytestmark = pytest.mark.asyncio
Handler = Callable[[Any], Any]


class Scripted:
    """Answers with the next scripted response; records what it received."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.received: list[Any] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        self.received.append(body)
        step = self.script.pop(0) if self.script else "echo"
        if step == "echo":
            if isinstance(body, list):
                return web.json_response(
                    [
                        {"jsonrpc": "2.0", "id": b["id"], "result": b["params"]}
                        for b in reversed(body)
                    ]
                )
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": body["params"]})
        out = step(body)
        return out if isinstance(out, web.Response) else web.json_response(out)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[Scripted, str]]:
    s = Scripted()
    async with serve(s.handle) as url:
        yield s, url


FAST = RpcSettings(retries=3, backoff_base_s=0.001, backoff_max_s=0.002)


async def test_call_and_batch_order(server: tuple[Scripted, str]) -> None:
    _, url = server
    async with JsonRpcClient(url, FAST) as rpc:
        assert await rpc.call("m", [1]) == [1]
        # The server answers batches in reverse order: results must follow request order.
        assert await rpc.batch([("a", [i]) for i in range(5)]) == [[i] for i in range(5)]
        assert rpc.calls["a"] == 5


async def test_batches_are_split(server: tuple[Scripted, str]) -> None:
    s, url = server
    async with JsonRpcClient(url, RpcSettings(max_batch=4)) as rpc:
        out = await rpc.batch([("a", [i]) for i in range(10)])
    assert out == [[i] for i in range(10)]
    assert sorted(len(b) for b in s.received) == [2, 4, 4]


async def test_transport_errors_are_retried(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [
        web.Response(status=502),
        web.Response(status=429, headers={"Retry-After": "0"}),
        web.Response(text="{not json"),
        "echo",
    ]
    async with JsonRpcClient(url, FAST) as rpc:
        assert await rpc.call("m", [7]) == [7]
    assert len(s.received) == 4


async def test_retries_are_bounded(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [lambda _: web.Response(status=503)] * 10
    async with JsonRpcClient(url, FAST) as rpc:
        with pytest.raises(RpcTransportError, match="HTTP 503"):
            await rpc.call("m")
    assert len(s.received) == FAST.retries + 1


async def test_rpc_errors_are_answers_not_retried(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [
        lambda b: {
            "jsonrpc": "2.0",
            "id": b["id"],
            "error": {"code": 3, "message": "execution reverted: 45", "data": "0x08c379a0"},
        },
        lambda b: {
            "jsonrpc": "2.0",
            "id": b["id"],
            "error": {"code": -32000, "message": "nonce too low"},
        },
    ]
    async with JsonRpcClient(url, FAST) as rpc:
        with pytest.raises(ExecutionReverted) as e:
            await rpc.call("eth_call")
        assert e.value.revert_data == "0x08c379a0"
        with pytest.raises(RpcError, match="nonce too low") as e2:
            await rpc.call("eth_sendRawTransaction")
        assert not isinstance(e2.value, ExecutionReverted)
    assert len(s.received) == 2


async def test_batch_item_errors_stay_per_item(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [
        lambda body: [
            {"jsonrpc": "2.0", "id": body[0]["id"], "result": "0x1"},
            {
                "jsonrpc": "2.0",
                "id": body[1]["id"],
                "error": {"code": 3, "message": "execution reverted"},
            },
        ]
    ]
    async with JsonRpcClient(url, FAST) as rpc:
        ok, bad, missing = await rpc.batch([("a", []), ("b", []), ("c", [])])
    assert ok == "0x1"
    assert isinstance(bad, ExecutionReverted)
    assert isinstance(missing, RpcTransportError)


async def test_413_splits_the_batch_until_it_fits(server: tuple[Scripted, str]) -> None:
    s, url = server

    def limit(body: Any) -> Any:
        return web.Response(status=413, text="request entity too large")

    # The node takes at most 2 requests per body: 8 calls -> 8, 4+4, 2+2+2+2.
    s.script = [limit, limit, limit, "echo", "echo", "echo", "echo"]
    async with JsonRpcClient(url, FAST) as rpc:
        assert await rpc.batch([("m", [i]) for i in range(8)]) == [[i] for i in range(8)]
    assert sorted(len(b) for b in s.received) == [2, 2, 2, 2, 4, 4, 8]


async def test_other_4xx_are_not_retried(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [lambda body: web.Response(status=401, text="bad api key")] * 5
    async with JsonRpcClient(url, FAST) as rpc:
        with pytest.raises(RpcError, match="HTTP 401") as info:
            await rpc.call("eth_chainId")
        assert not isinstance(info.value, RpcTransportError)
    assert len(s.received) == 1


async def test_retry_after_is_capped(server: tuple[Scripted, str]) -> None:
    s, url = server
    s.script = [lambda body: web.Response(status=429, headers={"Retry-After": "3600"})]
    settings = RpcSettings(retries=1, backoff_base_s=0.001, retry_after_max_s=0.05)
    async with JsonRpcClient(url, settings) as rpc:
        t0 = time.monotonic()
        assert await rpc.call("m", [7]) == [7]
        assert time.monotonic() - t0 < 5
