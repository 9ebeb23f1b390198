"""Batched contract reads: Multicall3 ``aggregate3`` chunks sent as one JSON-RPC batch.

N reads cost ceil(N / chunk) eth_calls, and those travel in ceil(chunks / max_batch)
HTTP round trips.
"""

from __future__ import annotations

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

    async def raw(
        self, calls: Sequence[tuple[str, bytes]], block: int | str = "latest"
    ) -> list[tuple[bool, bytes]]:
        """(success, return data) for each (target, calldata), allowing individual failures."""
        ref = hex(block) if isinstance(block, int) else block
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
