"""A queue of our transactions: a plan worth more takes the next nonce of a queue deeper
than a block (preemption); the queue is settled from a poll asked while the head is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from local_http import serve
from plans import one_step_plan

from bot.api import BlockRef
from bot.execution.executor import Executor, ExecutorSettings, GasContext, Simulation
from bot.execution.keys import Signer
from bot.ledger import Ledger, Outcome
from bot.rpc import JsonRpcClient

pytestmark = pytest.mark.asyncio
LIQUIDATOR = "0x000000000000000000000000000000000000cafE"
BLOCK_GAS = 1_000_000
GAS = GasContext(base_fee_wei=10**9, native_price_base=2_000 * 10**8)


def head(n: int) -> BlockRef:
    return BlockRef(n, f"0x{n:064x}", f"0x{n - 1:064x}", 1_700_000_000 + n, 10**9, BLOCK_GAS)


def sim(user: str, usd: int) -> Simulation:
    return Simulation(one_step_plan(user, usd), b"\x01" * 36, 10**18, 200_000, 300_000)


def user(i: int) -> str:
    return "0x" + f"{i:02x}" * 20


@dataclass
class Node:
    """A mempool keyed by nonce (a replacement must outbid), and the receipts given."""

    pool: dict[int, dict[str, Any]] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        self.requests += 1
        out = []
        for item in items:
            method, params = item["method"], item["params"]
            answer: dict[str, Any] = {"result": None}
            if method == "eth_getTransactionCount":
                answer = {"result": "0x0"}
            elif method == "eth_getBalance":
                answer = {"result": hex(10**24)}
            elif method == "eth_sendRawTransaction":
                tx = TypedTransaction.from_bytes(HexBytes(params[0])).as_dict()
                old = self.pool.get(tx["nonce"])
                if old is not None and tx["maxPriorityFeePerGas"] < old["tip"] * 1.1:
                    answer = {"error": {"code": -32000, "message": "replacement underpriced"}}
                else:
                    tx_hash = "0x" + keccak(HexBytes(params[0])).hex()
                    self.pool[tx["nonce"]] = {
                        "hash": tx_hash,
                        "tip": tx["maxPriorityFeePerGas"],
                        "from": Account.recover_transaction(params[0]),
                        "to": "0x" + bytes(HexBytes(tx["to"])).hex(),
                        "nonce": hex(tx["nonce"]),
                        "gas": hex(tx["gas"]),
                        "maxFeePerGas": hex(tx["maxFeePerGas"]),
                        "maxPriorityFeePerGas": hex(tx["maxPriorityFeePerGas"]),
                        "input": "0x" + bytes(tx["data"]).hex(),
                    }
                    answer = {"result": tx_hash}
            elif method == "eth_getTransactionReceipt":
                answer = {"result": self.receipts.get(params[0])}
            elif method == "eth_getTransactionByHash":
                known = [t for t in self.pool.values() if t["hash"] == params[0]]
                answer = {"result": known[0] if known else None}
            out.append({"jsonrpc": "2.0", "id": item["id"], **answer})
        return web.json_response(out if isinstance(body, list) else out[0])

    def mine(self, nonce: int, block: int) -> str:
        tx_hash = str(self.pool[nonce]["hash"])
        self.receipts[tx_hash] = {
            "status": "0x1",
            "gasUsed": hex(200_000),
            "effectiveGasPrice": hex(2 * 10**9),
            "blockNumber": hex(block),
            "blockHash": f"0x{block:064x}",
            "logs": [],
        }
        return tx_hash


@asynccontextmanager
async def queue_of(tmp_path: Path, n: int) -> AsyncIterator[tuple[Executor, Ledger, Node]]:
    """An executor with ``n`` liquidations worth $100 each in flight, sent at block 10."""
    node = Node()
    ledger = Ledger(tmp_path / "bot.db")
    try:
        async with serve(node.handle) as url, JsonRpcClient(url) as rpc:
            settings = ExecutorSettings(liquidator=LIQUIDATOR, bid_share_bps=5_000)
            ex = Executor(rpc, ledger, settings, Signer(Account.create()), 1)
            sent = await ex.submit([sim(user(i), 100) for i in range(n)], head(10), GAS)
            assert [a.outcome for a in sent] == [Outcome.SENT] * n
            yield ex, ledger, node
    finally:
        ledger.close()


async def test_the_front_is_what_the_next_block_admits_of_a_deeper_queue(tmp_path: Path) -> None:
    """Each flight uses 200,000 gas and is signed with a 300,000 limit; a block holds
    1,000,000. The node admits a transaction while the gas so far plus its limit fits."""
    async with queue_of(tmp_path, 4) as (ex, _, _):
        assert ex.front(head(11)) == []  # the whole queue fits the next block
    # Five use exactly one block's gas, but the fifth's limit does not fit after four.
    async with queue_of(tmp_path / "five", 5) as (ex, _, _):
        assert [f.nonce for f in ex.front(head(11))] == [0, 1, 2, 3]
    async with queue_of(tmp_path / "deep", 8) as (ex, _, _):
        assert [f.nonce for f in ex.front(head(11))] == [0, 1, 2, 3]
        assert ex.front(head(10)) == []  # sent at this head: not displaced at once


async def test_a_plan_worth_more_takes_the_next_nonce_and_the_displaced_user_waits(
    tmp_path: Path,
) -> None:
    async with queue_of(tmp_path, 8) as (ex, ledger, node):
        front = ex.front(head(11))
        old_tips = [node.pool[f.nonce]["tip"] for f in front]
        got = await ex.preempt(
            [sim(user(0xA0), 5_000), sim(user(0xA1), 3_000), sim(user(0xA2), 50)],
            front,
            head(11),
            GAS,
        )
        # The third earns less than the flight it would displace: not recorded at all.
        assert [a.outcome for a in got] == [Outcome.SENT, Outcome.SENT]
        assert ex.in_flight == 8
        assert [p.user for p in ex.pending_plans()][:3] == [user(0xA0), user(0xA1), user(2)]
        rows = {r.id: r for r in ledger.rows()}
        for a, nonce, tip in zip(got, (0, 1), old_tips, strict=False):
            assert node.pool[nonce]["hash"] == a.tx_hash  # the node holds ours now
            assert node.pool[nonce]["tip"] >= tip * 1.125
            assert rows[a.row].outcome == Outcome.SENT
        displaced = [r for r in rows.values() if r.outcome == Outcome.DISPLACED]
        assert sorted(r.user for r in displaced) == [user(0), user(1)]
        # Until the nonce is mined, either transaction may be: the displaced user waits.
        assert ex.busy(user(0), 11)
        node.mine(0, 12)
        settled = await ex.on_head(head(12), GAS)
        assert [(a.outcome, a.tx_hash) for a in settled] == [(Outcome.WON, got[0].tx_hash)]
        assert not ex.busy(user(0), 12)  # planned afresh, not cooled down
        assert {r.id: r.outcome for r in ledger.rows()}[displaced[0].id] == Outcome.DISPLACED


async def test_a_displaced_transaction_mined_after_all_settles_and_its_rival_never_left(
    tmp_path: Path,
) -> None:
    async with queue_of(tmp_path, 8) as (ex, ledger, node):
        front = ex.front(head(11))
        displaced_hash = node.pool[0]["hash"]
        (got,) = await ex.preempt([sim(user(0xA0), 5_000)], front, head(11), GAS)
        # The block being built took the old transaction: the node mined it anyway.
        node.pool[0]["hash"] = displaced_hash
        node.mine(0, 12)
        settled = await ex.on_head(head(12), GAS)
        assert [(a.outcome, a.tx_hash) for a in settled] == [(Outcome.WON, displaced_hash)]
        rows = {r.id: r for r in ledger.rows()}
        assert rows[got.row].outcome == Outcome.REVERTED
        assert rows[got.row].reason.startswith("not sent: nonce 0 was mined")
        assert not ex.busy(user(0xA0), 12)  # not cooled down: planned afresh
        assert ex.in_flight == 7


async def test_a_poll_asked_while_the_head_is_read_settles_it_without_asking_again(
    tmp_path: Path,
) -> None:
    async with queue_of(tmp_path, 3) as (ex, _, node):
        polled = await ex.poll()
        node.mine(0, 11)  # after the poll: seen on the next head, not this one
        asked = node.requests
        assert await ex.on_head(head(11), GAS, polled) == []
        assert node.requests == asked  # no round trip of its own
        assert ex.in_flight == 3
        # What is in flight changed since the poll: its answers are not used.
        await ex.submit([sim(user(0xB0), 100)], head(11), GAS)
        settled = await ex.on_head(head(12), GAS, polled)
        assert [a.outcome for a in settled] == [Outcome.WON]
        assert ex.in_flight == 3


async def test_a_crash_between_a_preemption_and_its_record_settles_the_displaced_row(
    tmp_path: Path,
) -> None:
    async with queue_of(tmp_path, 8) as (ex, ledger, node):
        (got,) = await ex.preempt([sim(user(0xA0), 5_000)], ex.front(head(11)), head(11), GAS)
        (displaced,) = [r for r in ledger.rows() if r.outcome == Outcome.DISPLACED]
        # The process died after the send, before the displaced row was updated.
        ledger.update(displaced.id, Outcome.SENT, reason="")
        assert ex.signer is not None
        restarted = Executor(ex.rpc, ledger, ex.settings, ex.signer, 1)
        assert await restarted.recover() == 8
        rows = {r.id: r for r in ledger.rows()}
        assert rows[displaced.id].outcome == Outcome.DISPLACED
        assert rows[displaced.id].reason == f"displaced by {got.tx_hash} (row {got.row})"
        assert rows[got.row].outcome == Outcome.SENT
        node.mine(0, 12)
        settled = await restarted.on_head(head(12), GAS)
        assert [(a.outcome, a.tx_hash) for a in settled] == [(Outcome.WON, got.tx_hash)]
