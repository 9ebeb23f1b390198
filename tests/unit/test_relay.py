"""The private relay: what it is sent (method, params, bundle order, target blocks), the
Flashbots signature header, and failures that are reported, never raised, through the
executor's usual paths. A loopback server plays the relay (and, where needed, the node)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from local_http import serve
from plans import one_step_plan as plan

from bot.api import BlockRef
from bot.config import Settings
from bot.errors import ConfigError, RpcError, RpcTransportError
from bot.execution.executor import Executor, ExecutorSettings, GasContext, Simulation
from bot.execution.keys import Signer
from bot.execution.relay import (
    SIGNATURE_HEADER,
    Relay,
    RelayMethod,
    RelaySettings,
    load_auth_key,
)
from bot.ledger import Ledger, Outcome
from bot.rpc import JsonRpcClient
from bot.wiring import relay_client

LIQUIDATOR = "0x000000000000000000000000000000000000cafE"
HEAD = BlockRef(1_000, "0x" + "aa" * 32, "0x" + "bb" * 32, 1_700_000_000, 10**9)
GAS = GasContext(base_fee_wei=10**9, native_price_base=0)  # gas costs nothing: all pay


@dataclass
class FakeRelay:
    """Records every request; answers with ``answer(body)`` (default: a hash)."""

    requests: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)
    status: int = 200
    error: dict[str, Any] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        body = json.loads(text)
        self.requests.append((body, text, request.headers.get(SIGNATURE_HEADER, "")))
        if self.status != 200:
            return web.Response(status=self.status, text="relay overloaded")
        if self.error is not None:
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": self.error})
        result: Any = "0x" + "11" * 32
        if body["method"] == "eth_sendBundle":
            result = {"bundleHash": "0x" + "22" * 32}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    def params(self) -> list[dict[str, Any]]:
        return [body["params"][0] for body, _, _ in self.requests]


@asynccontextmanager
async def relay_at(
    fake: FakeRelay, auth: LocalAccount, method: RelayMethod, blocks: int = 1
) -> AsyncIterator[Relay]:
    async with serve(fake.handle) as url, Relay(RelaySettings(url, method, blocks), auth) as r:
        yield r


def error_string(text: str) -> str:
    """Revert data of ``Error(string)``, as Aave reverts (``'45'``: health factor not below
    the threshold: someone liquidated first)."""
    return "0x08c379a0" + abi_encode(["string"], [text]).hex()


def nonce_of(tx: str) -> int:
    return int(TypedTransaction.from_bytes(HexBytes(tx)).as_dict()["nonce"])


def signed(account: LocalAccount, nonce: int) -> bytes:
    tx = {
        "type": 2,
        "chainId": 1,
        "nonce": nonce,
        "to": account.address,
        "value": 0,
        "gas": 21_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }
    return bytes(account.sign_transaction(tx).raw_transaction)


def signer_of(header: str, body: str) -> str:
    """The address the Flashbots header's signature recovers to, checked against its claim."""
    claimed, signature = header.split(":")
    digest = "0x" + keccak(body.encode()).hex()
    recovered = Account.recover_message(encode_defunct(text=digest), signature=signature)
    assert recovered == claimed
    return str(recovered)


@pytest.mark.asyncio
async def test_private_transactions_one_request_each_signed_by_the_auth_key() -> None:
    fake, trader, auth = FakeRelay(), Account.create(), Account.create()
    raws = [signed(trader, n) for n in (4, 5)]
    async with relay_at(fake, auth, "eth_sendPrivateTransaction", blocks=3) as relay:
        results = await relay.send(raws, HEAD.number)
    assert results == ["0x" + "11" * 32] * 2
    # One HTTP request per transaction (Flashbots Protect takes no JSON-RPC batches).
    assert [body["method"] for body, _, _ in fake.requests] == ["eth_sendPrivateTransaction"] * 2
    assert sorted(p["tx"] for p in fake.params()) == sorted("0x" + r.hex() for r in raws)
    for p in fake.params():
        assert p == {
            "tx": p["tx"],
            "maxBlockNumber": hex(HEAD.number + 3),
            "preferences": {"fast": True},
        }
    for body, text, header in fake.requests:
        assert body["jsonrpc"] == "2.0" and len(body["params"]) == 1
        assert signer_of(header, text) == auth.address


@pytest.mark.asyncio
async def test_bundle_holds_every_transaction_in_nonce_order_for_the_next_block() -> None:
    fake, trader, auth = FakeRelay(), Account.create(), Account.create()
    raws = [signed(trader, n) for n in (7, 8, 9)]
    async with relay_at(fake, auth, "eth_sendBundle") as relay:
        results = await relay.send(raws, HEAD.number)
    assert len(fake.requests) == 1
    body, text, header = fake.requests[0]
    assert body["method"] == "eth_sendBundle"
    (bundle,) = body["params"]
    assert bundle == {"txs": ["0x" + r.hex() for r in raws], "blockNumber": hex(HEAD.number + 1)}
    assert [nonce_of(tx) for tx in bundle["txs"]] == [7, 8, 9]
    assert signer_of(header, text) == auth.address
    assert results == [{"bundleHash": "0x" + "22" * 32}] * 3


@pytest.mark.asyncio
async def test_bundle_is_resent_for_each_block_of_the_window() -> None:
    fake, trader, auth = FakeRelay(), Account.create(), Account.create()
    async with relay_at(fake, auth, "eth_sendBundle", blocks=3) as relay:
        await relay.send([signed(trader, 0)], HEAD.number)
    assert sorted(int(p["blockNumber"], 16) for p in fake.params()) == [1_001, 1_002, 1_003]
    assert len({json.dumps(p["txs"]) for p in fake.params()}) == 1


@pytest.mark.asyncio
async def test_failures_are_returned_not_raised_and_never_show_a_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    trader, auth = Account.create(), Account.create()
    rejected = FakeRelay(error={"code": -32000, "message": "bundle nonce too low"})
    async with relay_at(rejected, auth, "eth_sendBundle") as relay:
        results = await relay.send([signed(trader, 0), signed(trader, 1)], HEAD.number)
    assert all(type(r) is RpcError and "nonce too low" in str(r) for r in results), results
    overloaded = FakeRelay(status=503)
    async with relay_at(overloaded, auth, "eth_sendPrivateTransaction") as relay:
        (result,) = await relay.send([signed(trader, 0)], HEAD.number)
    assert isinstance(result, RpcTransportError)
    forbidden = FakeRelay(status=403)
    async with relay_at(forbidden, auth, "eth_sendPrivateTransaction") as relay:
        (result,) = await relay.send([signed(trader, 0)], HEAD.number)
    assert type(result) is RpcError
    # Nobody listening (a closed port), with a credential in the URL: masked in the log.
    secret_url = "http://127.0.0.1:9/v1/abcdefghijklmnopqrstuvwxyz0123?key=hunter2"
    async with Relay(RelaySettings(secret_url, "eth_sendBundle"), auth) as relay:
        (result,) = await relay.send([signed(trader, 0)], HEAD.number)
    assert isinstance(result, RpcTransportError)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "relay send failed" in logged
    for secret in (auth.key.hex(), trader.key.hex(), "hunter2", "abcdefghijklmnopqrstuvwxyz0123"):
        assert secret.removeprefix("0x") not in logged
    assert "127.0.0.1:9" in logged  # the host is shown, masked


def test_auth_key_from_its_variable_and_errors_without_its_value() -> None:
    key = Account.create().key.hex()
    assert load_auth_key("RELAY_KEY", {"RELAY_KEY": key}).key.hex() == key.removeprefix("0x")
    with pytest.raises(ConfigError, match=r"no key in \$RELAY_KEY"):
        load_auth_key("RELAY_KEY", {})
    with pytest.raises(ConfigError) as bad:
        load_auth_key("RELAY_KEY", {"RELAY_KEY": "0x" + "zz" * 32})
    assert "zz" not in str(bad.value)
    with pytest.raises(ConfigError) as pasted:  # the key itself where its name belongs
        load_auth_key(key, {})
    assert key.removeprefix("0x") not in str(pasted.value)


# --- the executor sending through the relay ---


USERS = ["0x" + f"{i:02x}" * 20 for i in (0xA1, 0xA2, 0xA3)]


@dataclass
class FakeNode:
    """The node: a pending nonce, a balance, no receipts; ``call`` answers ``eth_call``."""

    nonce: int = 7
    balance: int = 10**21
    seen: list[str] = field(default_factory=list)
    requests: list[list[str]] = field(default_factory=list)  # methods, per HTTP request
    call: Callable[[], dict[str, Any]] = lambda: {"result": "0x"}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        self.requests.append([item["method"] for item in items])
        out = []
        for item in items:
            self.seen.append(item["method"])
            answer: dict[str, Any] = {"result": None}
            if item["method"] == "eth_getTransactionCount":
                answer = {"result": hex(self.nonce)}
            elif item["method"] == "eth_getBalance":
                answer = {"result": hex(self.balance)}
            elif item["method"] == "eth_call":
                answer = self.call()
            elif item["method"] == "eth_simulateV1":
                calls = item["params"][0]["blockStateCalls"][0]["calls"]
                profit = "0x" + (10**18).to_bytes(32, "big").hex()
                ok = {"status": "0x1", "returnData": profit, "gasUsed": hex(200_000)}
                answer = {"result": [{"calls": [ok] * len(calls)}]}
            out.append({"jsonrpc": "2.0", "id": item["id"], **answer})
        return web.json_response(out if isinstance(body, list) else out[0])


@asynccontextmanager
async def executor_with(
    tmp_path: Path, fake: FakeRelay, method: RelayMethod, node: FakeNode
) -> AsyncIterator[tuple[Executor, Ledger, LocalAccount]]:
    trader, auth = Account.create(), Account.create()
    ledger = Ledger(tmp_path / "bot.db")
    settings = ExecutorSettings(liquidator=LIQUIDATOR, replace_after_blocks=2)
    try:
        async with (
            serve(node.handle) as node_url,
            JsonRpcClient(node_url) as rpc,
            relay_at(fake, auth, method, blocks=settings.replace_after_blocks) as relay,
        ):
            ex = Executor(rpc, ledger, settings, Signer(trader), 1, relay=relay)
            yield ex, ledger, trader
    finally:
        ledger.close()


def sims() -> list[Simulation]:
    return [Simulation(plan(u), b"\x01" * 36, 10**18, 200_000, 300_000) for u in USERS]


@pytest.mark.asyncio
async def test_executor_sends_a_heads_transactions_as_one_bundle(tmp_path: Path) -> None:
    fake, node = FakeRelay(), FakeNode()
    async with executor_with(tmp_path, fake, "eth_sendBundle", node) as (ex, ledger, _):
        attempts = await ex.submit(sims(), HEAD, GAS)
        assert [a.outcome for a in attempts] == [Outcome.SENT] * 3
        assert "eth_sendRawTransaction" not in node.seen  # nothing went to the mempool
        # One bundle per target block (replace_after_blocks of them), all three transactions.
        assert sorted(int(p["blockNumber"], 16) for p in fake.params()) == [1_001, 1_002]
        txs = fake.params()[0]["txs"]
        assert [nonce_of(tx) for tx in txs] == [7, 8, 9]
        # The ledger holds each transaction's hash, as before a public send.
        hashes = {r.id: r.tx_hash for r in ledger.rows()}
        assert [hashes[a.row] for a in attempts] == ["0x" + keccak(HexBytes(t)).hex() for t in txs]
        assert ex.in_flight == 3


@pytest.mark.asyncio
async def test_a_rejected_bundle_is_reported_and_the_nonces_are_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, node = FakeRelay(error={"code": -32602, "message": "invalid bundle"}), FakeNode()
    async with executor_with(tmp_path, fake, "eth_sendBundle", node) as (ex, ledger, trader):
        with caplog.at_level(logging.WARNING):
            attempts = await ex.submit(sims(), HEAD, GAS)  # does not raise
        (warning,) = [r for r in caplog.records if r.getMessage() == "sends rejected"]
        assert "invalid bundle" in warning.err  # type: ignore[attr-defined]  # why, for the operator
        assert [a.outcome for a in attempts] == [Outcome.REVERTED] * 3
        assert all("invalid bundle" in a.reason for a in attempts)
        rows = ledger.rows()
        assert {r.outcome for r in rows} == {"reverted"}
        assert all(r.tx_hash and r.reason.startswith("rejected:") for r in rows)
        assert ex.in_flight == 0
        # The gap filler went through the relay too (nonces 7 and 8 below the last, 9).
        filled = fake.params()[-1]["txs"]
        assert [nonce_of(t) for t in filled] == [7, 8]
        assert all(
            TypedTransaction.from_bytes(HexBytes(t)).as_dict()["to"] == HexBytes(trader.address)
            for t in filled
        )
        node.nonce = 10
        await ex.submit(sims()[:1], BlockRef(1_010, "0x", "0x", 0), GAS)
        assert nonce_of(fake.params()[-1]["txs"][0]) == 10  # the counter was reset


@pytest.mark.asyncio
async def test_no_answer_from_the_relay_is_tracked_as_sent(tmp_path: Path) -> None:
    fake, node = FakeRelay(status=504), FakeNode()
    async with executor_with(tmp_path, fake, "eth_sendPrivateTransaction", node) as (ex, _, _):
        attempts = await ex.submit(sims(), HEAD, GAS)
    # It may have been taken: forgetting it would risk a mined transaction nobody tracks.
    assert [a.outcome for a in attempts] == [Outcome.SENT] * 3
    assert ex.in_flight == 3


@pytest.mark.asyncio
async def test_a_pending_transaction_that_now_reverts_is_dropped_not_bumped(
    tmp_path: Path,
) -> None:
    fake, node = FakeRelay(), FakeNode()
    async with executor_with(tmp_path, fake, "eth_sendPrivateTransaction", node) as (ex, ledger, _):
        (sent,) = await ex.submit(sims()[:1], HEAD, GAS)
        later = BlockRef(HEAD.number + 2, "0x", "0x", 0, 10**9)  # replace_after_blocks on
        # Someone else liquidated the user: the transaction reverts, the nonce is unused.
        node.call = lambda: {
            "error": {"code": 3, "message": "execution reverted", "data": error_string("45")}
        }
        requests = len(fake.requests)
        (settled,) = await ex.on_head(later, GAS)
        assert settled.outcome == Outcome.RACED and settled.row == sent.row
        assert len(fake.requests) == requests  # no replacement was sent
        row = next(r for r in ledger.rows() if r.id == sent.row)
        assert row.outcome == "raced" and row.reason.startswith("dropped by the relay")
        assert ex.in_flight == 0 and ex.busy(USERS[0], later.number)  # cooling down


@pytest.mark.asyncio
async def test_a_pending_transaction_that_still_pays_is_replaced_through_the_relay(
    tmp_path: Path,
) -> None:
    fake, node = FakeRelay(), FakeNode()
    async with executor_with(tmp_path, fake, "eth_sendPrivateTransaction", node) as (ex, ledger, _):
        (sent,) = await ex.submit(sims()[:1], HEAD, GAS)
        later = BlockRef(HEAD.number + 2, "0x", "0x", 0, 10**9)
        assert await ex.on_head(later, GAS) == []
        assert node.seen.count("eth_sendRawTransaction") == 0
        replacement = fake.params()[-1]
        assert replacement["maxBlockNumber"] == hex(later.number + 2)
        assert nonce_of(replacement["tx"]) == 7
        row = next(r for r in ledger.rows() if r.id == sent.row)
        assert row.outcome == "sent" and row.tx_hash != sent.tx_hash
        assert row.tx_hash == "0x" + keccak(HexBytes(replacement["tx"])).hex()


# --- configuration and wiring ---

CONFIG = {
    "chain": {"rpc_url": "http://127.0.0.1:8545"},
    "market": {
        "pool_addresses_provider": "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318",
        "start_block": 1,
    },
}


@pytest.mark.parametrize(
    ("key", "value"),
    [("relay_url", "ws://relay.example"), ("relay_method", "eth_sendRawTransaction")],
)
def test_bad_relay_settings_name_the_key(key: str, value: str) -> None:
    env = {f"LIQBOT_EXECUTOR__{key.upper()}": value}
    with pytest.raises(ConfigError, match=f"executor.{key}"):
        Settings.load(env=env, overrides=CONFIG)


def test_relay_is_wired_with_the_auth_key_or_the_trading_key() -> None:
    trader, auth = Account.create(), Account.create()
    settings = Settings.load(
        env={"LIQBOT_EXECUTOR__RELAY_URL": "https://relay.example/"},
        overrides={**CONFIG, "executor": {"relay_method": "eth_sendBundle"}},
    )
    relay = relay_client(settings, Signer(trader))
    assert relay is not None and relay.auth_address == trader.address
    assert relay.settings.method == "eth_sendBundle"
    assert relay.settings.blocks == settings.executor.replace_after_blocks
    assert relay_client(settings, None) is None  # dry run: nothing is sent anywhere
    own = settings.model_copy(
        update={"executor": settings.executor.model_copy(update={"relay_auth_key_env": "K"})}
    )
    relay = relay_client(own, Signer(trader), {"K": auth.key.hex()})
    assert relay is not None and relay.auth_address == auth.address
    assert trader.key.hex() not in repr(relay) and auth.key.hex() not in repr(relay)


@pytest.mark.asyncio
async def test_the_balance_check_rides_the_simulations_request(tmp_path: Path) -> None:
    """The ETH-for-gas check before a send reads the balance in the simulation's own
    request: a crash head's batch waits for no extra round trip."""
    node = FakeNode()
    ledger = Ledger(tmp_path / "bot.db")
    try:
        async with serve(node.handle) as url, JsonRpcClient(url) as rpc:
            ex = Executor(
                rpc, ledger, ExecutorSettings(liquidator=LIQUIDATOR), Signer(Account.create()), 1
            )
            attempts = await ex.submit(await ex.simulate([plan(u) for u in USERS]), HEAD, GAS)
            assert [a.outcome for a in attempts] == [Outcome.SENT] * 3
            assert node.requests[0] == ["eth_simulateV1", "eth_getBalance"]
            assert node.seen.count("eth_getBalance") == 1
            # Short of ETH: the balance read with the simulation bounds what is sent.
            node.balance = 0
            sims = await ex.simulate([plan("0x" + "b1" * 20)])
            assert [a.outcome for a in await ex.submit(sims, HEAD, GAS)] == [Outcome.REVERTED]
            assert node.seen.count("eth_getBalance") == 2
    finally:
        ledger.close()
