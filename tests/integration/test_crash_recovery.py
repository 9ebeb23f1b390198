"""End to end: the bot killed with SIGKILL and restarted, reorgs under a running bot, and
the liquidator contract's guard when the price moves between simulation and inclusion.

* ``liqbot run`` (the real CLI process, live with a key and its own liquidator on a fork
  of the crashed devnet) is killed with SIGKILL as soon as the ledger holds a ``sent``
  row, then restarted on the same database; and killed again mid-backfill on a fresh one.
* The in-process bot handles heads while ``anvil_reorg`` drops the blocks holding its
  transactions (depth 1-10). This runs on the origin devnet: anvil 1.7's ``anvil_reorg``
  on a *fork* leaves the storage writes of the dropped blocks in place (a supply's
  ``lastUpdateTimestamp`` survives the reorg; on a non-fork node it is rolled back), after
  which Aave's interest math underflows in every call.
* A price move between simulation and inclusion makes the transaction revert on chain
  (``InsufficientProfit``, or Aave's ``45`` when the position became healthy): the owner
  pays gas only. A non-owner's call reverting with ``NotOwner`` is tested in
  ``test_liquidator_contract.py::test_only_the_owner_and_the_pool_get_in``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aave_parity import make_indexer
from eth_account import Account
from eth_utils import keccak
from operator_cli import clean_env, market_toml
from test_bot_execution import crashed, head_of  # noqa: F401 - the fixture is used by name

from bot.api import BlockRef, LiquidationPlan
from bot.chain.anvil import AnvilProcess
from bot.devnet.crash import devnet_bot, profitable_left
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.execution.executor import Simulation
from bot.indexer.indexer import SyncReport
from bot.indexer.store import Store
from bot.ledger import Ledger, LedgerRow, Outcome
from bot.rpc import JsonRpcClient, to_int
from bot.testing.fault_proxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BLOCK_TIME_S = 12
MAX_BLOCKS = 16  # blocks mined after a restart or a reorg before the bot must be done
_BLOCK_LINE = r"bot\.runner: block block={n} liquidatable=\d+ planned=(\d+) sent=(\d+)"


# --- helpers --------------------------------------------------------------------------


async def nonce_of(rpc: JsonRpcClient, address: str) -> int:
    return to_int(await rpc.call("eth_getTransactionCount", [address, "latest"]))


async def next_block(rpc: JsonRpcClient, head: BlockRef) -> BlockRef:
    """Mine the block the bot priced its plans for (``head`` + the block time)."""
    await rpc.call("evm_setNextBlockTimestamp", [hex(head.timestamp + BLOCK_TIME_S)])
    await rpc.call("evm_mine", [])
    return await head_of(rpc)


async def pending(rpc: JsonRpcClient) -> int:
    return to_int((await rpc.call("txpool_status"))["pending"])


async def pool_is_empty(rpc: JsonRpcClient) -> bool:
    status = await rpc.call("txpool_status")
    return to_int(status["pending"]) == 0 and to_int(status["queued"]) == 0


async def assert_accounted(rows: Sequence[LedgerRow], nonce_delta: int) -> int:
    """Every transaction of ours on chain is one ledger row, and no row is in flight: the
    hashes are unique, each belongs to a mined row, and their number is the account's
    nonce delta. Returns the number of rows recovered as never sent (a crash between the
    ledger write and the send), which carry no hash."""
    assert not [r for r in rows if r.outcome == Outcome.SENT], "a row is left in flight"
    hashes = [r.tx_hash for r in rows if r.tx_hash]
    assert len(hashes) == len(set(hashes)), "a transaction hash appears twice"
    assert all(r.settled_block for r in rows if r.tx_hash), "a hash that was not mined"
    assert nonce_delta == len(hashes), (nonce_delta, len(hashes))
    return sum(r.reason.startswith("not sent") for r in rows)


async def same_rows_as_fresh(rpc: JsonRpcClient, m: Manifest, db: Path, tmp: Path) -> int:
    """The database's indexed rows and checkpoint equal a fresh index's to the same block;
    returns that block."""
    store = Store(db)
    try:
        cp = store.checkpoint()
        assert cp is not None
        rows = sorted(store.load_rows())
    finally:
        store.close()
    fresh = Store(tmp / "fresh.db")
    try:
        indexer, _ = await make_indexer(rpc, m, store=fresh, confirmations=0)
        await indexer.sync(cp.number)
        assert fresh.checkpoint() == cp
        assert rows == sorted(fresh.load_rows())
    finally:
        fresh.close()
    return cp.number


def ledger_rows(db: Path, where: str = "1") -> list[tuple[Any, ...]]:
    """Read the bot's ledger from outside the process (it may not exist yet)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.OperationalError:
        return []
    try:
        return con.execute(f"SELECT id, outcome, tx_hash FROM ledger WHERE {where}").fetchall()
    except sqlite3.OperationalError:  # no ledger table yet
        return []
    finally:
        con.close()


def checkpoint_of(db: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.OperationalError:
        return None
    try:
        row = con.execute("SELECT number FROM checkpoint WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    return int(row[0]) if row else None


class Cli:
    """``liqbot ARGS`` as a child process; its merged stdout and stderr kept as lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, args: Sequence[str], cwd: Path, env: dict[str, str]) -> Cli:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=clean_env(env),
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def until(self, predicate: Callable[[], Any], limit_s: float, what: str) -> Any:
        """Poll ``predicate`` until it answers truthy (returned); fail after ``limit_s``."""
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            found = predicate()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
            if self.proc.returncode is not None:
                await self._reader
                pytest.fail(f"liqbot exited {self.proc.returncode} before {what}:\n{self.output}")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"no {what} after {limit_s} s:\n{self.output[-4000:]}")
            await asyncio.sleep(0.002)

    def line(self, pattern: str) -> re.Match[str] | None:
        for text in reversed(self.lines):
            if m := re.search(pattern, text):
                return m
        return None

    async def stop(self, sig: signal.Signals | None, limit_s: float = 20) -> int:
        """Send ``sig`` (None: none) and wait for the exit code."""
        if sig is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), limit_s)
        await self._reader
        return code


# --- 1. kill -9 of `liqbot run` ---------------------------------------------------------


@pytest.mark.parametrize(
    "kill_when", ["first row recorded", "sent to the node", "batch partly sent"]
)
async def test_kill_9_mid_head_then_restart_sends_nothing_twice(
    fork: AnvilProcess,
    fork_rpc: JsonRpcClient,
    tmp_path: Path,
    crashed: tuple[Manifest, Scenario],  # noqa: F811
    kill_when: str,
) -> None:
    m, sc = crashed
    account = Account.create()
    await sc.fund_eth(account.address, 100 * 10**18)
    liquidator = await deploy_liquidator(sc.chain, account.address, m.aave.pool, m.uniswap.factory)
    await sc.chain.auto_impersonate(False)
    db = tmp_path / "liqbot.db"
    cfg = tmp_path / "liqbot.toml"
    proxy = FaultProxy(fork.url)
    await proxy.start()
    cfg.write_text(market_toml(m, proxy.url, db) + f'\n[executor]\nliquidator = "{liquidator}"\n')
    args, env = ["run", "--config", str(cfg)], {"LIQBOT_PRIVATE_KEY": account.key.hex()}
    nonce0 = await nonce_of(fork_rpc, account.address)
    sent_rows = "outcome = 'sent' AND tx_hash != ''"
    # The node takes the first two transactions of the batch; the bot dies waiting for
    # the answer, never knowing which ones arrived.
    half_sent = proxy.inject(
        Fault.PARTIAL_BATCH, keep=2, times=1, methods={"eth_sendRawTransaction"}
    )
    if kill_when != "batch partly sent":
        proxy.clear()

    # The driver owns the clock: nothing is mined unless the test mines it.
    await fork_rpc.call("evm_setAutomine", [False])
    bot = await Cli.start(args, tmp_path, env)
    try:
        if kill_when == "first row recorded":  # a row with its hash, maybe not sent yet
            await bot.until(lambda: ledger_rows(db, sent_rows), 60, "sent ledger row")
        elif kill_when == "sent to the node":  # the bot has not seen a receipt
            await bot.until(lambda: pending(fork_rpc), 60, "transaction in the pool")
        else:
            # Counted once the node has answered for them, so they are in its pool.
            await bot.until(lambda: half_sent.forwarded, 60, "a batch of sends")
            assert half_sent.forwarded == 2 and await pending(fork_rpc) == 2
            assert len(ledger_rows(db, sent_rows)) > 2  # more were signed and recorded
            proxy.clear()
        assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
        at_kill = len(ledger_rows(db, sent_rows))
        # Rows recorded, whose hash the process may not have written yet.
        in_flight = len(ledger_rows(db, "outcome = 'sent'"))
        in_pool = await pending(fork_rpc)
        head = await head_of(fork_rpc)

        bot = await Cli.start(args, tmp_path, env)
        recovered = await bot.until(
            lambda: bot.line(r"recovered in-flight transactions adopted=(\d+) rows=(\d+)"),
            60,
            "recovery",
        )
        assert int(recovered[2]) == in_flight
        assert int(recovered[1]) == in_pool  # the node's view decides, not the ledger's
        # It handles the head it died on again (the adopted users are busy), then the
        # next blocks, until it has nothing left to do.
        await bot.until(lambda: bot.line(_BLOCK_LINE.format(n=head.number)), 60, "first head")
        for _ in range(MAX_BLOCKS):
            head = await next_block(fork_rpc, head)
            pattern = _BLOCK_LINE.format(n=head.number)
            done = await bot.until(partial(bot.line, pattern), 30, f"block {head.number}")
            if done[1] == "0" and not ledger_rows(db, "outcome = 'sent'"):
                break
        else:
            pytest.fail("the restarted bot still had work:\n" + bot.output[-4000:])
        assert await bot.stop(signal.SIGINT) == 0, bot.output[-4000:]
    finally:
        if bot.proc.returncode is None:
            await bot.stop(signal.SIGKILL)
        await proxy.close()
        await fork_rpc.call("evm_setAutomine", [True])
    assert account.key.hex().removeprefix("0x") not in bot.output

    with Ledger(db) as ledger:
        rows = ledger.rows()
    delta = await nonce_of(fork_rpc, account.address) - nonce0
    never_left = await assert_accounted(rows, delta)
    won = sum(r.outcome == Outcome.WON for r in rows)
    assert won > 0
    assert {r.outcome for r in rows} <= {"won", "raced", "unprofitable", "reverted"}
    assert not [r for r in rows if r.outcome == "reverted" and r.settled_block]
    cp = await same_rows_as_fresh(fork_rpc, m, db, tmp_path)
    async with devnet_bot(fork.url, m, tmp_path / "check.db", live=False) as check:
        assert await profitable_left(check, await head_of(fork_rpc)) == 0
    print(
        f"\nkill -9 mid-head ({kill_when}): {in_flight} rows in flight at the kill "
        f"({at_kill} with a hash), "
        f"{in_pool} transactions in the node's pool, "
        f"{never_left} never left; after restart {won} won, nonce delta {delta}, "
        f"{len(rows)} rows; indexed state = fresh index at checkpoint {cp}"
    )


async def test_kill_9_mid_backfill_then_restart_equals_a_fresh_index(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    db = tmp_path / "liqbot.db"
    head = (await head_of(fork_rpc)).number
    async with FaultProxy(fork.url) as proxy:
        cfg = tmp_path / "liqbot.toml"
        cfg.write_text(market_toml(manifest, proxy.url, db))
        # Eight blocks a window, each answer 50 ms late: a backfill of many commits.
        env = {"LIQBOT_INDEXER__LOG_WINDOW": "8", "LIQBOT_INDEXER__MAX_LOG_WINDOW": "8"}
        proxy.inject(Fault.DELAY, methods={"eth_getLogs"}, delay_s=0.05)
        args = ["run", "--config", str(cfg)]
        bot = await Cli.start(args, tmp_path, env)
        try:
            cp = await bot.until(lambda: checkpoint_of(db), 60, "first checkpoint")
            assert await bot.stop(signal.SIGKILL) == -signal.SIGKILL
            killed_at = checkpoint_of(db)
            assert killed_at is not None
            assert manifest.deploy_block < killed_at < head - 12, (cp, killed_at, head)
            proxy.clear()
            bot = await Cli.start([*args, "--blocks", "1"], tmp_path, env)
            assert await bot.stop(None, limit_s=60) == 0, bot.output[-4000:]
        finally:
            if bot.proc.returncode is None:
                await bot.stop(signal.SIGKILL)
    assert "indexed to block" in bot.output
    done = await same_rows_as_fresh(fork_rpc, manifest, db, tmp_path)
    assert done >= head - 12
    print(
        f"\nkill -9 mid-backfill: checkpoint {killed_at} of {head - 12} "
        f"(from {manifest.deploy_block}); restart completed to {done} = fresh index"
    )


# --- 2. reorgs under the running bot ------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "remempool"), [(1, False), (3, False), (6, False), (10, False), (3, True)]
)
async def test_reorg_dropping_our_transactions_sends_them_again(
    origin_rpc: JsonRpcClient,
    devnet_url: str,
    manifest: Manifest,
    tmp_path: Path,
    depth: int,
    remempool: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """anvil forgets the transactions of the blocks it drops: the bot sends them again.
    ``remempool``: a node that puts them back in its mempool itself (as geth does); the bot
    then sends nothing again and they are mined once all the same."""
    sc = Scenario(origin_rpc, manifest)
    await sc.scale_price("WETH", 7_600)  # ETH -24%
    deep = {"indexer": {"confirmations": 12}}
    async with devnet_bot(devnet_url, manifest, tmp_path / "bot.db", overrides=deep) as bot:
        runner = bot.runner
        signer = bot.executor.signer
        assert signer is not None
        nonce0 = await nonce_of(origin_rpc, signer.address)
        syncs: list[SyncReport] = []
        sync = runner.indexer.sync

        async def spy(*args: Any, **kwargs: Any) -> SyncReport:
            report = await sync(*args, **kwargs)
            syncs.append(report)
            return report

        monkeypatch.setattr(runner.indexer, "sync", spy)
        await origin_rpc.call("evm_setAutomine", [False])
        try:
            head = await head_of(origin_rpc)
            first = await runner.handle(head)
            assert any(a.outcome == Outcome.SENT for a in first.attempts)
            for _ in range(depth):
                head = await next_block(origin_rpc, head)
                await runner.handle(head)
            dropped = [r for r in bot.ledger.rows() if r.settled_block > head.number - depth]
            assert dropped and {r.outcome for r in dropped} == {"won"}
            nonce_before = await nonce_of(origin_rpc, signer.address)
            raws = [
                await origin_rpc.call("eth_getRawTransactionByHash", [r.tx_hash]) for r in dropped
            ]

            await origin_rpc.call("anvil_reorg", [depth, []])
            assert await nonce_of(origin_rpc, signer.address) == nonce_before - len(dropped)
            if remempool:
                for raw in raws:
                    await origin_rpc.call("eth_sendRawTransaction", [raw])
            sent: set[str] = set()
            send_raw = bot.executor._send_raw

            async def counted(raws: Sequence[bytes], head: int) -> list[Any]:
                sent.update("0x" + keccak(r).hex() for r in raws)
                return await send_raw(raws, head)

            monkeypatch.setattr(bot.executor, "_send_raw", counted)
            head = await head_of(origin_rpc)
            await runner.handle(head)
            monkeypatch.undo()
            assert syncs[-1].reorged
            # Only what the node forgot is sent again.
            again = {r.tx_hash for r in dropped} & sent
            assert len(again) == (0 if remempool else len(dropped))
            again = {r.id for r in bot.ledger.rows() if "reorganised away" in r.reason}
            assert again == {r.id for r in dropped}
            for _ in range(MAX_BLOCKS):
                head = await next_block(origin_rpc, head)
                report = await runner.handle(head)
                if report.attempts or bot.executor.in_flight:
                    continue
                # Users cooling down after a failure are tried again once it ends.
                if await profitable_left(bot, head) == 0:
                    break
            else:
                pytest.fail("the bot still had work after the reorg")
            idle = await pool_is_empty(origin_rpc)
        finally:
            await origin_rpc.call("anvil_dropAllTransactions", [])
            await origin_rpc.call("evm_setAutomine", [True])
        assert idle, "transactions of ours are stuck in the node's pool"
        rows = bot.ledger.rows()
        delta = await nonce_of(origin_rpc, signer.address) - nonce0
        assert await assert_accounted(rows, delta) == 0
        fresh, adapter = await make_indexer(origin_rpc, manifest, confirmations=0)
        await fresh.sync(head.number)
        assert bot.index.adapter.indexing.book.users == adapter.indexing.book.users
        assert await profitable_left(bot, head) == 0, [
            (r.id, r.user[:8], r.block, r.outcome, r.settled_block, r.reason[:60])
            for r in rows
            if r.outcome != Outcome.WON
        ]
        by_row = {r.id: r for r in rows}
        won_again = sum(by_row[r.id].outcome == Outcome.WON for r in dropped)
        print(
            f"\nreorg depth {depth}: {len(dropped)} mined transactions dropped, "
            f"{'put back by the node' if remempool else 'all sent again by the bot'} "
            f"({won_again} won again); {sum(r.outcome == 'won' for r in rows)} won "
            f"in all, nonce delta {delta}, {len(rows)} rows"
        )


async def test_reorg_at_the_same_height_reaches_liqbot_run_through_polling(
    origin_rpc: JsonRpcClient, devnet_url: str, manifest: Manifest, tmp_path: Path
) -> None:
    """``liqbot run`` on an http URL polls its heads. ``anvil_reorg`` replaces the newest
    blocks, ours among them, without growing the chain: the poll sees the same height with
    another hash and hands that head over at once (not when a next block is mined). The
    bot rolls back, sends the dropped transactions again, and ends with a state equal to a
    fresh index and every transaction of its own accounted for."""
    depth = 3
    sc = Scenario(origin_rpc, manifest)
    await sc.scale_price("WETH", 7_600)  # ETH -24%
    account = Account.create()
    await sc.fund_eth(account.address, 100 * 10**18)
    liquidator = await deploy_liquidator(
        sc.chain, account.address, manifest.aave.pool, manifest.uniswap.factory
    )
    await sc.chain.auto_impersonate(False)
    db = tmp_path / "liqbot.db"
    cfg = tmp_path / "liqbot.toml"
    cfg.write_text(
        market_toml(manifest, devnet_url, db)
        + f'\n[executor]\nliquidator = "{liquidator}"\ncooldown_blocks = 1\n'
    )
    env = {"LIQBOT_PRIVATE_KEY": account.key.hex()}
    nonce0 = await nonce_of(origin_rpc, account.address)
    await origin_rpc.call("evm_setAutomine", [False])
    bot = await Cli.start(["run", "--config", str(cfg)], tmp_path, env)
    try:
        head = await head_of(origin_rpc)
        await bot.until(lambda: bot.line(_BLOCK_LINE.format(n=head.number)), 60, "first head")
        for _ in range(depth):
            head = await next_block(origin_rpc, head)
            await bot.until(partial(bot.line, _BLOCK_LINE.format(n=head.number)), 30, "a head")
        won = "outcome = 'won'"
        mined = await bot.until(lambda: ledger_rows(db, won), 30, "a won row")
        await origin_rpc.call("anvil_reorg", [depth, []])
        assert (await head_of(origin_rpc)).number == head.number  # no block was added
        await bot.until(lambda: bot.line(r"reorg: rolling back"), 30, "the reorg noticed")
        await bot.until(
            lambda: len(ledger_rows(db, "reason LIKE '%reorganised away%'")) == len(mined),
            30,
            "the dropped transactions sent again",
        )
        quiet = 0
        for _ in range(MAX_BLOCKS):
            head = await next_block(origin_rpc, head)
            pattern = _BLOCK_LINE.format(n=head.number)
            done = await bot.until(partial(bot.line, pattern), 30, f"block {head.number}")
            idle = done[1] == "0" and not ledger_rows(db, "outcome = 'sent'")
            quiet = quiet + 1 if idle else 0
            if quiet == 2:  # a user cooling down after a failure (1 block) was tried again
                break
        else:
            pytest.fail("the bot still had work after the reorg:\n" + bot.output[-4000:])
        assert await bot.stop(signal.SIGINT) == 0, bot.output[-4000:]
    finally:
        if bot.proc.returncode is None:
            await bot.stop(signal.SIGKILL)
        await origin_rpc.call("anvil_dropAllTransactions", [])
        await origin_rpc.call("evm_setAutomine", [True])
    with Ledger(db) as ledger:
        rows = ledger.rows()
    delta = await nonce_of(origin_rpc, account.address) - nonce0
    assert await assert_accounted(rows, delta) == 0
    cp = await same_rows_as_fresh(origin_rpc, manifest, db, tmp_path)
    async with devnet_bot(devnet_url, manifest, tmp_path / "check.db", live=False) as check:
        assert await profitable_left(check, await head_of(origin_rpc)) == 0
    print(
        f"\nreorg depth {depth} under liqbot run (polling): {len(mined)} mined transactions "
        f"dropped and sent again; {sum(r.outcome == 'won' for r in rows)} won, nonce delta "
        f"{delta}, {len(rows)} rows; indexed state = fresh index at checkpoint {cp}"
    )


# --- 3. a price move between simulation and inclusion --------------------------------------


def _cut(reason: str) -> bool:
    """Reverted by the contract's guard: the profit is below minProfit (0 when the proceeds
    no longer cover the loan; which of the two a move gives depends on where the health
    factor sits against Aave's 0.95 close-factor threshold, which moves with interest)."""
    m = re.match(r"InsufficientProfit\(profit=(\d+), min=(\d+)\)", reason)
    return m is not None and int(m[1]) < int(m[2])


def _healthy(reason: str) -> bool:
    """Aave's HEALTH_FACTOR_NOT_BELOW_THRESHOLD: the position is no longer liquidatable."""
    return "'45'" in reason


MOVES: dict[str, tuple[Callable[[str], bool], Outcome]] = {
    "profit below min": (_cut, Outcome.REVERTED),
    "position healthy": (_healthy, Outcome.RACED),
}


async def _price_for(
    sc: Scenario,
    symbol: str,
    want: Callable[[str], bool],
    simulate: Callable[[], Awaitable[Simulation]],
) -> tuple[int, str]:
    """An oracle price of ``symbol``, above today's (the pools left behind), at which the
    simulation fails as wanted; and that reason. Bisects between a price where it passes
    and one where it fails otherwise (the profit window below minProfit is narrow)."""

    async def at(price: int) -> Simulation:
        snap = await sc.snapshot()
        await sc.set_price(symbol, price, align_pools=False)
        sim = await simulate()
        await sc.revert(snap)
        return sim

    lo = await sc.price(symbol)
    hi = lo * 5 // 4  # +25%: every crashed position is healthy again
    sim = await at(hi)
    if not sim.ok and want(sim.reason):
        return hi, sim.reason
    while hi - lo > 1:
        mid = (lo + hi) // 2
        sim = await at(mid)
        if sim.ok:
            lo = mid
        elif want(sim.reason):
            return mid, sim.reason
        else:
            hi = mid
    pytest.fail(f"no price of {symbol} makes the simulation fail as wanted")


@pytest.mark.parametrize("move", list(MOVES))
async def test_price_move_after_simulation_reverts_on_chain_and_costs_only_gas(
    fork: AnvilProcess,
    fork_rpc: JsonRpcClient,
    tmp_path: Path,
    crashed: tuple[Manifest, Scenario],  # noqa: F811
    move: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, sc = crashed
    want, outcome = MOVES[move]
    one = {"strategy": {"max_plans_per_block": 1}}
    async with devnet_bot(fork.url, m, tmp_path / "bot.db", overrides=one) as bot:
        executor = bot.executor
        owner = executor.signer.address if executor.signer else ""
        liquidator = executor.settings.liquidator
        assert owner and liquidator
        symbols = [r.symbol for r in m.reserves]
        simulate = executor.simulate
        moved: list[tuple[LiquidationPlan, int, str]] = []

        async def simulate_then_move(
            plans: Sequence[LiquidationPlan], ts: int | None = None
        ) -> list[Simulation]:
            """The bot's simulation passes; then the collateral's oracle price rises
            before its transaction is sent and mined."""
            sims = await simulate(plans, ts)
            if moved or not sims or not sims[0].ok:
                return sims
            plan = sims[0].plan
            asset = plan.steps[0].collateral_asset.lower()
            symbol = next(r.symbol for r in m.reserves if r.address.lower() == asset)

            async def again() -> Simulation:
                return (await simulate([plan], ts))[0]

            before = await sc.price(symbol)
            price, reason = await _price_for(sc, symbol, want, again)
            await sc.set_price(symbol, price, align_pools=False)
            await sc.chain.auto_impersonate(False)
            await fork_rpc.call("evm_setAutomine", [False])
            moved.append((plan, price * 10**6 // before, reason))
            return sims

        monkeypatch.setattr(executor, "simulate", simulate_then_move)
        owner_tokens = {s: await sc.balance(owner, s) for s in symbols}
        contract_tokens = {s: await sc.balance(liquidator, s) for s in symbols}
        eth0 = to_int(await fork_rpc.call("eth_getBalance", [owner, "latest"]))
        try:
            report = await bot.runner.handle(await head_of(fork_rpc))
            assert moved, "nothing was simulated successfully"
            plan, ppm, simulated = moved[0]
            (sent,) = [a for a in report.attempts if a.outcome == Outcome.SENT]
            await fork_rpc.call("evm_mine", [])
            head = await head_of(fork_rpc)
            receipt = await fork_rpc.call("eth_getTransactionReceipt", [sent.tx_hash])
            assert to_int(receipt["status"]) == 0  # reverted on chain
            report = await bot.runner.handle(head)
            assert [a.row for a in report.settled] == [sent.row]
            (row,) = [r for r in bot.ledger.rows() if r.id == sent.row]
            assert row.outcome == outcome and want(row.reason), (row.outcome, row.reason)
            assert want(simulated)
            assert row.realized_profit == 0 and row.realized_net_base < 0
            gas_paid = to_int(receipt["gasUsed"]) * to_int(receipt["effectiveGasPrice"])
            assert row.gas_used == to_int(receipt["gasUsed"])
            assert {s: await sc.balance(owner, s) for s in symbols} == owner_tokens
            assert {s: await sc.balance(liquidator, s) for s in symbols} == contract_tokens
            eth1 = to_int(await fork_rpc.call("eth_getBalance", [owner, "latest"]))
            assert eth0 - eth1 == gas_paid  # only gas was lost
            # No retry loop: until its cooldown ends the user is not tried again; then
            # at most once (a new plan at the new price), and no second revert on chain.
            for _ in range(executor.settings.cooldown_blocks):
                await fork_rpc.call("evm_mine", [])
                await bot.runner.handle(await head_of(fork_rpc))
            tries = [r for r in bot.ledger.rows() if r.user.lower() == plan.user.lower()]
            assert len(tries) <= 2, [(r.block, r.outcome, r.reason) for r in tries]
            assert tries[0].id == row.id
            assert all(
                r.block >= head.number + executor.settings.cooldown_blocks for r in tries[1:]
            )
            assert not [r for r in tries[1:] if r.settled_block and r.outcome != Outcome.WON]
        finally:
            await fork_rpc.call("anvil_dropAllTransactions", [])
            await fork_rpc.call("evm_setAutomine", [True])
    print(
        f"\n{move}: collateral oracle x{ppm / 10**6:.6f} after simulation -> "
        f"{row.outcome} ({row.reason}); gas paid {gas_paid} wei, tokens unchanged; "
        f"{len(tries)} ledger row(s) for the user over {executor.settings.cooldown_blocks} "
        f"more heads ({', '.join(r.outcome for r in tries)})"
    )
