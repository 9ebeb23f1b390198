"""Typed access to anvil's development RPCs and transaction helpers for local chains.

Senders are unlocked or impersonated accounts (``anvil_autoImpersonateAccount``), so no key
is needed: this module is for devnets and forks only, never for a live network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address

from bot.abi import AbiFunction
from bot.errors import DevnetError, RpcError
from bot.rpc import JsonRpcClient, to_int

DEFAULT_GAS = 8_000_000


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction to send from an unlocked or impersonated account."""

    sender: str
    to: str | None
    data: bytes = b""
    value: int = 0
    gas: int | None = None  # None: the node estimates it (and reports revert reasons)
    label: str = ""

    def params(self, nonce: int | None = None) -> dict[str, Any]:
        p: dict[str, Any] = {"from": self.sender, "data": "0x" + self.data.hex()}
        if self.gas is not None:
            p["gas"] = hex(self.gas)
        if self.to is not None:
            p["to"] = self.to
        if self.value:
            p["value"] = hex(self.value)
        if nonce is not None:
            p["nonce"] = hex(nonce)
        return p


class AnvilRpc:
    """Anvil cheat codes plus send/deploy/call on top of one JSON-RPC client."""

    def __init__(self, rpc: JsonRpcClient) -> None:
        self.rpc = rpc

    # -- reads -------------------------------------------------------------------------
    async def chain_id(self) -> int:
        return to_int(await self.rpc.call("eth_chainId"))

    async def block_number(self) -> int:
        return to_int(await self.rpc.call("eth_blockNumber"))

    async def block(self, tag: str | int = "latest") -> dict[str, Any]:
        ref = hex(tag) if isinstance(tag, int) else tag
        blk: dict[str, Any] = await self.rpc.call("eth_getBlockByNumber", [ref, False])
        return blk

    async def timestamp(self) -> int:
        return to_int((await self.block())["timestamp"])

    async def accounts(self) -> list[str]:
        return [to_checksum_address(a) for a in await self.rpc.call("eth_accounts")]

    async def call(self, to: str, fn: AbiFunction, *args: Any, block: str | int = "latest") -> Any:
        """eth_call a function and decode its outputs (one output: the value itself)."""
        ref = hex(block) if isinstance(block, int) else block
        raw = await self.rpc.call("eth_call", [{"to": to, "data": fn.encode_hex(*args)}, ref])
        out = fn.decode(raw)
        return out[0] if len(out) == 1 else out

    # -- transactions ------------------------------------------------------------------
    async def send(self, tx: Tx) -> dict[str, Any]:
        """Send and wait for the receipt (``eth_sendTransactionSync``); raise on revert.

        Without an explicit gas limit the estimate is padded: it is exact for the pending
        state, and the block that includes the transaction can differ (a later timestamp
        accrues interest, which can write more storage).
        """
        if tx.gas is None:
            try:
                estimate = to_int(await self.rpc.call("eth_estimateGas", [tx.params()]))
            except RpcError as e:
                raise DevnetError(f"{tx.label or 'transaction'} would fail: {e}") from e
            tx = replace(tx, gas=estimate * 5 // 4 + 50_000)
        try:
            receipt: dict[str, Any] = await self.rpc.call("eth_sendTransactionSync", [tx.params()])
        except RpcError as e:
            raise DevnetError(f"{tx.label or 'transaction'} failed: {e}") from e
        if to_int(receipt["status"]) != 1:
            raise DevnetError(f"{tx.label or 'transaction'} reverted: {receipt['transactionHash']}")
        return receipt

    async def deploy(self, sender: str, creation_code: bytes, label: str) -> str:
        receipt = await self.send(Tx(sender, None, creation_code, label=label))
        return to_checksum_address(receipt["contractAddress"])

    async def send_many(self, txs: Sequence[Tx], *, chunk: int = 250) -> None:
        """Send many transactions fast: auto-mining off, chunks of ``chunk``, one block each.

        Gas is not estimated (state changes within a chunk would make estimates wrong);
        transactions without a gas limit get ``DEFAULT_GAS``.

        Nonces are assigned here per sender in list order, so a sender's transactions run
        in that order. Every receipt is checked; a revert raises with its label.
        """
        if not txs:
            return
        nonces: dict[str, int] = {}
        senders = sorted({t.sender for t in txs})
        counts = await self.rpc.batch_strict(
            [("eth_getTransactionCount", [s, "pending"]) for s in senders]
        )
        nonces = {s: to_int(c) for s, c in zip(senders, counts, strict=True)}
        # The pending block carries the limit in force; the latest header may carry the
        # one-chunk limit an earlier call mined with.
        gas_limit = to_int((await self.block("pending"))["gasLimit"])
        await self.rpc.call("evm_setAutomine", [False])
        try:
            for i in range(0, len(txs), chunk):
                part = [
                    t if t.gas is not None else replace(t, gas=DEFAULT_GAS)
                    for t in txs[i : i + chunk]
                ]
                calls = []
                for t in part:
                    calls.append(("eth_sendTransaction", [t.params(nonces[t.sender])]))
                    nonces[t.sender] += 1
                hashes = await self.rpc.batch_strict(calls)
                # One block holds the whole chunk; gas limits are generous on purpose.
                await self.rpc.call(
                    "evm_setBlockGasLimit", [hex(sum(t.gas or 0 for t in part) + 1)]
                )
                await self.rpc.call("evm_mine")
                receipts = await self.rpc.batch_strict(
                    [("eth_getTransactionReceipt", [h]) for h in hashes]
                )
                for t, h, r in zip(part, hashes, receipts, strict=True):
                    if r is None:
                        raise DevnetError(f"{t.label or 'transaction'} {h} was not mined")
                    if to_int(r["status"]) != 1:
                        raise DevnetError(f"{t.label or 'transaction'} reverted: {h}")
        finally:
            await self.rpc.call("evm_setBlockGasLimit", [hex(gas_limit)])
            await self.rpc.call("evm_setAutomine", [True])

    # -- cheat codes -------------------------------------------------------------------
    async def auto_impersonate(self, enabled: bool = True) -> None:
        await self.rpc.call("anvil_autoImpersonateAccount", [enabled])

    async def set_balance(self, account: str, wei: int) -> None:
        await self.rpc.call("anvil_setBalance", [account, hex(wei)])

    async def set_balances(self, accounts: Sequence[str], wei: int) -> None:
        await self.rpc.batch_strict([("anvil_setBalance", [a, hex(wei)]) for a in accounts])

    async def set_code(self, account: str, code: str) -> None:
        await self.rpc.call("anvil_setCode", [account, code])

    async def get_code(self, account: str) -> str:
        code: str = await self.rpc.call("eth_getCode", [account, "latest"])
        return code

    async def mine(self, blocks: int = 1, interval_s: int | None = None) -> None:
        params = [hex(blocks)] if interval_s is None else [hex(blocks), hex(interval_s)]
        await self.rpc.call("anvil_mine", params)

    async def increase_time(self, seconds: int) -> None:
        await self.rpc.call("evm_increaseTime", [hex(seconds)])

    async def set_next_timestamp(self, ts: int) -> None:
        await self.rpc.call("evm_setNextBlockTimestamp", [hex(ts)])

    async def snapshot(self) -> str:
        snap: str = await self.rpc.call("evm_snapshot")
        return snap

    async def revert(self, snapshot_id: str) -> None:
        if not await self.rpc.call("evm_revert", [snapshot_id]):
            raise DevnetError(f"evm_revert({snapshot_id}) failed: unknown snapshot")

    @asynccontextmanager
    async def isolated(self) -> AsyncIterator[None]:
        """Everything done inside is undone on exit (evm_snapshot / evm_revert)."""
        snap = await self.snapshot()
        try:
            yield
        finally:
            await self.settle_automine()
            await self.revert(snap)

    async def settle_automine(self, timeout_s: float = 5.0) -> None:
        """Wait until automine has mined what was sent. anvil answers
        ``eth_sendRawTransaction`` before it mines; a block it finishes after an
        ``evm_revert`` lands on the reverted chain with the old height, leaving a gap of
        missing blocks that later reads trip over."""
        if not await self.rpc.call("anvil_getAutomine"):
            return  # nothing is mined in the background
        async with asyncio.timeout(timeout_s):
            while True:
                status = await self.rpc.call("txpool_status")
                if to_int(status["pending"]) == 0 and to_int(status["queued"]) == 0:
                    break
                await asyncio.sleep(0.01)  # anvil offers no "mined" notification over HTTP
        await self.mine(1)  # serialised behind any block still being written

    async def dump_state(self) -> str:
        state: str = await self.rpc.call("anvil_dumpState")
        return state
