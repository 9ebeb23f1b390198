"""Chunked ``eth_getLogs`` whose block window adapts to what the provider accepts.

Providers cap ranges (10k blocks, 2k, 500) or result sizes, and say so in many different
words; a window that fails with such an error (or times out) is halved and retried, and
it grows back after a run of successes. One window is fetched ahead while the caller
processes the previous one; a backfill short enough to fit a few windows is still cut
into ``WindowSettings.pipeline`` of them, so that the node's work overlaps the indexer's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.aio import give_up
from bot.api import LogFilter, RawLog
from bot.errors import RpcError, RpcTransportError
from bot.rpc import JsonRpcClient

log = logging.getLogger(__name__)

_TOO_MUCH = re.compile(
    r"range|too many|too large|too wide|limit|exceed|response size|returned more than"
    r"|timeout|timed out",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class WindowSettings:
    initial: int = 2_000
    minimum: int = 1
    maximum: int = 50_000
    grow_after: int = 3  # successes in a row before doubling
    rate_limit_retries: int = 6
    rate_limit_backoff_s: float = 0.5  # doubled on each rate-limited answer in a row
    # At least this many windows per ``chunks`` range: in one window the node serves
    # everything before the indexer starts (0.57x the raw fetch at 2,000 borrowers); cut
    # in sixteen, the node serves a window while the indexer applies the one before.
    pipeline: int = 16


# Rate limits also say "limit"/"exceed"; they call for a pause, not a smaller window.
_RATE_LIMITED = re.compile(
    r"rate.?limit|too many requests|request count|compute units|capacity|throughput",
    re.IGNORECASE,
)


def is_rate_limit(e: RpcError) -> bool:
    return e.code == 429 or bool(_RATE_LIMITED.search(e.message))


def is_window_error(e: RpcError) -> bool:
    if is_rate_limit(e):
        return False
    return isinstance(e, RpcTransportError) or bool(_TOO_MUCH.search(e.message))


class LogFetcher:
    def __init__(
        self, rpc: JsonRpcClient, flt: LogFilter, settings: WindowSettings | None = None
    ) -> None:
        self.rpc = rpc
        self.filter = flt
        self.settings = settings or WindowSettings()
        self.window = self.settings.initial
        self._span = self.window  # at most this many blocks per window (``pipeline``)
        self._streak = 0
        self.shrinks = 0

    async def get(self, start: int, end: int) -> list[RawLog]:
        """Logs of [start, end] in one request (no adaptation)."""
        params = {
            "fromBlock": hex(start),
            "toBlock": hex(end),
            "address": list(self.filter.addresses),
            "topics": [list(self.filter.topics0)],
        }
        raw = await self.rpc.call("eth_getLogs", [params])
        return [RawLog.from_json(j) for j in raw]

    async def _window(self, start: int, end: int) -> tuple[int, list[RawLog]]:
        """Fetch from ``start`` as far as the window allows; returns (last block, logs)."""
        s = self.settings
        limited = 0
        while True:
            stop = min(end, start + min(self.window, self._span) - 1)
            try:
                logs = await self.get(start, stop)
            except RpcError as e:
                if is_rate_limit(e) and limited < s.rate_limit_retries:
                    delay = s.rate_limit_backoff_s * 2**limited
                    limited += 1
                    log.warning("rate limited; backing off", extra={"delay_s": delay})
                    await asyncio.sleep(delay)
                    continue
                if not is_window_error(e) or self.window <= s.minimum:
                    raise
                self.window = max(s.minimum, (stop - start + 1) // 2)
                self._streak = 0
                self.shrinks += 1
                log.info(
                    "log window shrunk", extra={"window": self.window, "error": e.message[:80]}
                )
                continue
            self._streak += 1
            if self._streak >= s.grow_after and self.window < s.maximum:
                self.window = min(s.maximum, self.window * 2)
                self._streak = 0
            return stop, logs

    async def chunks(self, start: int, end: int) -> AsyncIterator[tuple[int, int, list[RawLog]]]:
        """(first, last, logs) windows covering [start, end] in order, one fetched ahead."""
        if start > end:
            return
        self._span = -(-(end - start + 1) // max(1, self.settings.pipeline))
        pending = asyncio.create_task(self._window(start, end))
        try:
            while True:
                stop, logs = await pending
                first, start = start, stop + 1
                if start <= end:
                    pending = asyncio.create_task(self._window(start, end))
                yield first, stop, logs
                if start > end:
                    return
        finally:
            give_up(pending)  # the window fetched ahead, once its consumer stopped
