"""One throttled JSON-RPC client per endpoint.

Rate limit (asyncio-throttle) bounds requests per second; a semaphore bounds requests in
flight (the throttler does not). Transport failures (timeouts, 5xx, 429, garbage) are
retried with jittered exponential backoff; JSON-RPC errors are answers and are not.
Batches are split into chunks the node accepts; a batch counts as one request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from asyncio_throttle import Throttler

from bot.errors import ExecutionReverted, RequestTooLarge, RpcError, RpcTransportError

log = logging.getLogger(__name__)

Call = tuple[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class RpcSettings:
    rate_limit_per_s: int = 0  # 0: unlimited
    max_in_flight: int = 8
    timeout_s: float = 30.0
    retries: int = 4
    backoff_base_s: float = 0.2
    backoff_max_s: float = 8.0
    # A provider's Retry-After is honoured up to this (an hour-long one would stall the bot).
    retry_after_max_s: float = 30.0
    max_batch: int = 250
    max_batch_bytes: int = 2_000_000  # nodes and providers cap request bodies


def _classify(method: str, err: dict[str, Any]) -> RpcError:
    message = str(err.get("message", "unknown error"))
    code = err.get("code")
    data = err.get("data")
    if code == 3 or "revert" in message.lower():
        return ExecutionReverted(method, message, code=code, data=data)
    return RpcError(method, message, code=code, data=data)


class JsonRpcClient:
    """Async JSON-RPC over HTTP. Use as an async context manager or call ``close()``."""

    def __init__(
        self,
        url: str,
        settings: RpcSettings | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.settings = settings or RpcSettings()
        self._session = session
        self._owns_session = session is None
        self._sem = asyncio.Semaphore(self.settings.max_in_flight)
        self._throttler = (
            Throttler(rate_limit=self.settings.rate_limit_per_s, period=1.0)
            if self.settings.rate_limit_per_s > 0
            else None
        )
        self._ids = itertools.count(1)
        # Per-method request counts (a batch counts each call) and HTTP round trips.
        self.calls: Counter[str] = Counter()
        self.round_trips = 0

    async def __aenter__(self) -> JsonRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.settings.max_in_flight),
            )
            self._owns_session = True
        return self._session

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request; raises ``RpcError`` (or a subclass) on a JSON-RPC error."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
            separators=(",", ":"),
        )
        self.calls[method] += 1
        answer = await self._post(body, method)
        if not isinstance(answer, dict):
            raise RpcTransportError(method, f"malformed answer: {str(answer)[:200]}")
        if "error" in answer:
            raise _classify(method, answer["error"])
        if "result" not in answer:
            raise RpcTransportError(method, f"answer without result: {str(answer)[:200]}")
        return answer["result"]

    async def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Many requests in JSON-RPC batches; each item is a result or an ``RpcError``.

        Batches hold at most ``max_batch`` requests and ``max_batch_bytes`` of JSON, and
        run concurrently within the in-flight bound.
        """
        s = self.settings
        groups: list[list[tuple[int, str, str]]] = [[]]
        size = 0
        for method, params in calls:
            rid = next(self._ids)
            item = json.dumps(
                {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)},
                separators=(",", ":"),
            )
            if groups[-1] and (
                len(groups[-1]) >= s.max_batch or size + len(item) > s.max_batch_bytes
            ):
                groups.append([])
                size = 0
            groups[-1].append((rid, method, item))
            size += len(item) + 1
            self.calls[method] += 1
        parts = await asyncio.gather(*(self._batch_group(g) for g in groups if g))
        return [item for part in parts for item in part]

    async def batch_strict(self, calls: Sequence[Call]) -> list[Any]:
        """Like ``batch`` but raises the first error."""
        results = await self.batch(calls)
        for r in results:
            if isinstance(r, RpcError):
                raise r
        return results

    async def _batch_group(self, group: list[tuple[int, str, str]]) -> list[Any]:
        label = f"batch[{len(group)}]:{group[0][1]}"
        try:
            answer = await self._post("[" + ",".join(item for _, _, item in group) + "]", label)
        except RequestTooLarge:
            if len(group) == 1:
                raise
            # The node's body limit is below ours: halve the batch until it fits.
            half = len(group) // 2
            first, second = await asyncio.gather(
                self._batch_group(group[:half]), self._batch_group(group[half:])
            )
            return first + second
        if not isinstance(answer, list):
            if isinstance(answer, dict) and "error" in answer:
                raise _classify(label, answer["error"])
            raise RpcTransportError(label, f"malformed batch answer: {str(answer)[:200]}")
        by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
        out: list[Any] = []
        for rid, method, _ in group:
            a = by_id.get(rid)
            if a is None:
                out.append(RpcTransportError(method, "missing from batch answer"))
            elif "error" in a:
                out.append(_classify(method, a["error"]))
            else:
                out.append(a.get("result"))
        return out

    async def _post(self, body: str, label: str) -> Any:
        s = self.settings
        last: Exception | None = None
        for attempt in range(s.retries + 1):
            retry_after: float | None = None
            try:
                async with self._sem:
                    if self._throttler is not None:
                        async with self._throttler:
                            pass
                    self.round_trips += 1
                    async with self._http().post(
                        self.url, data=body, headers={"Content-Type": "application/json"}
                    ) as resp:
                        # Bytes, not resp.text(): a body that is not UTF-8 (an HTML error
                        # page, garbage) must be a transport error, not a UnicodeDecodeError.
                        text = (await resp.read()).decode("utf-8", errors="replace")
                        if resp.status in (408, 429) or resp.status >= 500:
                            ra = resp.headers.get("Retry-After")
                            retry_after = (
                                min(float(ra), s.retry_after_max_s)
                                if ra and ra.replace(".", "", 1).isdigit()
                                else None
                            )
                            raise RpcTransportError(label, f"HTTP {resp.status}: {text[:120]}")
                        if resp.status == 413:
                            raise RequestTooLarge(label, f"HTTP 413: {text[:120]}")
                        if resp.status != 200:
                            # Other 4xx (auth, bad URL): the same request fails again.
                            raise RpcError(label, f"HTTP {resp.status}: {text[:120]}")
                try:
                    return json.loads(text)
                except json.JSONDecodeError as e:
                    raise RpcTransportError(label, f"invalid JSON answer: {e}") from e
            except (aiohttp.ClientError, TimeoutError, RpcTransportError) as e:
                last = e
                if attempt == s.retries:
                    break
                delay = (
                    retry_after
                    if retry_after is not None
                    else min(s.backoff_max_s, s.backoff_base_s * 2**attempt)
                    * random.uniform(0.5, 1.0)
                )
                log.warning(
                    "rpc retry", extra={"method": label, "attempt": attempt + 1, "error": str(e)}
                )
                await asyncio.sleep(delay)
        if isinstance(last, RpcTransportError):
            raise last
        raise RpcTransportError(label, f"{type(last).__name__}: {last}")


def to_int(value: str | int) -> int:
    """Parse a JSON-RPC quantity."""
    return value if isinstance(value, int) else int(value, 16)


def hex_qty(value: int) -> str:
    return hex(value)
