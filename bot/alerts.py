"""Webhook alerts: a JSON POST when a liquidation is sent, won, raced or reverted, and
when the bot halts or stops.

Delivery never blocks nor crashes the bot: ``emit`` only puts the alert on a bounded queue
(a full queue drops the alert, with a warning), and one task drains it, each POST bounded
by a timeout and retried a few times. Failures are logged with the URL masked (webhook
URLs carry their token). Amounts are exact integers sent as strings.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import aiohttp

from bot.ledger import LedgerRow, Outcome
from bot.redact import mask_url

if TYPE_CHECKING:
    from bot.config import AlertsConfig
    from bot.runner import HeadReport

log = logging.getLogger(__name__)

EVENTS = ("sent", "won", "raced", "reverted", "halted", "stopped")
# What a plan's outcome is announced as, when handed out (attempts) or settled.
_ANNOUNCED = {
    Outcome.SENT: "sent",
    Outcome.WON: "won",
    Outcome.RACED: "raced",
    Outcome.REVERTED: "reverted",
}


@dataclass(frozen=True, slots=True)
class Alert:
    event: str  # one of EVENTS
    block: int
    instance: str = ""  # the signer's address ("dry-run" without a key)
    user: str = ""
    tx_hash: str = ""
    profit: str = ""  # profit-asset base units: realized when won, predicted otherwise
    reason: str = ""
    ledger_id: int | None = None

    def body(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


def alerts_for(
    report: HeadReport, rows: Mapping[int, LedgerRow], instance: str = ""
) -> list[Alert]:
    """The alerts one handled head gives rise to (pure: ``rows`` are the ledger's by id)."""
    out: list[Alert] = []
    for attempt, settled in [(a, False) for a in report.attempts] + [
        (a, True) for a in report.settled
    ]:
        event = _ANNOUNCED.get(attempt.outcome)
        if event is None:
            continue
        row = rows.get(attempt.row)
        won = settled and attempt.outcome == Outcome.WON
        profit = "" if row is None else str(row.realized_profit if won else row.predicted_profit)
        out.append(
            Alert(
                event,
                row.settled_block if settled and row and row.settled_block else report.head.number,
                instance,
                user=row.user if row else "",
                tx_hash=attempt.tx_hash or (row.tx_hash if row else ""),
                profit=profit,
                reason=attempt.reason or (row.reason if row else ""),
                ledger_id=attempt.row,
            )
        )
    return out


class Alerts:
    def __init__(
        self,
        url: str,
        *,
        instance: str = "",
        events: Collection[str] | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        queue_size: int = 256,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = url
        self.instance = instance
        self.events = frozenset(EVENTS if events is None else events)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.last_block = 0

    @property
    def exit_bound_s(self) -> float:
        """The longest one alert's delivery takes: every attempt times out, plus backoff."""
        return self.timeout_s * (self.retries + 1) + self.backoff_s * (2**self.retries - 1)

    # -- the bot's side: never blocks ------------------------------------------------
    def emit(self, alert: Alert) -> None:
        if alert.event not in self.events:
            return
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert dropped: queue full", extra={"event": alert.event})

    def observe(self, report: HeadReport, rows: Callable[[], list[LedgerRow]]) -> None:
        """Alerts for a handled head; ``rows`` (the ledger) is read only when needed."""
        self.last_block = report.head.number
        if not any(a.outcome in _ANNOUNCED for a in (*report.attempts, *report.settled)):
            return
        by_id = {r.id: r for r in rows()}
        for alert in alerts_for(report, by_id, self.instance):
            self.emit(alert)

    def halted(self, reason: str) -> None:
        self.emit(Alert("halted", self.last_block, self.instance, reason=reason))

    def stopped(self, reason: str = "") -> None:
        self.emit(Alert("stopped", self.last_block, self.instance, reason=reason))

    # -- delivery ---------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[Alerts]:
        """Deliver in the background; on exit, what is queued gets one bounded last
        chance (a halting bot's own alert must not be lost, nor hold the exit long)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            task = asyncio.create_task(self._drain(session), name="alerts")
            try:
                yield self
            finally:
                try:
                    async with asyncio.timeout(self.exit_bound_s):
                        await self.queue.join()
                except TimeoutError:
                    log.warning("alerts not delivered at exit", extra={"left": self.queue.qsize()})
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _drain(self, session: aiohttp.ClientSession) -> None:
        while True:
            alert = await self.queue.get()
            try:
                await self._deliver(session, alert)
            finally:
                self.queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, alert: Alert) -> None:
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with session.post(
                    self.url, data=alert.body(), headers={"Content-Type": "application/json"}
                ) as resp:
                    if resp.status < 300:
                        self.delivered += 1
                        return
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                # The class only: some aiohttp messages quote the URL, and with it the token.
                error = type(e).__name__
        self.failed += 1
        log.warning(
            "alert not delivered",
            extra={"event": alert.event, "url": mask_url(self.url), "err": error},
        )


@asynccontextmanager
async def open_alerts(cfg: AlertsConfig, instance: str) -> AsyncIterator[Alerts | None]:
    """Delivering alerts while inside, or None when no webhook is configured."""
    if cfg.webhook_url is None:
        yield None
        return
    alerts = Alerts(
        cfg.webhook_url.get_secret_value(),
        instance=instance,
        events=cfg.events,
        timeout_s=cfg.timeout_s,
        retries=cfg.retries,
    )
    async with alerts.running():
        yield alerts
