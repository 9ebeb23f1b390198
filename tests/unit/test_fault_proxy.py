"""The fault proxy in isolation, in front of a tiny scripted upstream, seen by a raw
aiohttp client (and, at the end, by ``JsonRpcClient``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from local_http import serve

from bot.errors import RpcTransportError
from bot.rpc import JsonRpcClient, RpcSettings
from bot.testing.fault_proxy import Fault, FaultProxy

pytestmark = pytest.mark.asyncio
CHAIN_ID = 31337


def block_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


class Upstream:
    """A toy node: the head moves one block per eth_blockNumber; one log per block."""

    def __init__(self) -> None:
        self.head = 100
        self.received: list[bytes] = []

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call["method"], call.get("params", [])
        result: Any
        if method == "eth_blockNumber":
            self.head += 1
            result = hex(self.head)
        elif method == "eth_chainId":
            result = hex(CHAIN_ID)
        elif method == "eth_getBlockByNumber":
            n = self.head if params[0] == "latest" else int(params[0], 16)
            result = {"number": hex(n), "hash": block_hash(n)}
        elif method == "eth_getLogs":
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            result = [
                {"blockNumber": hex(n), "blockHash": block_hash(n)} for n in range(lo, hi + 1)
            ]
        else:
            result = {"method": method, "params": params}
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.received.append(raw)
        body = json.loads(raw)
        if isinstance(body, list):
            return web.json_response([self.answer(c) for c in body])
        return web.json_response(self.answer(body))


@pytest_asyncio.fixture
async def proxied() -> AsyncIterator[tuple[Upstream, FaultProxy, aiohttp.ClientSession]]:
    up = Upstream()
    async with (
        serve(up.handle) as url,
        FaultProxy(url) as proxy,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
    ):
        yield up, proxy, http


Env = tuple[Upstream, FaultProxy, aiohttp.ClientSession]


def req(method: str, params: list[Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


async def post(env: Env, body: Any) -> tuple[int, bytes, aiohttp.ClientResponse]:
    _, proxy, http = env
    async with http.post(proxy.url, data=json.dumps(body)) as resp:
        return resp.status, await resp.read(), resp


async def result(env: Env, method: str, params: list[Any] | None = None) -> Any:
    status, body, _ = await post(env, req(method, params))
    assert status == 200
    return json.loads(body)["result"]


async def test_forwards_single_and_batch_intact_and_counts(proxied: Env) -> None:
    up, proxy, _ = proxied
    assert await result(proxied, "eth_call", [{"to": "0x01"}, "latest"]) == {
        "method": "eth_call",
        "params": [{"to": "0x01"}, "latest"],
    }
    batch = [req("eth_call", [i], rid=i) for i in range(3)] + [req("eth_chainId", rid=9)]
    status, body, _ = await post(proxied, batch)
    assert status == 200
    assert [a["id"] for a in json.loads(body)] == [0, 1, 2, 9]
    assert up.received[-1] == json.dumps(batch).encode()  # the very bytes, one request
    assert proxy.calls == {"eth_call": 4, "eth_chainId": 1}
    assert proxy.requests == 2


async def test_delay(proxied: Env) -> None:
    proxied[1].inject(Fault.DELAY, delay_s=0.3, times=1)
    t0 = time.monotonic()
    assert await result(proxied, "eth_chainId") == hex(CHAIN_ID)
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    await result(proxied, "eth_chainId")
    assert time.monotonic() - t0 < 0.3


async def test_timeout_hangs_past_the_client_timeout(proxied: Env) -> None:
    _, proxy, http = proxied
    proxy.inject(Fault.TIMEOUT, times=1)
    with pytest.raises(TimeoutError):
        async with http.post(
            proxy.url, data=json.dumps(req("eth_chainId")), timeout=aiohttp.ClientTimeout(0.3)
        ) as resp:
            await resp.read()
    assert await result(proxied, "eth_chainId") == hex(CHAIN_ID)


async def test_partial_batch_forwards_the_first_calls_then_hangs(proxied: Env) -> None:
    up, proxy, http = proxied
    rule = proxy.inject(Fault.PARTIAL_BATCH, keep=2, times=1, delay_s=0.3)
    batch = [req("eth_sendRawTransaction", [f"0x0{i}"], rid=i) for i in range(5)]
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post(proxy.url, data=json.dumps(batch)) as resp:
            await resp.read()
    assert (rule.hits, rule.forwarded) == (1, 2)
    assert json.loads(up.received[-1]) == batch[:2]  # the node got exactly the first two
    status, body, _ = await post(proxied, batch)
    assert status == 200 and len(json.loads(body)) == 5


async def test_http_5xx(proxied: Env) -> None:
    proxied[1].inject(Fault.HTTP_5XX, status=502, times=1)
    status, body, _ = await post(proxied, req("eth_chainId"))
    assert (status, body) == (502, b"injected HTTP 502")


async def test_http_429_says_when_to_retry(proxied: Env) -> None:
    up, proxy, _ = proxied
    proxy.inject(Fault.HTTP_429, retry_after_s=2, times=1)
    status, _, resp = await post(proxied, req("eth_chainId"))
    assert status == 429
    assert resp.headers["Retry-After"] == "2"
    assert up.received == []  # a rate-limited request never reaches the node


async def test_dropped_connection(proxied: Env) -> None:
    proxied[1].inject(Fault.DROP, times=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(proxied, req("eth_chainId"))
    assert await result(proxied, "eth_chainId") == hex(CHAIN_ID)


async def test_truncated_json(proxied: Env) -> None:
    good = (await post(proxied, req("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x9"}])))[1]
    proxied[1].inject(Fault.TRUNCATED, times=1)
    status, body, _ = await post(
        proxied, req("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x9"}])
    )
    assert status == 200
    assert good.startswith(body) and 0 < len(body) < len(good)
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_garbage_body(proxied: Env) -> None:
    proxied[1].inject(Fault.GARBAGE, times=1, body=b"\xff\xfe not json")
    status, body, resp = await post(proxied, req("eth_chainId"))
    assert (status, body, resp.content_type) == (200, b"\xff\xfe not json", "text/html")


async def test_times_is_honoured(proxied: Env) -> None:
    rule = proxied[1].inject(Fault.HTTP_5XX, times=2)
    statuses = [(await post(proxied, req("eth_chainId")))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert rule.hits == 2 and not rule.active


async def test_method_filter_and_batches(proxied: Env) -> None:
    rule = proxied[1].inject(Fault.HTTP_5XX, methods={"eth_getLogs"})
    assert (await post(proxied, req("eth_call")))[0] == 200
    flt = {"fromBlock": "0x1", "toBlock": "0x1"}
    assert (await post(proxied, req("eth_getLogs", [flt])))[0] == 503
    # A batch holding a matching call fails as a whole, as a real HTTP error would.
    assert (await post(proxied, [req("eth_call", rid=1), req("eth_getLogs", [flt], rid=2)]))[
        0
    ] == 503
    assert rule.hits == 2
    proxied[1].clear()
    assert (await post(proxied, req("eth_getLogs", [flt])))[0] == 200


async def test_oldest_matching_rule_first(proxied: Env) -> None:
    _, proxy, _ = proxied
    first = proxy.inject(Fault.HTTP_5XX, status=500, times=1)
    proxy.inject(Fault.HTTP_5XX, status=504, times=1)
    assert [(await post(proxied, req("m")))[0] for _ in range(3)] == [500, 504, 200]
    assert first.hits == 1


async def test_frozen_head(proxied: Env) -> None:
    up, proxy, _ = proxied
    frozen = await proxy.freeze_head()
    assert frozen == up.head
    for _ in range(3):
        assert await result(proxied, "eth_blockNumber") == hex(frozen)
        block = await result(proxied, "eth_getBlockByNumber", ["latest", False])
        assert block["number"] == hex(frozen)
    # Numbered blocks are untouched, also inside a batch next to a frozen call.
    status, body, _ = await post(
        proxied,
        [req("eth_getBlockByNumber", ["0x5", False], rid=1), req("eth_blockNumber", rid=2)],
    )
    by_id = {a["id"]: a["result"] for a in json.loads(body)}
    assert status == 200
    assert by_id == {1: {"number": "0x5", "hash": block_hash(5)}, 2: hex(frozen)}
    proxy.clear()
    assert int(await result(proxied, "eth_blockNumber"), 16) > frozen


async def test_frozen_head_lazily_and_explicitly(proxied: Env) -> None:
    up, proxy, _ = proxied
    proxy.inject(Fault.FROZEN_HEAD, head=42, times=2)
    assert [await result(proxied, "eth_blockNumber") for _ in range(3)] == [
        "0x2a",
        "0x2a",
        hex(up.head),
    ]
    proxy.inject(Fault.FROZEN_HEAD)  # frozen at the first call it sees
    first = await result(proxied, "eth_blockNumber")
    assert await result(proxied, "eth_blockNumber") == first


async def test_wrong_chain_id(proxied: Env) -> None:
    _, proxy, _ = proxied
    proxy.inject(Fault.WRONG_CHAIN_ID, times=1)
    assert await result(proxied, "eth_chainId") == hex(CHAIN_ID + 1)
    proxy.inject(Fault.WRONG_CHAIN_ID, chain_id=1)
    status, body, _ = await post(proxied, [req("eth_chainId", rid=1), req("eth_call", rid=2)])
    assert status == 200
    assert {a["id"]: a["result"] for a in json.loads(body)} == {
        1: "0x1",
        2: {"method": "eth_call", "params": []},  # the rest of the batch is untouched
    }


async def test_lying_logs(proxied: Env) -> None:
    _, proxy, _ = proxied
    flt = {"fromBlock": "0xa", "toBlock": "0xc", "address": ["0x01"]}
    proxy.inject(Fault.LOGS_OTHER_RANGE, shift=-5, times=1)
    logs = await result(proxied, "eth_getLogs", [flt])
    assert [lg["blockNumber"] for lg in logs] == ["0x5", "0x6", "0x7"]
    proxy.inject(Fault.LOGS_WRONG_HASH, times=1)
    logs = await result(proxied, "eth_getLogs", [flt])
    assert [lg["blockNumber"] for lg in logs] == ["0xa", "0xb", "0xc"]
    assert all(lg["blockHash"] != block_hash(int(lg["blockNumber"], 16)) for lg in logs)
    assert all(len(lg["blockHash"]) == 66 for lg in logs)
    honest = await result(proxied, "eth_getLogs", [flt])
    assert all(lg["blockHash"] == block_hash(int(lg["blockNumber"], 16)) for lg in honest)


async def test_bad_schedules_are_refused(proxied: Env) -> None:
    proxy = proxied[1]
    with pytest.raises(ValueError):
        proxy.inject(Fault.HTTP_5XX, status=404)
    with pytest.raises(ValueError):
        proxy.inject(Fault.DELAY)
    with pytest.raises(ValueError):
        proxy.inject(Fault.WRONG_CHAIN_ID, methods={"eth_call"})
    with pytest.raises(ValueError):
        proxy.inject(Fault.DROP, times=0)


async def test_close_does_not_wait_for_hung_requests() -> None:
    up = Upstream()
    async with serve(up.handle) as url:
        proxy = FaultProxy(url)
        await proxy.start()
        proxy.inject(Fault.TIMEOUT)
        async with aiohttp.ClientSession() as http:
            hung = asyncio.create_task(http.post(proxy.url, data=json.dumps(req("m"))))
            await asyncio.sleep(0.1)
            t0 = time.monotonic()
            await proxy.close()
            assert time.monotonic() - t0 < 0.5
            with pytest.raises(aiohttp.ClientError):
                await hung


FAST = RpcSettings(timeout_s=0.5, retries=3, backoff_base_s=0.001, backoff_max_s=0.002)
RETRIED = [
    (Fault.DELAY, {"delay_s": 0.05}),
    (Fault.TIMEOUT, {}),
    (Fault.HTTP_5XX, {}),
    (Fault.HTTP_429, {"retry_after_s": 0}),
    (Fault.DROP, {}),
    (Fault.TRUNCATED, {}),
    (Fault.GARBAGE, {}),
]


@pytest.mark.parametrize(("fault", "opts"), RETRIED, ids=[f.name for f, _ in RETRIED])
async def test_client_rides_out_transport_faults(
    proxied: Env, fault: Fault, opts: dict[str, Any]
) -> None:
    _, proxy, _ = proxied
    rule = proxy.inject(fault, times=2, **opts)
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        assert await rpc.call("eth_chainId") == hex(CHAIN_ID)
        assert await rpc.batch([("eth_call", [i]) for i in range(3)]) == [
            {"method": "eth_call", "params": [i]} for i in range(3)
        ]
        # Two failed attempts then an answer, then the batch at once; a delay only slows.
        assert rpc.round_trips == (2 if fault is Fault.DELAY else 4)
    assert rule.hits == 2


async def test_client_gives_up_after_its_retries(proxied: Env) -> None:
    _, proxy, _ = proxied
    proxy.inject(Fault.HTTP_5XX, times=FAST.retries + 1)
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        with pytest.raises(RpcTransportError, match="HTTP 503"):
            await rpc.call("eth_chainId")
        assert rpc.round_trips == FAST.retries + 1


async def test_client_retries_binary_garbage(proxied: Env) -> None:
    _, proxy, _ = proxied
    proxy.inject(Fault.GARBAGE, times=1, body=b"\xff\xfe\x00 not json")
    async with JsonRpcClient(proxy.url, FAST) as rpc:
        assert await rpc.call("eth_chainId") == hex(CHAIN_ID)
