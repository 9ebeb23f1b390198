"""The live bot in bundle mode: its transactions reach the chain only through the relay.

A loopback server plays the relay: it checks each request's Flashbots signature and
forwards each bundled transaction, once and in bundle order, to the fork with
``eth_sendRawTransaction`` (what a builder including the bundle amounts to on anvil).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from bot.api import BlockRef
from bot.chain.anvil import AnvilProcess
from bot.devnet.crash import devnet_bot
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.errors import RpcError
from bot.execution.relay import SIGNATURE_HEADER
from bot.ledger import Outcome
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def head_of(rpc: JsonRpcClient) -> BlockRef:
    return BlockRef.from_json(await rpc.call("eth_getBlockByNumber", ["latest", False]))


@pytest_asyncio.fixture
async def crashed(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest
) -> tuple[Manifest, Scenario]:
    """The fork's manifest and scenario, after ETH fell 24%."""
    m = manifest.with_rpc_url(fork.url)
    sc = Scenario(fork_rpc, m)
    await sc.scale_price("WETH", 7_600)
    return m, sc


class ForwardingRelay:
    def __init__(self, node: JsonRpcClient) -> None:
        self.node = node
        self.requests: list[dict[str, Any]] = []
        self.signers: set[str] = set()
        self._forwarded: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        body = json.loads(text)
        self.requests.append(body)
        claimed, signature = request.headers[SIGNATURE_HEADER].split(":")
        digest = "0x" + keccak(text.encode()).hex()
        if Account.recover_message(encode_defunct(text=digest), signature=signature) != claimed:
            return answer(body, error="signature check failed")
        self.signers.add(claimed)
        for tx in body["params"][0]["txs"]:
            if tx in self._forwarded:  # the same bundle for the next target block
                continue
            self._forwarded.add(tx)
            try:
                await self.node.call("eth_sendRawTransaction", [tx])
            except RpcError as e:
                return answer(body, error=str(e))
        return answer(body, result={"bundleHash": "0x" + "22" * 32})


def answer(request: dict[str, Any], *, result: Any = None, error: str = "") -> web.Response:
    if error:
        return web.json_response(
            {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32000, "message": error}}
        )
    return web.json_response({"jsonrpc": "2.0", "id": request["id"], "result": result})


@asynccontextmanager
async def serving(handler: ForwardingRelay) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", handler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_bundled_liquidations_are_mined_and_settle_as_won(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    relay = ForwardingRelay(fork_rpc)
    async with serving(relay) as url:
        overrides = {"executor": {"relay_url": url, "relay_method": "eth_sendBundle"}}
        async with devnet_bot(fork.url, m, tmp_path / "bot.db", overrides=overrides) as bot:
            signer = bot.executor.signer
            assert signer is not None and bot.executor.relay is not None
            report = await bot.runner.handle(await head_of(fork_rpc))
            sent = [a for a in report.attempts if a.outcome == Outcome.SENT]
            assert len(sent) >= 2, report.attempts
            # Nothing went to the node's mempool: every transaction left through the relay.
            assert bot.index.rpc.calls["eth_sendRawTransaction"] == 0
            bundles = [r for r in relay.requests if r["method"] == "eth_sendBundle"]
            first = bundles[0]["params"][0]
            assert int(first["blockNumber"], 16) == report.head.number + 1
            # One bundle: every transaction of the head, in the order they were signed.
            assert ["0x" + keccak(hexstr=t).hex() for t in first["txs"]] == [
                a.tx_hash for a in sent
            ]
            # No relay_auth_key_env: the trading key signs the requests.
            assert relay.signers == {signer.address}
            for _ in range(3):
                await sc.mine(1)
                await bot.runner.handle(await head_of(fork_rpc))
            rows = {r.id: r for r in bot.ledger.rows()}
            for a in sent:
                row = rows[a.row]
                assert row.outcome == "won", (row.outcome, row.reason)
                # Mined a block (and seconds of interest) apart from the priced state: close,
                # not exact to the wei as when the clock is scripted.
                assert row.realized_profit > 0
                assert (
                    abs(row.realized_profit - row.predicted_profit) * 10_000 <= row.predicted_profit
                )
            # Later heads' transactions (other users) went the same way.
            assert bot.index.rpc.calls["eth_sendRawTransaction"] == 0
