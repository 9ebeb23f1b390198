"""Multicall: reads asked for in the same event-loop turn at the same block share calls."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from eth_abi import decode, encode

from bot.errors import RpcError
from bot.multicall import Multicall

pytestmark = pytest.mark.asyncio
MC = "0x" + "ca" * 20


class EchoNode:
    """Answers each aggregate3 eth_call with every call's data and block tag echoed back;
    records the requests of every batch."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[tuple[str, list[Any]]]] = []
        self.fail = fail

    async def batch_strict(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        self.batches.append(list(requests))
        await asyncio.sleep(0)
        if self.fail:
            raise RpcError("eth_call", "node down")
        out = []
        for method, (tx, tag) in requests:
            assert method == "eth_call" and tx["to"] == MC
            (calls,) = decode(["(address,bool,bytes)[]"], bytes.fromhex(tx["data"][10:]))
            out.append(
                "0x"
                + encode(
                    ["(bool,bytes)[]"], [[(True, d + tag.encode()) for _, _, d in calls]]
                ).hex()
            )
        return out


def _calls(*names: str) -> list[tuple[str, bytes]]:
    return [("0x" + "11" * 20, n.encode()) for n in names]


async def test_reads_of_one_turn_at_one_block_share_one_eth_call() -> None:
    node = EchoNode()
    mc = Multicall(node, MC)  # type: ignore[arg-type]
    market, pools = await asyncio.gather(
        mc.raw(_calls("reserve", "price"), 7), mc.raw(_calls("pool-a", "pool-b", "pool-c"), 7)
    )
    assert len(node.batches) == 1 and len(node.batches[0]) == 1
    assert market == [(True, b"reserve0x7"), (True, b"price0x7")]
    assert pools == [(True, b"pool-a0x7"), (True, b"pool-b0x7"), (True, b"pool-c0x7")]


async def test_reads_at_other_blocks_or_later_turns_are_not_merged() -> None:
    node = EchoNode()
    mc = Multicall(node, MC)  # type: ignore[arg-type]
    a, b = await asyncio.gather(mc.raw(_calls("x"), 7), mc.raw(_calls("y"), "latest"))
    assert (a, b) == ([(True, b"x0x7")], [(True, b"ylatest")])
    assert len(node.batches) == 2
    assert await mc.raw(_calls("z"), 7) == [(True, b"z0x7")]
    assert len(node.batches) == 3


async def test_merged_reads_are_still_cut_into_chunks() -> None:
    node = EchoNode()
    mc = Multicall(node, MC, chunk=2)  # type: ignore[arg-type]
    a, b = await asyncio.gather(mc.raw(_calls("a1", "a2"), 7), mc.raw(_calls("b1"), 7))
    assert [len(batch) for batch in node.batches] == [2]  # one batch of two eth_calls
    assert (a, b) == ([(True, b"a10x7"), (True, b"a20x7")], [(True, b"b10x7")])


async def test_a_failed_call_fails_every_read_it_carried() -> None:
    mc = Multicall(EchoNode(fail=True), MC)  # type: ignore[arg-type]
    results = await asyncio.gather(
        mc.raw(_calls("x"), 7), mc.raw(_calls("y"), 7), return_exceptions=True
    )
    assert all(isinstance(r, RpcError) for r in results)


async def test_a_reader_that_gives_up_leaves_the_others_their_answer() -> None:
    node = EchoNode()
    mc = Multicall(node, MC)  # type: ignore[arg-type]
    gone = asyncio.ensure_future(mc.raw(_calls("x"), 7))
    kept = asyncio.ensure_future(mc.raw(_calls("y"), 7))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == [(True, b"y0x7")]
    assert gone.cancelled()
