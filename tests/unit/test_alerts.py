"""Webhook alerts against a local HTTP server that records what it receives: the payloads
for a won liquidation and a halt, and a hanging or failing webhook that neither slows the
head handling beyond its timeout nor crashes anything."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from local_http import serve
from test_ledger_keys import plan

from bot.alerts import Alert, Alerts
from bot.api import BlockRef
from bot.execution.executor import Attempt
from bot.ledger import Ledger, Outcome
from bot.runner import HeadReport

pytestmark = pytest.mark.asyncio
TOKEN = "T0KEN0123456789abcdefXYZ"  # a webhook path token: must never be logged
SIGNER = "0x" + "5a" * 20


def head(n: int) -> BlockRef:
    return BlockRef(n, f"0x{n:064x}", f"0x{n - 1:064x}", 1_700_000_000 + 12 * n, 7)


def recorder(
    received: list[dict[str, object]], status: int = 200, delay_s: float = 0.0
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        received.append(await request.json())
        await asyncio.sleep(delay_s)
        return web.Response(status=status)

    return handler


async def test_won_and_halted_payloads(tmp_path: object) -> None:
    received: list[dict[str, object]] = []
    with Ledger(":memory:") as ledger:
        row = ledger.record(plan(), 100, Outcome.SENT)
        sent = HeadReport(head(100), 1, 1, (Attempt(Outcome.SENT, row, "0xtx"),), (), 0.01)
        ledger.update(row, Outcome.WON, tx_hash="0xtx", settled_block=101, realized_profit=2**200)
        won = HeadReport(head(101), 0, 0, (), (Attempt(Outcome.WON, row, "0xtx"),), 0.01)
        async with serve(recorder(received)) as url:
            alerts = Alerts(f"{url}?token={TOKEN}", instance=SIGNER, events=["won", "halted"])
            async with alerts.running():
                alerts.observe(sent, ledger.rows)  # "sent" is filtered out
                alerts.observe(won, ledger.rows)
                alerts.halted("20 heads in a row failed (last: block 102)")
    assert received == [
        {
            "event": "won",
            "block": 101,
            "instance": SIGNER,
            "user": plan().user,
            "tx_hash": "0xtx",
            "profit": str(2**200),  # exact, as a string
            "reason": "",
            "ledger_id": row,
        },
        {
            "event": "halted",
            "block": 101,
            "instance": SIGNER,
            "user": "",
            "tx_hash": "",
            "profit": "",
            "reason": "20 heads in a row failed (last: block 102)",
            "ledger_id": None,
        },
    ]
    assert alerts.delivered == 2 and alerts.failed == 0


@pytest.mark.parametrize("status,delay_s", [(200, 3.0), (500, 0.0)])
async def test_hanging_or_failing_webhook_costs_the_bot_nothing(
    status: int, delay_s: float, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[dict[str, object]] = []
    timeout_s, retries = 0.3, 1
    async with serve(recorder(received, status, delay_s)) as url:
        alerts = Alerts(
            f"{url}?token={TOKEN}",
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=0.05,
            queue_size=4,
        )
        t0 = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="bot.alerts"):
            async with alerts.running():
                for n in range(10):  # more than the queue holds: the rest is dropped
                    alerts.emit(Alert("won", n))
                emitting = time.perf_counter() - t0
                await asyncio.sleep(0)  # the delivery task starts on a hanging POST
                heads_handled = time.perf_counter() - t0
            exit_s = time.perf_counter() - t0
    # emit() only queues: the head handler never waits for the webhook.
    # (Bounds far below the 3 s hang, loose enough for a loaded machine.)
    assert emitting < 1.0 and heads_handled < 1.0
    # The exit drains what it can within the bound, then gives up: no exception.
    assert exit_s < alerts.exit_bound_s + 0.5
    assert alerts.delivered == 0
    assert alerts.dropped == 10 - 4 - 1 or alerts.dropped == 10 - 4
    assert len(received) >= retries + 1  # the first alert was retried
    warnings = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    # Retries exhausted (500), or the exit's bound reached first (hanging): logged.
    assert "alert not delivered" in warnings or "alerts not delivered at exit" in warnings
    assert TOKEN not in warnings
    assert json.loads(Alert("won", 1, profit=str(2**255)).body())["profit"] == str(2**255)
