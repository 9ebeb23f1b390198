"""A throttled JSON-RPC client over one endpoint and its fallbacks.

Each endpoint has its own rate limit (asyncio-throttle: requests per second) and its own
bound on requests in flight (the throttler does not bound those). Requests go to the first
endpoint that is not set aside. An endpoint is set aside for ``set_aside_s`` when it fails
in transport (timeout, 5xx, 429, garbage) or lags: its head is more than
``max_head_lag`` blocks behind the best head seen, or it lacks a block that exists. The
request then moves to the next endpoint at once; only when every endpoint has failed is it
retried after a jittered exponential backoff. JSON-RPC errors are answers and are never
retried. Batches are split into chunks the node accepts; a batch counts as one request.

Head queries (``eth_blockNumber``, the ``latest`` block) ask every endpoint that is not
set aside, in parallel, and answer with the highest: a node frozen on an old head is
found at the next head, not when the bot has been blind for minutes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from asyncio_throttle import Throttler

from bot.errors import ExecutionReverted, RequestTooLarge, RpcError, RpcTransportError
from bot.redact import mask_url

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
    set_aside_s: float = 30.0  # a failing or lagging endpoint is skipped this long
    max_head_lag: int = 3  # blocks an endpoint may trail the best head seen


def _classify(method: str, err: dict[str, Any]) -> RpcError:
    message = str(err.get("message", "unknown error"))
    code = err.get("code")
    data = err.get("data")
    if code == 3 or "revert" in message.lower():
        return ExecutionReverted(method, message, code=code, data=data)
    return RpcError(method, message, code=code, data=data)


class _Endpoint:
    """One URL: its HTTP session, rate limit, in-flight bound and standing."""

    def __init__(self, url: str, settings: RpcSettings, session: aiohttp.ClientSession | None):
        self.url = url
        self.settings = settings
        self.session = session
        self.owns_session = session is None
        self.sem = asyncio.Semaphore(settings.max_in_flight)
        self.throttler = (
            Throttler(rate_limit=settings.rate_limit_per_s, period=1.0)
            if settings.rate_limit_per_s > 0
            else None
        )
        self.aside_until = 0.0
        self.head: int | None = None

    def http(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.settings.max_in_flight),
            )
            self.owns_session = True
        return self.session

    async def close(self) -> None:
        if self.session is not None and self.owns_session:
            await self.session.close()
        self.session = None


class JsonRpcClient:
    """Async JSON-RPC over HTTP. Use as an async context manager or call ``close()``."""

    def __init__(
        self,
        url: str,
        settings: RpcSettings | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        fallbacks: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.settings = settings or RpcSettings()
        self._endpoints = [_Endpoint(u, self.settings, session) for u in (url, *fallbacks)]
        self._ids = itertools.count(1)
        self.best_head = 0  # the highest block number any endpoint or head source showed
        # Per-method request counts (a batch counts each call) and HTTP round trips.
        self.calls: Counter[str] = Counter()
        self.round_trips = 0
        self.set_asides: Counter[str] = Counter()  # by endpoint URL

    async def __aenter__(self) -> JsonRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for ep in self._endpoints:
            await ep.close()

    def note_head(self, number: int) -> None:
        """A head seen elsewhere (e.g. a subscription): endpoints behind it lag."""
        self.best_head = max(self.best_head, number)

    def _usable(self) -> list[_Endpoint]:
        now = time.monotonic()
        return [ep for ep in self._endpoints if ep.aside_until <= now]

    def _pick(self) -> _Endpoint:
        usable = self._usable()
        if usable:
            return usable[0]
        # Everything is set aside: the one back soonest is the best bet.
        return min(self._endpoints, key=lambda ep: ep.aside_until)

    def _set_aside(self, ep: _Endpoint, why: str) -> None:
        if len(self._endpoints) > 1:
            log.warning("rpc endpoint set aside", extra={"endpoint": mask_url(ep.url), "why": why})
        ep.aside_until = time.monotonic() + self.settings.set_aside_s
        self.set_asides[ep.url] += 1

    def _lags(self, ep: _Endpoint, method: str, params: Sequence[Any], result: Any) -> bool:
        """Whether ``result`` shows ``ep`` behind the chain (and records its head)."""
        n: int | None = None
        if method == "eth_blockNumber" and isinstance(result, str):
            n = to_int(result)
        elif method == "eth_getBlockByNumber" and params:
            if result is None:
                tag = params[0]
                return (
                    isinstance(tag, str) and tag.startswith("0x") and to_int(tag) <= self.best_head
                )
            if params[0] == "latest" and isinstance(result, dict) and "number" in result:
                n = to_int(result["number"])
        if n is None:
            return False
        ep.head = n
        self.best_head = max(self.best_head, n)
        return n < self.best_head - self.settings.max_head_lag

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request; raises ``RpcError`` (or a subclass) on a JSON-RPC error."""
        if len(self._endpoints) > 1 and _asks_head(method, params):
            return await self._head_call(method, params)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
            separators=(",", ":"),
        )
        self.calls[method] += 1
        answer = await self._post(
            body, method, lambda ep, a: self._lags(ep, method, params, _result(a))
        )
        return _unwrap(method, answer)

    async def _head_call(self, method: str, params: Sequence[Any]) -> Any:
        """Ask every usable endpoint; answer with the highest head, set laggards aside."""
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)},
            separators=(",", ":"),
        )
        self.calls[method] += 1
        usable = self._usable() or [self._pick()]
        answers = await asyncio.gather(
            *(self._post_to(ep, body, method) for ep in usable), return_exceptions=True
        )
        best: tuple[int, Any] | None = None
        for ep, answer in zip(usable, answers, strict=True):
            if isinstance(answer, BaseException):
                if not isinstance(answer, (RpcTransportError, aiohttp.ClientError, TimeoutError)):
                    raise answer
                self._set_aside(ep, str(answer))
                continue
            try:
                result = _unwrap(method, answer)
            except RpcTransportError as e:
                self._set_aside(ep, str(e))
                continue
            self._lags(ep, method, params, result)
            if ep.head is not None and (best is None or ep.head > best[0]):
                best = (ep.head, result)
        for ep in usable:
            if ep.head is not None and ep.head < self.best_head - self.settings.max_head_lag:
                self._set_aside(ep, f"head {ep.head} lags {self.best_head}")
        if best is None:
            # Nobody answered: the single-endpoint path retries with backoff.
            answer = await self._post(body, method)
            return _unwrap(method, answer)
        return best[1]

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
            answer = await self._post(
                "[" + ",".join(item for _, _, item in group) + "]",
                label,
                lambda ep, a: self._batch_lags(ep, group, a),
            )
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

    def _batch_lags(self, ep: _Endpoint, group: list[tuple[int, str, str]], answer: Any) -> bool:
        if not isinstance(answer, list):
            return False
        by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
        for rid, method, item in group:
            if method == "eth_getBlockByNumber":
                params = json.loads(item)["params"]
                if self._lags(ep, method, params, _result(by_id.get(rid))):
                    return True
        return False

    async def _post(
        self,
        body: str,
        label: str,
        lags: Callable[[_Endpoint, Any], bool] | None = None,
    ) -> Any:
        """POST ``body`` to the first usable endpoint; on a transport failure or a lagging
        answer, set it aside and move on; back off only once every endpoint has failed."""
        s = self.settings
        last: Exception | None = None
        for attempt in range(s.retries + 1):
            ep = self._pick()
            retry_after: float | None = None
            try:
                answer = await self._post_to(ep, body, label)
            except _RetryAfter as e:
                last, retry_after = e.error, e.seconds
            except (aiohttp.ClientError, TimeoutError, RpcTransportError) as e:
                last = e
            else:
                if lags is None or not lags(ep, answer) or len(self._endpoints) == 1:
                    return answer
                last = RpcTransportError(label, f"{mask_url(ep.url)} lags the chain")
            self._set_aside(ep, str(last))
            if attempt == s.retries:
                break
            if self._usable():
                continue  # another endpoint is ready now
            delay = (
                retry_after
                if retry_after is not None
                else min(s.backoff_max_s, s.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
            )
            log.warning(
                "rpc retry", extra={"method": label, "attempt": attempt + 1, "error": str(last)}
            )
            await asyncio.sleep(delay)
        if isinstance(last, RpcTransportError):
            raise last
        raise RpcTransportError(label, f"{type(last).__name__}: {last}")

    async def _post_to(self, ep: _Endpoint, body: str, label: str) -> Any:
        """One HTTP round trip to ``ep``: the parsed JSON answer."""
        s = self.settings
        async with ep.sem:
            if ep.throttler is not None:
                async with ep.throttler:
                    pass
            self.round_trips += 1
            async with ep.http().post(
                ep.url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                # Bytes, not resp.text(): a body that is not UTF-8 (an HTML error page,
                # garbage) must be a transport error, not a UnicodeDecodeError.
                text = (await resp.read()).decode("utf-8", errors="replace")
                if resp.status in (408, 429) or resp.status >= 500:
                    error = RpcTransportError(label, f"HTTP {resp.status}: {text[:120]}")
                    ra = resp.headers.get("Retry-After")
                    if ra and ra.replace(".", "", 1).isdigit():
                        raise _RetryAfter(error, min(float(ra), s.retry_after_max_s))
                    raise error
                if resp.status == 413:
                    raise RequestTooLarge(label, f"HTTP 413: {text[:120]}")
                if resp.status != 200:
                    # Other 4xx (auth, bad URL): the same request fails again.
                    raise RpcError(label, f"HTTP {resp.status}: {text[:120]}")
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise RpcTransportError(label, f"invalid JSON answer: {e}") from e


class _RetryAfter(Exception):
    """A 429/503 that said when to come back."""

    def __init__(self, error: RpcTransportError, seconds: float) -> None:
        self.error = error
        self.seconds = seconds


def _asks_head(method: str, params: Sequence[Any]) -> bool:
    return method == "eth_blockNumber" or (
        method == "eth_getBlockByNumber" and bool(params) and params[0] == "latest"
    )


def _result(answer: Any) -> Any:
    return answer.get("result") if isinstance(answer, dict) else None


def _unwrap(method: str, answer: Any) -> Any:
    if not isinstance(answer, dict):
        raise RpcTransportError(method, f"malformed answer: {str(answer)[:200]}")
    if "error" in answer:
        raise _classify(method, answer["error"])
    if "result" not in answer:
        raise RpcTransportError(method, f"answer without result: {str(answer)[:200]}")
    return answer["result"]


def to_int(value: str | int) -> int:
    """Parse a JSON-RPC quantity."""
    return value if isinstance(value, int) else int(value, 16)


def hex_qty(value: int) -> str:
    return hex(value)
