"""Metrics and health: synthetic head reports in, scraped over HTTP and parsed back."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from bot.api import BlockRef
from bot.execution.executor import Attempt
from bot.ledger import LedgerRow, Outcome
from bot.metrics import Metrics
from bot.rpc import JsonRpcClient
from bot.runner import HeadReport

T0 = 1_700_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def head(number: int, timestamp: int) -> BlockRef:
    return BlockRef(number, f"0x{number:064x}", f"0x{number - 1:064x}", timestamp)


def report(number: int, timestamp: int, **kw: Any) -> HeadReport:
    fields: dict[str, Any] = {
        "liquidatable": 0,
        "planned": 0,
        "attempts": (),
        "settled": (),
        "elapsed_s": 0.02,
    }
    fields.update(kw)
    return HeadReport(head(number, timestamp), **fields)


def ledger_row(outcome: Outcome, net: int) -> LedgerRow:
    names = LedgerRow.__dataclass_fields__
    values: dict[str, Any] = {n: 0 if f.type == "int" else "" for n, f in names.items()}
    return replace(LedgerRow(**values), outcome=outcome.value, realized_net_base=net)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Served:
    def __init__(self, metrics: Metrics, url: str, http: aiohttp.ClientSession) -> None:
        self.metrics = metrics
        self.url = url
        self.http = http

    async def scrape(self) -> Samples:
        async with self.http.get(f"{self.url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            return parse(await resp.text())

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{self.url}/health") as resp:
            return resp.status, await resp.json()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def rpc() -> JsonRpcClient:
    return JsonRpcClient("http://127.0.0.1:1/")  # never called: only its counters are read


@pytest_asyncio.fixture
async def served(clock: Clock, rpc: JsonRpcClient) -> AsyncIterator[Served]:
    metrics = Metrics(rpc=rpc, stale_after_s=60, clock=clock)
    async with metrics.serve("127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        assert url.startswith("http://127.0.0.1:")
        yield Served(metrics, url, http)


@pytest.mark.asyncio
async def test_counters_and_gauges_from_head_reports(
    served: Served, clock: Clock, rpc: JsonRpcClient
) -> None:
    m = served.metrics
    rpc.calls.update({"eth_call": 7, "eth_getLogs": 2})
    rpc.round_trips = 4
    m.observe(
        report(
            100,
            T0 - 3,
            liquidatable=3,
            planned=2,
            attempts=(Attempt(Outcome.SENT, 1, "0xaa"), Attempt(Outcome.UNPROFITABLE, 2)),
            elapsed_s=0.3,
            phases=(("sent 1", 0.2), ("yielded", 0.2)),
        ),
        positions=250,
    )
    m.observe(
        report(101, T0 - 1, liquidatable=1, settled=(Attempt(Outcome.WON, 1, "0xaa"),)),
        positions=251,
    )
    m.observe(report(102, T0, elapsed_s=0.0, error="TimeoutError()"), positions=251)
    m.observe_ledger([ledger_row(Outcome.WON, 1_500), ledger_row(Outcome.REVERTED, -200)])

    s = await served.scrape()
    assert s["liqbot_head_block", ()] == 101  # the failed head does not count as handled
    assert s["liqbot_head_lag_seconds", ()] == 1
    assert s["liqbot_positions", ()] == 251
    assert s["liqbot_liquidatable", ()] == 1
    assert s["liqbot_heads_handled_total", ()] == 2
    assert s["liqbot_handler_failures_total", ()] == 1
    assert s["liqbot_heads_yielded_total", ()] == 1
    assert s["liqbot_handler_seconds_count", ()] == 2
    assert s["liqbot_handler_seconds_sum", ()] == pytest.approx(0.32)
    assert s["liqbot_handler_seconds_bucket", (("le", "0.25"),)] == 1
    assert s["liqbot_handler_seconds_bucket", (("le", "0.5"),)] == 2
    by_outcome = {
        o.value: s["liqbot_opportunities_total", (("outcome", o.value),)] for o in Outcome
    }
    assert by_outcome == {
        "dry-run": 0,
        "sent": 1,
        "won": 1,
        "raced": 0,
        "reverted": 0,
        "unprofitable": 1,
        "cancelled": 0,
        "displaced": 0,
    }
    assert s["liqbot_realized_pnl_base", ()] == 1_300
    assert s["liqbot_rpc_calls_total", (("method", "eth_call"),)] == 7
    assert s["liqbot_rpc_calls_total", (("method", "eth_getLogs"),)] == 2
    assert s["liqbot_rpc_round_trips_total", ()] == 4

    # RPC counts are read at scrape time, not copied per head.
    rpc.calls["eth_call"] += 5
    clock.now += 10
    s = await served.scrape()
    assert s["liqbot_rpc_calls_total", (("method", "eth_call"),)] == 12
    assert s["liqbot_head_lag_seconds", ()] == 11


@pytest.mark.asyncio
async def test_before_the_first_head(served: Served) -> None:
    s = await served.scrape()
    assert math.isnan(s["liqbot_head_lag_seconds", ()])
    assert s["liqbot_heads_handled_total", ()] == 0
    assert s["liqbot_opportunities_total", (("outcome", "won"),)] == 0
    status, body = await served.health()
    assert status == 503
    assert body["head"] is None


@pytest.mark.asyncio
async def test_health_follows_the_age_of_the_last_head(served: Served, clock: Clock) -> None:
    m = served.metrics
    m.observe(report(7, T0 - 5), positions=1)
    assert await served.health() == (200, {"head": 7, "lag_s": 5})

    clock.now += 55  # 60 s old: still fresh
    assert await served.health() == (200, {"head": 7, "lag_s": 60})

    clock.now += 1
    status, body = await served.health()
    assert status == 503
    assert (body["head"], body["lag_s"]) == (7, 61)
    assert "older than 60s" in body["error"]

    # A failing handler does not make the bot healthy again; a handled head does.
    m.observe(report(8, int(clock.now) - 2, error="RpcError()"), positions=1)
    assert (await served.health())[0] == 503
    m.observe(report(9, int(clock.now) - 2), positions=1)
    assert await served.health() == (200, {"head": 9, "lag_s": 2})


@pytest.mark.asyncio
async def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.observe(report(1, T0), positions=5)
    assert parse(b.exposition().decode())["liqbot_positions", ()] == 0
    assert parse(a.exposition().decode())["liqbot_positions", ()] == 5
