"""A JSON-RPC proxy that forwards to a real node and injects the faults real nodes have.

    async with FaultProxy(upstream_url) as proxy:
        rule = proxy.inject(Fault.HTTP_5XX, times=3, methods={"eth_getLogs"})
        rpc = JsonRpcClient(proxy.url, ...)
        ...
        assert rule.hits == 3 and proxy.calls["eth_getLogs"] > 3

Two kinds of fault:

* **transport** faults (``DELAY`` … ``GARBAGE``) act on a whole HTTP request: a request
  matches when any of its calls has a method in ``methods`` (``None``: every request), and
  one such fault is applied per request, the oldest matching rule first.
* **lying-node** faults (``FROZEN_HEAD``, ``WRONG_CHAIN_ID``, ``LOGS_*``) rewrite single
  calls (also inside batches) and answer with well-formed, wrong data; their methods are
  fixed by the fault.

``times`` counts the requests (transport) or calls (lying node) a rule has acted on;
``None`` keeps it active until ``clear()``. The proxy runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

JsonDict = dict[str, Any]


class Fault(enum.Enum):
    DELAY = "delay"  # the right answer, ``delay_s`` late
    TIMEOUT = "timeout"  # no answer for ``delay_s`` (default: until the proxy closes)
    HTTP_5XX = "http_5xx"  # HTTP ``status`` (500..599) with a short text body
    HTTP_429 = "http_429"  # HTTP 429 with ``Retry-After: retry_after_s``
    DROP = "drop"  # the connection is closed without any response
    PARTIAL_BATCH = "partial_batch"  # the first ``keep`` calls go upstream, then no answer
    # (as TIMEOUT): a batch the node took only part of before the link or the client died
    TRUNCATED = "truncated"  # HTTP 200 with the first half of the upstream's answer
    GARBAGE = "garbage"  # HTTP 200 with ``body`` (default: an HTML error page)
    FROZEN_HEAD = "frozen_head"  # "latest" stays at ``head`` (default: upstream head now);
    # blocks above it are unknown (null), as on a node that stopped syncing
    WRONG_CHAIN_ID = "wrong_chain_id"  # eth_chainId is ``chain_id`` (default: upstream + 1)
    LOGS_OTHER_RANGE = "logs_other_range"  # eth_getLogs of the range moved by ``shift``
    LOGS_WRONG_HASH = "logs_wrong_hash"  # eth_getLogs with every blockHash altered
    LOGS_EMPTY = "logs_empty"  # eth_getLogs answers [] (a replica whose log index lags)


TRANSPORT = frozenset(
    {
        Fault.DELAY,
        Fault.TIMEOUT,
        Fault.HTTP_5XX,
        Fault.HTTP_429,
        Fault.DROP,
        Fault.PARTIAL_BATCH,
        Fault.TRUNCATED,
        Fault.GARBAGE,
    }
)
_LYING_METHODS: dict[Fault, frozenset[str]] = {
    Fault.FROZEN_HEAD: frozenset({"eth_blockNumber", "eth_getBlockByNumber"}),
    Fault.WRONG_CHAIN_ID: frozenset({"eth_chainId"}),
    Fault.LOGS_OTHER_RANGE: frozenset({"eth_getLogs"}),
    Fault.LOGS_WRONG_HASH: frozenset({"eth_getLogs"}),
    Fault.LOGS_EMPTY: frozenset({"eth_getLogs"}),
}
DEFAULT_GARBAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(slots=True)
class Rule:
    """One scheduled fault; ``hits`` counts how often it acted, and ``forwarded`` how
    many calls a partial batch has delivered upstream (answered by the upstream)."""

    fault: Fault
    times: int | None
    methods: frozenset[str] | None
    delay_s: float | None = None
    status: int = 503
    retry_after_s: float = 1.0
    body: bytes = DEFAULT_GARBAGE
    chain_id: int | None = None
    shift: int = -1
    head: int | None = None
    keep: int = 1
    hits: int = 0
    forwarded: int = 0

    @property
    def active(self) -> bool:
        return self.times is None or self.hits < self.times

    def matches(self, method: str) -> bool:
        return self.active and (self.methods is None or method in self.methods)


@dataclass(slots=True)
class _Plan:
    """What the proxy does with one request's calls."""

    local: list[JsonDict] = field(default_factory=list)  # answers the proxy makes up
    forward: list[JsonDict] = field(default_factory=list)  # calls sent upstream
    rewrites: dict[Any, Callable[[Any], Any]] = field(default_factory=dict)  # id -> result fn
    edited: bool = False  # a forwarded call's params were changed

    @property
    def verbatim(self) -> bool:
        return bool(self.forward) and not (self.local or self.rewrites or self.edited)


class FaultProxy:
    """Forward JSON-RPC over HTTP to ``upstream_url`` on 127.0.0.1:<free port>."""

    def __init__(self, upstream_url: str, *, upstream_timeout_s: float = 120.0) -> None:
        self.upstream_url = upstream_url
        self.calls: Counter[str] = Counter()  # per method, batch items counted one by one
        self.requests = 0  # HTTP requests received
        self.rules: list[Rule] = []
        self._timeout = upstream_timeout_s
        self._url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the proxy is not running (use `async with FaultProxy(...)`)")
        return self._url

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        # No body limit of its own (aiohttp's default is 1 MiB): the upstream decides.
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/", self._handle)
        # Hung TIMEOUT handlers wake up on close (below); the short shutdown timeout only
        # bounds a handler stuck on the upstream.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}/"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scheduling -------------------------------------------------------------------
    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        methods: Collection[str] | None = None,
        delay_s: float | None = None,
        status: int = 503,
        retry_after_s: float = 1.0,
        body: bytes = DEFAULT_GARBAGE,
        chain_id: int | None = None,
        shift: int = -1,
        head: int | None = None,
        keep: int = 1,
    ) -> Rule:
        """Schedule ``fault`` for the next ``times`` matching requests (None: until
        ``clear``). Returns the rule, whose ``hits`` say how often it acted."""
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None: until cleared)")
        if fault is Fault.HTTP_5XX and not 500 <= status <= 599:
            raise ValueError(f"HTTP_5XX needs a 5xx status, not {status}")
        if fault is Fault.DELAY and delay_s is None:
            raise ValueError("DELAY needs delay_s")
        if fault in TRANSPORT:
            allowed = None if methods is None else frozenset(methods)
        elif methods is not None:
            raise ValueError(f"{fault.name} acts on {sorted(_LYING_METHODS[fault])} only")
        else:
            allowed = _LYING_METHODS[fault]
        rule = Rule(
            fault, times, allowed, delay_s, status, retry_after_s, body, chain_id, shift, head, keep
        )
        self.rules.append(rule)
        return rule

    async def freeze_head(self, *, times: int | None = None) -> int:
        """Freeze "latest" at the upstream's current head; returns that block number."""
        head = int(await self._upstream_call("eth_blockNumber", []), 16)
        self.inject(Fault.FROZEN_HEAD, times=times, head=head)
        return head

    def clear(self) -> None:
        """Remove every rule: the proxy is transparent again (counters are kept)."""
        self.rules.clear()

    # -- serving ----------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        raw = await request.read()
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = None
        batch = isinstance(parsed, list)
        calls = [c for c in (parsed if batch else [parsed]) if isinstance(c, dict)]
        if not calls:  # not JSON-RPC: let the upstream say what it thinks of it
            return await self._forward_raw(raw)
        methods = [str(c.get("method")) for c in calls]
        self.calls.update(methods)

        rule = next(
            (r for r in self.rules if r.fault in TRANSPORT and any(map(r.matches, methods))),
            None,
        )
        if rule is not None:
            rule.hits += 1
            if rule.fault is Fault.PARTIAL_BATCH:
                kept = calls[: rule.keep] if batch else calls[:1]
                await self._post(json.dumps(kept if batch else kept[0]).encode())
                rule.forwarded += len(kept)
                return await self._hang(rule, request)
            early = await self._before_upstream(rule, request)
            if early is not None:
                return early

        plan = await self._plan(calls)
        if plan.verbatim:
            # Nothing rewritten: the exact bytes go upstream (batches arrive intact).
            status, text = await self._post(raw)
        else:
            status, text = await self._answer(plan, batch)
        if rule is not None and rule.fault is Fault.TRUNCATED:
            text = text[: max(1, len(text) // 2)]
        return web.Response(status=status, body=text, content_type="application/json")

    async def _before_upstream(self, rule: Rule, request: web.Request) -> web.StreamResponse | None:
        """Apply a transport fault; a response here means the upstream is not asked."""
        match rule.fault:
            case Fault.DELAY:
                await asyncio.sleep(rule.delay_s or 0.0)
            case Fault.TIMEOUT:
                return await self._hang(rule, request)
            case Fault.HTTP_5XX:
                return web.Response(status=rule.status, text=f"injected HTTP {rule.status}")
            case Fault.HTTP_429:
                return web.Response(
                    status=429,
                    text="Too Many Requests",
                    headers={"Retry-After": f"{rule.retry_after_s:g}"},
                )
            case Fault.DROP:
                return self._drop(request)
            case Fault.GARBAGE:
                return web.Response(status=200, body=rule.body, content_type="text/html")
        return None

    async def _hang(self, rule: Rule, request: web.Request) -> web.StreamResponse:
        # Wake up when the proxy closes, so that shutting down does not wait for hung
        # handlers; then drop, as a load balancer giving up would.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), rule.delay_s)
        return self._drop(request)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Closing the transport makes the client see a disconnect with no status line;
        # the response returned afterwards is never written.
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    async def _plan(self, calls: list[JsonDict]) -> _Plan:
        plan = _Plan()
        for call in calls:
            method, params, rid = call.get("method"), call.get("params") or [], call.get("id")
            for rule in self.rules:
                if rule.fault in TRANSPORT or not rule.matches(str(method)):
                    continue
                match rule.fault:
                    case Fault.FROZEN_HEAD:
                        if rule.head is None:  # frozen at the first call it sees
                            rule.head = int(await self._upstream_call("eth_blockNumber", []), 16)
                        if method == "eth_blockNumber":
                            rule.hits += 1
                            plan.local.append(
                                {"jsonrpc": "2.0", "id": rid, "result": hex(rule.head)}
                            )
                            break
                        if params and params[0] == "latest":
                            rule.hits += 1
                            call = {**call, "params": [hex(rule.head), *params[1:]]}
                            plan.edited = True
                        elif _above(params, rule.head):  # a stalled node lacks newer blocks
                            rule.hits += 1
                            plan.local.append({"jsonrpc": "2.0", "id": rid, "result": None})
                            break
                    case Fault.WRONG_CHAIN_ID:
                        rule.hits += 1
                        plan.rewrites[rid] = _other_chain(rule.chain_id)
                    case Fault.LOGS_OTHER_RANGE:
                        rule.hits += 1
                        call = {**call, "params": [_shift_range(params[0], rule.shift)]}
                        plan.edited = True
                    case Fault.LOGS_WRONG_HASH:
                        rule.hits += 1
                        plan.rewrites[rid] = _alter_hashes
                    case Fault.LOGS_EMPTY:
                        rule.hits += 1
                        plan.local.append({"jsonrpc": "2.0", "id": rid, "result": []})
                        break
            else:
                plan.forward.append(call)
        return plan

    async def _answer(self, plan: _Plan, batch: bool) -> tuple[int, bytes]:
        """Forward what must be forwarded, rewrite, and merge with the local answers."""
        answers: list[Any] = list(plan.local)
        status = 200
        if plan.forward:
            body = json.dumps(plan.forward if batch else plan.forward[0]).encode()
            status, text = await self._post(body)
            try:
                got = json.loads(text)
            except ValueError:
                return status, text  # the upstream's own garbage passes through
            answers.extend(got if isinstance(got, list) else [got])
        for a in answers:
            fn = plan.rewrites.get(a.get("id")) if isinstance(a, dict) else None
            if fn is not None and a.get("result") is not None:
                a["result"] = fn(a["result"])
        return status, json.dumps(answers if batch else answers[0]).encode()

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        try:
            async with self._session.post(
                self.upstream_url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            # A dead upstream looks like a gateway error, as behind a real load balancer.
            return 502, f"upstream unreachable: {type(e).__name__}".encode()

    async def _forward_raw(self, raw: bytes) -> web.Response:
        status, text = await self._post(raw)
        return web.Response(status=status, body=text, content_type="application/json")

    async def _upstream_call(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        status, text = await self._post(body.encode())
        if status != 200:
            raise RuntimeError(f"upstream {method}: HTTP {status}")
        return json.loads(text)["result"]


def _other_chain(chain_id: int | None) -> Callable[[Any], Any]:
    """``chain_id``, or by default the upstream's id plus one (never the right one)."""
    return lambda real: hex(chain_id if chain_id is not None else int(real, 16) + 1)


def _shift_range(flt: JsonDict, shift: int) -> JsonDict:
    """The same filter over a range moved by ``shift`` blocks (tags are left alone)."""
    out = dict(flt)
    for key in ("fromBlock", "toBlock"):
        v = flt.get(key)
        if isinstance(v, str) and v.startswith("0x"):
            out[key] = hex(max(0, int(v, 16) + shift))
    return out


def _alter_hashes(logs: list[JsonDict]) -> list[JsonDict]:
    """The logs with a blockHash no block has (the last byte flipped)."""
    out = []
    for lg in logs:
        h = lg["blockHash"]
        out.append({**lg, "blockHash": f"{h[:-2]}{int(h[-2:], 16) ^ 0xFF:02x}"})
    return out


def _above(params: list[Any], head: int) -> bool:
    tag = params[0] if params else None
    return isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > head
