"""Prometheus metrics and a health check for ``liqbot run``.

``Metrics`` owns its own ``CollectorRegistry`` (nothing goes to prometheus_client's global
one) and is fed one ``HeadReport`` at a time by the run loop. ``Metrics.serve`` runs an
aiohttp server in the bot's event loop with two endpoints:

- ``GET /metrics``: the Prometheus text format;
- ``GET /health``: 200 and ``{"head": N, "lag_s": x}`` while the last successfully
  handled head is younger than ``stale_after_s`` (wall clock minus the head's
  timestamp); 503 before the first head and once it is older.

JSON-RPC call counts are read from the client's ``calls`` Counter at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.api import BlockRef
from bot.ledger import LedgerRow, Outcome

if TYPE_CHECKING:
    from bot.rpc import JsonRpcClient
    from bot.runner import HeadReport

# Handler latency buckets (seconds): a head is handled in milliseconds when nothing
# changed and in seconds when a cold index or many simulations are involved.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _RpcCollector(Collector):
    """The JSON-RPC client's own counters, read when scraped."""

    def __init__(self, rpc: JsonRpcClient) -> None:
        self.rpc = rpc

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "liqbot_rpc_calls",
            "JSON-RPC requests by method (batched calls count each)",
            labels=["method"],
        )
        for method, n in sorted(self.rpc.calls.items()):
            calls.add_metric([method], n)
        yield calls
        yield CounterMetricFamily(
            "liqbot_rpc_round_trips", "HTTP round trips to the node", value=self.rpc.round_trips
        )


class Metrics:
    def __init__(
        self,
        *,
        rpc: JsonRpcClient | None = None,
        stale_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.last_head: BlockRef | None = None
        r = self.registry
        self.head_block = Gauge("liqbot_head_block", "last handled head's number", registry=r)
        self.head_lag = Gauge(
            "liqbot_head_lag_seconds", "now minus the last handled head's timestamp", registry=r
        )
        self.head_lag.set_function(self._lag_or_nan)
        self.positions = Gauge("liqbot_positions", "accounts tracked by the index", registry=r)
        self.liquidatable = Gauge(
            "liqbot_liquidatable", "liquidatable positions at the last head", registry=r
        )
        self.heads = Counter("liqbot_heads_handled", "heads handled successfully", registry=r)
        self.yielded = Counter(
            "liqbot_heads_yielded",
            "heads that left their later batches to a newer head (a node slower than its blocks)",
            registry=r,
        )
        self.failures = Counter(
            "liqbot_handler_failures", "heads whose handler failed (retried next head)", registry=r
        )
        self.latency = Histogram(
            "liqbot_handler_seconds",
            "time to handle one head",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.opportunities = Counter(
            "liqbot_opportunities",
            "plans by outcome: as executed, then as settled (won/raced/reverted/cancelled)",
            ["outcome"],
            registry=r,
        )
        for outcome in Outcome:
            self.opportunities.labels(outcome.value)
        self.pnl = Gauge(
            "liqbot_realized_pnl_base",
            "realized net PnL in the oracle's base currency units (ledger, gas included)",
            registry=r,
        )
        if rpc is not None:
            r.register(_RpcCollector(rpc))

    # -- feeding -------------------------------------------------------------------------

    def observe(self, report: HeadReport, positions: int) -> None:
        """One head's report (from ``Runner.run``'s ``on_report``)."""
        self.positions.set(positions)
        if report.error is not None:
            self.failures.inc()
            return
        self.heads.inc()
        if report.yielded:
            self.yielded.inc()
        self.last_head = report.head
        self.head_block.set(report.head.number)
        self.liquidatable.set(report.liquidatable)
        self.latency.observe(report.elapsed_s)
        for attempt in (*report.attempts, *report.settled):
            self.opportunities.labels(attempt.outcome.value).inc()

    def observe_ledger(self, rows: Iterable[LedgerRow]) -> None:
        """Realized PnL: won rows' net profit, minus the gas of mined transactions that
        lost (``realized_net_base`` is 0 for rows never mined)."""
        self.pnl.set(sum(row.realized_net_base for row in rows))

    # -- reading -------------------------------------------------------------------------

    def lag_s(self) -> float | None:
        if self.last_head is None:
            return None
        return self.clock() - self.last_head.timestamp

    def _lag_or_nan(self) -> float:
        lag = self.lag_s()
        return float("nan") if lag is None else lag

    def health(self) -> tuple[int, dict[str, object]]:
        """HTTP status and body of ``/health``."""
        lag = self.lag_s()
        if self.last_head is None or lag is None:
            return 503, {"head": None, "lag_s": None, "error": "no head handled yet"}
        body: dict[str, object] = {"head": self.last_head.number, "lag_s": round(lag, 3)}
        if lag > self.stale_after_s:
            body["error"] = f"last head older than {self.stale_after_s:g}s"
            return 503, body
        return 200, body

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- serving -------------------------------------------------------------------------

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        async def health(_: web.Request) -> web.Response:
            status, body = self.health()
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve ``/metrics`` and ``/health`` on ``host:port`` (0: any free port) in the
        running loop; yields the base URL (``http://host:port``)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = port
            server = site._server
            sockets = getattr(server, "sockets", None)
            if sockets:
                bound = sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            yield f"http://{shown}:{bound}"
        finally:
            await runner.cleanup()
