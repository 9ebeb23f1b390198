"""A baseline competitor: a straightforward Python liquidation bot, as most are written today.

Every new block (found by polling ``eth_getBlockByNumber("latest")``, which also gives the
base fee) it re-reads ``getUserAccountData``
for every known borrower (the manifest's list) through Multicall3 ``aggregate3`` in chunks
of 100, and for each user with a health factor below 1 sends
``Pool.liquidationCall(collateral, debt, user, type(uint256).max, false)`` from its own
funded account, which holds the debt tokens (no flash loan, no simulation, no profit check:
it is only as good as it is fast). Collateral and debt are the user's largest by oracle
value, read with one more multicall of aToken / variable-debt-token balances and prices.

It signs locally, sends each block's liquidations in one JSON-RPC batch and counts its own
RPC calls (``rpc.calls``, by method). Used by ``bench/live_bench.py``, which runs it in
its own process (``BaselineProcess``), as a competitor runs: on one event loop the two
bots would stall each other's CPU work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from bot.abi import load_abi
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.multicall import Multicall, Read
from bot.rpc import JsonRpcClient, to_int

log = logging.getLogger(__name__)

WAD = 10**18
UINT_MAX = 2**256 - 1
# Each bot's ETH for gas in the race benches, the same for both: liqbot's bids spend about
# 0.25 ETH a liquidation at 20,000 borrowers, which ran a 100 ETH account dry.
ETH_FOR_GAS = 1_000 * 10**18
# Whole units of every reserve token the baseline holds to repay with (liqbot too, when
# the race runs it with an inventory).
INVENTORY_TOKENS = 10**9
_POOL = load_abi("Pool")
_ERC20 = load_abi("ERC20")
_ORACLE = load_abi("AaveOracle")
_ACCOUNT_DATA = _POOL.fn("getUserAccountData")
_LIQUIDATE = _POOL.fn("liquidationCall")
_BALANCE = _ERC20.fn("balanceOf")
_PRICE = _ORACLE.fn("getAssetPrice")


async def stock(setup_rpc: JsonRpcClient, manifest: Manifest, holder: str, spender: str) -> None:
    """Set-up (not counted): ``INVENTORY_TOKENS`` whole units of every reserve token for
    ``holder``, all approved to ``spender``."""
    sc = Scenario(setup_rpc, manifest)
    for r in manifest.reserves:
        await sc.fund(holder, r.symbol, INVENTORY_TOKENS * 10**r.decimals)
        await sc.send(holder, r.address, _ERC20.fn("approve"), spender, UINT_MAX)
    await sc.chain.auto_impersonate(False)


@dataclass(frozen=True, slots=True)
class BaselineSettings:
    poll_interval_s: float = 0.1
    chunk: int = 100
    gas_limit: int = 1_000_000
    priority_fee_wei: int = 1_500_000_000  # the same tip as liqbot's default
    # maxFeePerGas = 2 * base fee + tip, liqbot's own rule: anvil ranks pending
    # transactions by max fee, so a higher cap alone would win ties against liqbot.
    cooldown_blocks: int = 2  # do not resend for a user this many blocks after a send


@dataclass(slots=True)
class BaselineSend:
    block: int  # the head the decision was made on
    user: str
    tx_hash: str
    arrived: float  # perf_counter when the head was seen
    sent: float  # perf_counter when the batch of sends returned


@dataclass(slots=True)
class BaselineBot:
    url: str
    manifest: Manifest
    settings: BaselineSettings = field(default_factory=BaselineSettings)
    account: Any = field(default_factory=Account.create)
    rpc: JsonRpcClient = field(init=False)
    sends: list[BaselineSend] = field(default_factory=list)
    blocks: list[tuple[int, float, float]] = field(default_factory=list)  # (n, seen, done)
    # Called after each block with its record (``BaselineProcess`` streams them).
    on_record: Callable[[dict[str, Any]], None] | None = None
    _nonce: int | None = None
    _cooldown: dict[str, int] = field(default_factory=dict)
    _chain_id: int = 0
    _base_fee: int = 0

    def __post_init__(self) -> None:
        self.rpc = JsonRpcClient(self.url)

    @property
    def address(self) -> str:
        return str(self.account.address)

    async def close(self) -> None:
        await self.rpc.close()

    async def fund(self, setup_rpc: JsonRpcClient) -> None:
        """Set-up (not counted): ETH for gas, every reserve token, and pool approvals."""
        await Scenario(setup_rpc, self.manifest).fund_eth(self.address, ETH_FOR_GAS)
        await stock(setup_rpc, self.manifest, self.address, self.manifest.aave.pool)

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._chain_id = to_int(await self.rpc.call("eth_chainId"))
        last = -1
        while not stop.is_set():
            block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            n = to_int(block["number"])
            if n > last:
                seen = time.perf_counter()
                last = n
                self._base_fee = to_int(block.get("baseFeePerGas") or "0x0")
                sent_before = len(self.sends)
                try:
                    await self.on_block(n, seen)
                except Exception:
                    log.exception("baseline block failed", extra={"block": n})
                self.blocks.append((n, seen, time.perf_counter()))
                if self.on_record is not None:
                    self.on_record(
                        {
                            "block": self.blocks[-1],
                            "calls": dict(self.rpc.calls),
                            "sends": [asdict(x) for x in self.sends[sent_before:]],
                        }
                    )
                continue
            await asyncio.sleep(self.settings.poll_interval_s)

    async def on_block(self, n: int, seen: float) -> None:
        m = self.manifest
        users = [b.address for b in m.borrowers]
        mc = Multicall(self.rpc, m.multicall3, chunk=self.settings.chunk)
        raw = await mc.raw([(m.aave.pool, _ACCOUNT_DATA.encode(u)) for u in users], n)
        targets = []
        for u, (ok, ret) in zip(users, raw, strict=True):
            if not ok:  # a read that fails is skipped this block (allowFailure)
                continue
            d = _ACCOUNT_DATA.decode(ret)
            if d[1] > 0 and d[5] < WAD and self._cooldown.get(u, -1) <= n:
                targets.append(u)
        if not targets:
            return
        picks = await self._pick_assets(mc, targets)
        if self._nonce is None:
            self._nonce = to_int(
                await self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
            )
        s = self.settings
        raws = []
        for user, (coll, debt) in picks.items():
            tx = {
                "type": 2,
                "chainId": self._chain_id,
                "nonce": self._nonce,
                "to": m.aave.pool,
                "data": _LIQUIDATE.encode(coll, debt, user, UINT_MAX, False),
                "value": 0,
                "gas": s.gas_limit,
                "maxFeePerGas": 2 * self._base_fee + s.priority_fee_wei,
                "maxPriorityFeePerGas": s.priority_fee_wei,
            }
            self._nonce += 1
            signed = self.account.sign_transaction(tx)
            raws.append((user, "0x" + bytes(signed.raw_transaction).hex()))
        hashes = await self.rpc.batch([("eth_sendRawTransaction", [raw]) for _, raw in raws])
        sent = time.perf_counter()
        failed = False
        for (user, _), h in zip(raws, hashes, strict=True):
            self._cooldown[user] = n + s.cooldown_blocks
            if isinstance(h, str):
                self.sends.append(BaselineSend(n, user, h, seen, sent))
            else:
                failed = True
                log.warning("baseline send rejected", extra={"user": user, "err": str(h)})
        if failed:
            self._nonce = None  # re-read from the node next time

    async def _pick_assets(self, mc: Multicall, users: list[str]) -> dict[str, tuple[str, str]]:
        """Each user's largest collateral and largest debt by oracle value."""
        reserves = self.manifest.reserves
        reads = [Read(self.manifest.aave.oracle, _PRICE, (r.address,)) for r in reserves]
        for u in users:
            for r in reserves:
                reads.append(Read(r.a_token, _BALANCE, (u,)))
                reads.append(Read(r.variable_debt_token, _BALANCE, (u,)))
        # At "latest", allowing failures: at block ``n``, once the next block is mined,
        # anvil answered an aToken's balanceOf with a revert (interest index underflow),
        # which cost this bot whole blocks of liquidations in a first run.
        got = await mc.read(reads, "latest", optional=len(reads) - len(reserves))
        prices, rest = got[: len(reserves)], [b or 0 for b in got[len(reserves) :]]
        out: dict[str, tuple[str, str]] = {}
        per_user = 2 * len(reserves)
        for i, u in enumerate(users):
            bals = rest[i * per_user : (i + 1) * per_user]
            coll = max(
                range(len(reserves)),
                key=lambda j: bals[2 * j] * prices[j] // 10 ** reserves[j].decimals,
            )
            debt = max(
                range(len(reserves)),
                key=lambda j: bals[2 * j + 1] * prices[j] // 10 ** reserves[j].decimals,
            )
            if bals[2 * coll] and bals[2 * debt + 1]:
                out[u] = (reserves[coll].address, reserves[debt].address)
        return out


class BaselineProcess:
    """``BaselineBot`` in a child process, seen through what it reports after each block:
    ``blocks``, ``sends`` and ``calls`` (cumulative, by method) as ``BaselineBot`` keeps
    them. ``time.perf_counter`` is the system's monotonic clock, shared across processes,
    so its times compare with liqbot's."""

    def __init__(self, url: str, manifest: Path, key: str, address: str) -> None:
        self.url, self.manifest, self.key, self.address = url, manifest, key, address
        self.blocks: list[tuple[int, float, float]] = []
        self.sends: list[BaselineSend] = []
        self.calls: Counter[str] = Counter()

    async def run(self, stop: asyncio.Event) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--url",
            self.url,
            "--manifest",
            str(self.manifest),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, _KEY_ENV: self.key},
            limit=1 << 24,  # a crash block's record lists hundreds of sends on one line
        )
        assert proc.stdout is not None
        reader = asyncio.ensure_future(self._read(proc.stdout))
        try:
            await stop.wait()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            await proc.wait()
            await reader

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            record = json.loads(line)
            self.sends += [BaselineSend(**x) for x in record["sends"]]
            self.calls = Counter(record["calls"])
            n, seen, done = record["block"]
            self.blocks.append((n, seen, done))


_KEY_ENV = "BASELINE_KEY"


async def _child(url: str, manifest: Path) -> None:
    def emit(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    bot = BaselineBot(
        url,
        Manifest.load(manifest),
        account=Account.from_key(os.environ[_KEY_ENV]),
        on_record=emit,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    try:
        await bot.run(stop)
    finally:
        await bot.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="run the baseline bot until SIGINT")
    ap.add_argument("--url", required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    args = ap.parse_args()
    asyncio.run(_child(args.url, args.manifest))
