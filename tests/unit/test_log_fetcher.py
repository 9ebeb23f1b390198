"""LogFetcher against a local scripted ``eth_getLogs`` server over a synthetic chain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from local_http import serve

from bot.api import LogFilter, RawLog
from bot.errors import RpcError, RpcTransportError
from bot.indexer.logs import LogFetcher, WindowSettings, is_window_error
from bot.rpc import JsonRpcClient, RpcSettings

CHAIN_LEN = 1000
POOL = "0x" + "87" * 20
TOKEN = "0x" + "a0" * 20
TOPIC = "0x" + "11" * 32
FLT = LogFilter(addresses=(POOL, TOKEN), topics0=(TOPIC,))
FAST = RpcSettings(retries=0, backoff_base_s=0.001, backoff_max_s=0.002, timeout_s=5.0)

TOO_MANY = {"code": -32005, "message": "query returned more than 10000 results"}
TOO_WIDE = {"code": -32000, "message": "block range too large"}


def block_hash(n: int) -> str:
    return "0x" + f"{n:064x}"


def chain_log(n: int) -> dict[str, Any]:
    """The one log of block ``n``, as a node returns it (mixed-case address on purpose)."""
    return {
        "blockNumber": hex(n),
        "blockHash": block_hash(n),
        "transactionHash": "0x" + f"{n + 0xABC:064x}",
        "transactionIndex": "0x0",
        "logIndex": hex(n % 3),
        "address": (POOL if n % 2 else TOKEN).upper().replace("0X", "0x"),
        "topics": [TOPIC.upper().replace("0X", "0x"), "0x" + f"{n:064x}"],
        "data": "0x" + f"{n * 7:064x}",
        "removed": False,
    }


class Chain:
    """``eth_getLogs`` over blocks 0..CHAIN_LEN-1, refusing ranges wider than ``limit``."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.error: dict[str, Any] = TOO_MANY
        self.lift_after: int | None = None  # successes after which the limit is lifted
        self.fail_with: dict[str, Any] | None = None  # any request fails with this error
        self.hang_above: int | None = None  # ranges wider than this never answer in time
        self.received: list[tuple[int, int]] = []
        self.arrivals: asyncio.Queue[tuple[int, int]] = asyncio.Queue()  # as received
        self.served: list[tuple[int, int]] = []
        self.params: list[Any] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.text())
        assert body["method"] == "eth_getLogs"
        (p,) = body["params"]
        self.params.append(p)
        lo, hi = int(p["fromBlock"], 16), int(p["toBlock"], 16)
        self.received.append((lo, hi))
        self.arrivals.put_nowait((lo, hi))
        width = hi - lo + 1

        def error(e: dict[str, Any]) -> web.Response:
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": e})

        if self.fail_with is not None:
            return error(self.fail_with)
        if self.hang_above is not None and width > self.hang_above:
            await asyncio.sleep(0.25)
        if self.limit is not None and width > self.limit:
            return error(self.error)
        self.served.append((lo, hi))
        if self.lift_after is not None and len(self.served) >= self.lift_after:
            self.limit = None
        logs = [chain_log(n) for n in range(lo, min(hi, CHAIN_LEN - 1) + 1)]
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": logs})


@pytest_asyncio.fixture
async def chain() -> AsyncIterator[tuple[Chain, str]]:
    c = Chain()
    async with serve(c.handle) as url:
        yield c, url


async def collect(fetcher: LogFetcher, start: int, end: int) -> list[tuple[int, int, list[RawLog]]]:
    return [w async for w in fetcher.chunks(start, end)]


def assert_covers(windows: list[tuple[int, int, list[RawLog]]], start: int, end: int) -> None:
    """Contiguous, in order, non-overlapping, every block's log exactly once, inside its window."""
    assert windows, "no windows"
    assert windows[0][0] == start
    assert windows[-1][1] == end
    for (_, last, _), (first, _, _) in pairwise(windows):
        assert first == last + 1
    for first, last, logs in windows:
        assert first <= last
        assert all(first <= lg.block_number <= last for lg in logs)
    numbers = [lg.block_number for _, _, logs in windows for lg in logs]
    assert numbers == list(range(start, end + 1))


@pytest.mark.asyncio
async def test_get_parses_logs_and_sends_the_filter(chain: tuple[Chain, str]) -> None:
    c, url = chain
    async with JsonRpcClient(url, FAST) as rpc:
        logs = await LogFetcher(rpc, FLT).get(5, 6)
    assert c.params == [
        {"fromBlock": "0x5", "toBlock": "0x6", "address": [POOL, TOKEN], "topics": [[TOPIC]]}
    ]
    assert logs[0] == RawLog(
        block_number=5,
        block_hash=block_hash(5),
        tx_hash="0x" + f"{5 + 0xABC:064x}",
        log_index=2,
        address=POOL,
        topics=(TOPIC, "0x" + f"{5:064x}"),
        data="0x" + f"{35:064x}",
    )
    assert logs[1].address == TOKEN and logs[1].block_number == 6


@pytest.mark.asyncio
async def test_chunks_cover_the_range_without_limits(chain: tuple[Chain, str]) -> None:
    c, url = chain
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(pipeline=1, initial=300, grow_after=100))
        windows = await collect(fetcher, 0, CHAIN_LEN - 1)
    assert [(f, last) for f, last, _ in windows] == [(0, 299), (300, 599), (600, 899), (900, 999)]
    assert_covers(windows, 0, CHAIN_LEN - 1)
    assert fetcher.shrinks == 0
    assert c.received == c.served


@pytest.mark.asyncio
async def test_a_range_within_one_window_is_cut_so_the_next_is_fetched_meanwhile(
    chain: tuple[Chain, str],
) -> None:
    """The whole range fits the provider's window, but in one request the node would
    serve everything before the indexer could start: it is cut into ``pipeline`` windows,
    and while the consumer works on one, the node is already asked for the next."""
    c, url = chain
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(initial=2_000, pipeline=4))
        windows = []
        asked = []
        async for w in fetcher.chunks(0, 99):
            windows.append(w)
            # The consumer, still on window k, awaiting its own I/O: the node is asked for
            # window k + 1 meanwhile.
            while len(windows) < 4 and len(asked) <= len(windows):
                asked.append(await asyncio.wait_for(c.arrivals.get(), 5))
    assert_covers(windows, 0, 99)
    assert [(f, last) for f, last, _ in windows] == [(0, 24), (25, 49), (50, 74), (75, 99)]
    assert asked == c.received == [(0, 24), (25, 49), (50, 74), (75, 99)]


@pytest.mark.asyncio
async def test_single_block_and_empty_ranges(chain: tuple[Chain, str]) -> None:
    c, url = chain
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT)
        one = await collect(fetcher, 42, 42)
        none = await collect(fetcher, 10, 9)
    assert [(f, last, [lg.block_number for lg in logs]) for f, last, logs in one] == [
        (42, 42, [42])
    ]
    assert none == []
    assert c.received == [(42, 42)]


@pytest.mark.asyncio
@pytest.mark.parametrize("error", [TOO_MANY, TOO_WIDE])
async def test_window_shrinks_on_provider_limit(
    chain: tuple[Chain, str], error: dict[str, Any]
) -> None:
    c, url = chain
    c.limit, c.error = 100, error
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(pipeline=1, initial=1000, grow_after=1000))
        windows = await collect(fetcher, 0, CHAIN_LEN - 1)
    assert_covers(windows, 0, CHAIN_LEN - 1)
    # 1000 → 500 → 250 → 125 → 62, then it stays there.
    assert fetcher.shrinks == 4
    assert fetcher.window == 62
    assert c.received[:5] == [(0, 999), (0, 499), (0, 249), (0, 124), (0, 61)]
    assert all(hi - lo + 1 <= 100 for lo, hi in c.served)
    assert [(f, last) for f, last, _ in windows] == c.served


@pytest.mark.asyncio
async def test_window_grows_back_when_the_limit_is_lifted(chain: tuple[Chain, str]) -> None:
    c, url = chain
    c.limit, c.lift_after = 50, 2
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(
            rpc, FLT, WindowSettings(pipeline=1, initial=200, maximum=400, grow_after=2)
        )
        windows = await collect(fetcher, 0, CHAIN_LEN - 1)
    assert_covers(windows, 0, CHAIN_LEN - 1)
    assert fetcher.shrinks == 2
    widths = [last - first + 1 for first, last, _ in windows]
    # 50, 50 (→ 100), 100 (limit lifted), 100 (→ 200), 200, 200 (→ 400, the maximum), rest.
    assert widths == [50, 50, 100, 100, 200, 200, 300]
    assert fetcher.window == 400
    assert c.received[:2] == [(0, 199), (0, 99)]


@pytest.mark.asyncio
async def test_non_window_error_is_raised_not_retried(chain: tuple[Chain, str]) -> None:
    c, url = chain
    c.fail_with = {"code": -32602, "message": "invalid params"}
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(pipeline=1, initial=500))
        with pytest.raises(RpcError, match="invalid params") as e:
            await collect(fetcher, 0, CHAIN_LEN - 1)
    assert e.value.code == -32602
    assert not isinstance(e.value, RpcTransportError)
    assert c.received == [(0, 499)]
    assert fetcher.shrinks == 0
    assert fetcher.window == 500


@pytest.mark.asyncio
async def test_non_window_error_midway_surfaces_after_earlier_windows(
    chain: tuple[Chain, str],
) -> None:
    c, url = chain
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(pipeline=1, initial=400, grow_after=100))
        got: list[tuple[int, int]] = []
        with pytest.raises(RpcError, match="invalid params"):
            async for first, last, _ in fetcher.chunks(0, CHAIN_LEN - 1):
                got.append((first, last))
                c.fail_with = {"code": -32602, "message": "invalid params"}
    # The first window was delivered; the prefetched second one failed and was not retried.
    assert got == [(0, 399)]
    assert c.received == [(0, 399), (400, 799)]


@pytest.mark.asyncio
async def test_window_error_at_minimum_is_raised(chain: tuple[Chain, str]) -> None:
    c, url = chain
    c.limit = 1
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(initial=4, minimum=2))
        with pytest.raises(RpcError, match="more than 10000"):
            await collect(fetcher, 0, 99)
    assert c.received == [(0, 3), (0, 1)]
    assert fetcher.shrinks == 1
    assert fetcher.window == 2


@pytest.mark.asyncio
async def test_timeouts_shrink_the_window(chain: tuple[Chain, str]) -> None:
    c, url = chain
    c.hang_above = 100
    settings = RpcSettings(retries=0, timeout_s=0.05)
    async with JsonRpcClient(url, settings) as rpc:
        fetcher = LogFetcher(rpc, FLT, WindowSettings(pipeline=1, initial=200, grow_after=1000))
        windows = await collect(fetcher, 0, 299)
    assert_covers(windows, 0, 299)
    assert fetcher.shrinks == 1
    assert [(f, last) for f, last, _ in windows] == [(0, 99), (100, 199), (200, 299)]


def err(message: str, code: int | None = -32000) -> RpcError:
    return RpcError("eth_getLogs", message, code=code)


@pytest.mark.parametrize(
    "e",
    [
        err(
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K "
            "block range and no limit on the response size"
        ),
        err("query returned more than 10000 results", code=-32005),
        err("block range is too wide"),
        err("block range too large"),
        err("exceed maximum block range: 2000"),
        err("eth_getLogs is limited to a 10,000 range"),
        err("too many logs to return, the limit is 10000"),
        err("request timed out"),
        RpcTransportError("eth_getLogs", "TimeoutError: "),
        RpcTransportError("eth_getLogs", "HTTP 503: upstream busy"),
    ],
    ids=lambda e: e.message[:30],
)
def test_is_window_error_true(e: RpcError) -> None:
    assert is_window_error(e)


@pytest.mark.parametrize(
    "e",
    [
        err("invalid argument 0: hex string without 0x prefix", code=-32602),
        err("invalid params", code=-32602),
        err("method not found", code=-32601),
        err("header not found"),
    ],
    ids=lambda e: e.message[:30],
)
def test_is_window_error_false(e: RpcError) -> None:
    assert not is_window_error(e)


@pytest.mark.parametrize(
    "e",
    [
        err("daily request count exceeded, request rate limited", code=-32005),
        err("rate limit exceeded", code=-32005),
        err(
            "Your app has exceeded its compute units per second capacity. If you have "
            "retries enabled, you can safely ignore this message.",
            code=429,
        ),
    ],
    ids=lambda e: e.message[:30],
)
def test_rate_limit_is_not_a_window_error(e: RpcError) -> None:
    assert not is_window_error(e)


@pytest.mark.asyncio
async def test_rate_limit_answers_back_off_without_shrinking(chain: tuple[Chain, str]) -> None:
    """A rate-limited answer is retried at the same window after a pause, up to a bound."""
    c, url = chain
    c.fail_with = {"code": -32005, "message": "daily request count exceeded, request rate limited"}
    settings = WindowSettings(initial=2_000, rate_limit_retries=3, rate_limit_backoff_s=0.001)
    async with JsonRpcClient(url, FAST) as rpc:
        fetcher = LogFetcher(rpc, FLT, settings)
        with pytest.raises(RpcError, match="rate limited"):
            await collect(fetcher, 0, CHAIN_LEN - 1)
    assert fetcher.window == 2_000
    assert len(c.received) == 4  # the first try and three retries, all at the full window
    assert len(set(c.received)) == 1
