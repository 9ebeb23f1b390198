"""Batched contract reads: Multicall3 ``aggregate3`` chunks sent as one JSON-RPC batch.

N reads cost ceil(N / chunk) eth_calls, and those travel in ceil(chunks / max_batch)
HTTP round trips. Reads asked for in the same event-loop turn at the same block share
those eth_calls: the runner reads the pools' reserves while the adapter reads the market
at a head, and both go out as one call, one round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.abi import AbiFunction, load_abi
from bot.errors import ExecutionReverted
from bot.rpc import JsonRpcClient

DEFAULT_CHUNK = 200


@dataclass(frozen=True, slots=True)
class Read:
    target: str
    fn: AbiFunction
    args: tuple[Any, ...] = ()


class Multicall:
    def __init__(self, rpc: JsonRpcClient, address: str, *, chunk: int = DEFAULT_CHUNK) -> None:
        self.rpc = rpc
        self.address = address
        self.chunk = chunk
        self._aggregate3 = load_abi("Multicall3").fn("aggregate3")
        # Per block tag: the reads asked for this loop turn, each with its waiter.
        self._asked: dict[str, list[tuple[Sequence[tuple[str, bytes]], asyncio.Future[Any]]]] = {}
        self._calling: set[asyncio.Task[None]] = set()

    async def raw(
        self, calls: Sequence[tuple[str, bytes]], block: int | str = "latest"
    ) -> list[tuple[bool, bytes]]:
        """(success, return data) for each (target, calldata), allowing individual failures."""
        ref = hex(block) if isinstance(block, int) else block
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[tuple[bool, bytes]]] = loop.create_future()
        asked = self._asked.setdefault(ref, [])
        asked.append((calls, waiter))
        if len(asked) == 1:
            # Sent once every task ready this turn has had its chance to add reads.
            loop.call_soon(self._call, ref)
        return await waiter

    def _call(self, ref: str) -> None:
        task = asyncio.ensure_future(self._answer(ref, self._asked.pop(ref)))
        self._calling.add(task)
        task.add_done_callback(self._calling.discard)

    async def _answer(
        self, ref: str, asked: list[tuple[Sequence[tuple[str, bytes]], asyncio.Future[Any]]]
    ) -> None:
        try:
            out = await self._aggregate([c for calls, _ in asked for c in calls], ref)
        except asyncio.CancelledError:
            for _, waiter in asked:
                waiter.cancel()
            raise
        except Exception as e:
            for _, waiter in asked:
                if not waiter.done():
                    waiter.set_exception(e)
            return
        start = 0
        for calls, waiter in asked:
            if not waiter.done():  # its reader may have given up (a timeout)
                waiter.set_result(out[start : start + len(calls)])
            start += len(calls)

    async def _aggregate(
        self, calls: Sequence[tuple[str, bytes]], ref: str
    ) -> list[tuple[bool, bytes]]:
        requests = []
        for i in range(0, len(calls), self.chunk):
            part = [(t, True, data) for t, data in calls[i : i + self.chunk]]
            requests.append(
                ("eth_call", [{"to": self.address, "data": self._aggregate3.encode_hex(part)}, ref])
            )
        answers = await self.rpc.batch_strict(requests)
        out: list[tuple[bool, bytes]] = []
        for a in answers:
            out.extend((bool(ok), bytes(data)) for ok, data in self._aggregate3.decode_one(a))
        return out

    async def read(
        self, reads: Sequence[Read], block: int | str = "latest", *, optional: int = 0
    ) -> list[Any]:
        """Decoded results; a failed read raises ``ExecutionReverted`` naming it, except
        among the last ``optional`` reads, where a failure (a revert, undecodable data)
        gives None."""
        raw = await self.raw([(r.target, r.fn.encode(*r.args)) for r in reads], block)
        first_optional = len(reads) - optional
        out = []
        for i, (r, (ok, data)) in enumerate(zip(reads, raw, strict=True)):
            if i >= first_optional:
                try:
                    vals = r.fn.decode(data) if ok else None
                except Exception:
                    vals = None
                out.append(vals if vals is None or len(vals) != 1 else vals[0])
                continue
            if not ok:
                raise ExecutionReverted(
                    f"{r.fn.signature}@{r.target}", "reverted in multicall", data="0x" + data.hex()
                )
            vals = r.fn.decode(data)
            out.append(vals[0] if len(vals) == 1 else vals)
        return out
