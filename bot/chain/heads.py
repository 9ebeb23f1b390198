"""New chain heads: a websocket ``newHeads`` subscription, or polling.

``LatestHeads`` decouples arrival from handling: a reader task keeps only the newest head,
so a slow handler never piles up work; heads that arrive while it runs are skipped (and
counted) and the handler sees the newest one next.

A source hands out a head when it is higher than the last one, or at the same height with
another hash: a reorg that replaces the newest blocks without growing the chain must reach
the indexer now, not when the next block happens to be mined. A lower head is ignored (a
lagging replica behind a load balancer says that all the time); a reorg to a shorter chain
is found by hash linkage once the chain grows past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from bot.api import BlockRef, HeadSource
from bot.errors import RpcTransportError
from bot.rpc import JsonRpcClient

log = logging.getLogger(__name__)


class _NewHeads:
    """Which heads a source hands out (see the module's docstring)."""

    def __init__(self) -> None:
        self.last: BlockRef | None = None

    def is_new(self, head: BlockRef) -> bool:
        last = self.last
        if last is not None and (
            head.number < last.number or (head.number == last.number and head.hash == last.hash)
        ):
            return False
        self.last = head
        return True


class PollingHeads(HeadSource):
    """Polls ``eth_getBlockByNumber("latest")`` every ``interval_s``."""

    def __init__(self, rpc: JsonRpcClient, interval_s: float = 2.0) -> None:
        self.rpc = rpc
        self.interval_s = interval_s
        self._last = _NewHeads()

    async def next_head(self) -> BlockRef:
        while True:
            j = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            head = BlockRef.from_json(j)
            if self._last.is_new(head):
                return head
            # Polling is the fallback when no subscription is available.
            await asyncio.sleep(self.interval_s)


class WebsocketHeads(HeadSource):
    """``eth_subscribe("newHeads")`` over a websocket; reconnects when the socket drops."""

    def __init__(self, url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._last = _NewHeads()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        ws = await self._session.ws_connect(self.url, heartbeat=30)
        await ws.send_str(
            json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            )
        )
        answer = json.loads((await ws.receive()).data)
        if "error" in answer:
            raise RpcTransportError("eth_subscribe", str(answer["error"]))
        return ws

    async def next_head(self) -> BlockRef:
        while True:
            if self._ws is None or self._ws.closed:
                self._ws = await self._connect()
            msg = await self._ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                log.warning("head subscription dropped; reconnecting", extra={"url": self.url})
                self._ws = None
                continue
            body = json.loads(msg.data)
            result = body.get("params", {}).get("result")
            if result and self._last.is_new(head := BlockRef.from_json(result)):
                return head

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()


def head_source(url: str, rpc: JsonRpcClient, poll_interval_s: float) -> HeadSource:
    """A subscription when the URL is a websocket, polling otherwise."""
    if url.startswith(("ws://", "wss://")):
        return WebsocketHeads(url)
    return PollingHeads(rpc, poll_interval_s)


class LatestHeads:
    """Keeps only the newest head from a source; ``skipped`` counts heads never handled."""

    def __init__(self, source: HeadSource) -> None:
        self.source = source
        self._latest: BlockRef | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0

    async def __aenter__(self) -> LatestHeads:
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.source.close()

    async def _pump(self) -> None:
        while True:
            head = await self.source.next_head()
            if self._latest is not None:
                self.skipped += 1
            self._latest = head
            self._ready.set()

    def waiting(self) -> bool:
        """A head has arrived that ``next`` has not handed out yet."""
        return self._latest is not None

    async def next(self) -> BlockRef:
        """The newest head not yet handed out (waits for one; re-raises a source failure)."""
        if not self._ready.is_set() and self._task is not None:
            waiter = asyncio.create_task(self._ready.wait())
            done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                self._task.result()  # the source stopped: surface why
        else:
            await self._ready.wait()
        self._ready.clear()
        head, self._latest = self._latest, None
        assert head is not None
        return head


class ScriptedHeads(HeadSource):
    """Heads published by a driver (a demo or a test that mines blocks itself): the bot
    sees a block exactly when the driver says it is ready, not when a poll notices it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[BlockRef] = asyncio.Queue()

    def publish(self, head: BlockRef) -> None:
        self._queue.put_nowait(head)

    async def next_head(self) -> BlockRef:
        return await self._queue.get()
