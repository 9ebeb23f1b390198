"""The adapter conformance kit: one pytest base class every adapter's tests inherit.

An adapter package (liqbot's own, or a third party's) proves itself against a devnet by
subclassing ``AdapterConformance`` and providing one fixture, ``harness``, returning a
``ConformanceHarness`` for its protocol::

    class TestMyProtocol(AdapterConformance):
        @pytest.fixture
        def harness(self, my_devnet) -> ConformanceHarness:
            return MyHarness(my_devnet)

Each test forks the harness's origin chain (a fresh ``anvil --fork-url``), so nothing
leaks between tests or into the origin. The tests are the production pipeline's, not a
re-implementation: the plugin is loaded through its entry point, the bot is
``devnet_bot``'s, the index ``open_index``'s.

A harness method (or adapter code) that raises ``NotImplementedError("not implemented:
...")`` fails its test with that message alone, so a generated skeleton
(``liqbot new-adapter``) reads as a to-do list. This follows web3.py's ``module_testing``
suites and hummingbot's connector tests (STYLE.md, item 18).
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, ParamSpec

import pytest

from bot.api import BlockRef
from bot.config import Settings, deep_merge
from bot.devnet.crash import BLOCK_TIME_S, devnet_bot
from bot.devnet.devnet import start_fork
from bot.devnet.manifest import Manifest
from bot.execution.executor import GasContext
from bot.ledger import Outcome
from bot.plugins import load_adapter, load_strategy
from bot.rpc import JsonRpcClient, to_int
from bot.wiring import open_index

__all__ = ["AdapterConformance", "ConformanceHarness", "Fork"]

# Heads the end-to-end test hands the bot before it must have worked the crash off.
MAX_HEADS = 12
# The resume/reorg test's confirmation depth: the reorg (depth 2) stays in the tip.
CONFIRMATIONS = 4
REORG_DEPTH = 2


class ConformanceHarness(ABC):
    """What the kit needs of a protocol's devnet: kept to what the tests use.

    ``rpc`` arguments are clients of a fork of ``origin()``'s chain, private to one test.
    """

    protocol: str  # the ``liqbot.adapters`` entry point name (``market.protocol``)

    @abstractmethod
    async def origin(self) -> tuple[str, Manifest]:
        """The chain to fork (its URL) and its devnet manifest: the liquidator contract is
        deployed with the manifest's Aave pool (flash loans) and Uniswap V2 factory."""

    @abstractmethod
    def settings(self, url: str) -> dict[str, Any]:
        """The full settings (``Settings.model_validate`` input) for the chain at ``url``,
        with the protocol's ``market`` section; the kit adds ``indexer`` and ``executor``."""

    @abstractmethod
    async def crash(self, rpc: JsonRpcClient) -> None:
        """Make several (not all) positions liquidatable at latest, e.g. by scaling a
        collateral price down; set up whatever ``chain_liquidatable`` needs."""

    @abstractmethod
    async def chain_liquidatable(self, rpc: JsonRpcClient, key: str) -> bool:
        """The protocol's own verdict at latest for position ``key`` (the adapter's key):
        e.g. Aave's ``getUserAccountData`` health factor below 1, or ``liquidate``
        succeeding under ``eth_call``."""

    @abstractmethod
    async def activity(self, rpc: JsonRpcClient, blocks: int) -> None:
        """State-changing transactions in each of the last ``blocks`` blocks mined: a
        reorg of those blocks must change the indexed positions."""


P = ParamSpec("P")


def _not_implemented_fails(
    test: Callable[P, Awaitable[None]],
) -> Callable[P, Awaitable[None]]:
    """A ``NotImplementedError`` anywhere in the test fails it with its message only."""

    @functools.wraps(test)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await test(*args, **kwargs)
            return
        except NotImplementedError as e:
            message = str(e) or f"not implemented: {_origin_of(e)}"
            if not message.startswith("not implemented:"):
                message = f"not implemented: {message}"
        pytest.fail(message, pytrace=False)  # outside the handler: no chained traceback

    return wrapper


def _origin_of(e: BaseException) -> str:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_qualname if tb is not None else "?"


@dataclass(frozen=True, slots=True)
class Fork:
    rpc: JsonRpcClient
    url: str
    manifest: Manifest  # the origin's, pointing at the fork

    async def head(self) -> BlockRef:
        return BlockRef.from_json(await self.rpc.call("eth_getBlockByNumber", ["latest", False]))


@asynccontextmanager
async def fork_of(h: ConformanceHarness) -> AsyncIterator[Fork]:
    """A fresh anvil fork of the harness's origin, stopped afterwards."""
    url, manifest = await h.origin()
    proc = await start_fork(url)
    try:
        async with JsonRpcClient(proc.url) as rpc:
            yield Fork(rpc, proc.url, manifest.with_rpc_url(proc.url))
    finally:
        proc.stop()


def _settings(h: ConformanceHarness, url: str, database: Path) -> Settings:
    ours = {"indexer": {"database": str(database), "confirmations": CONFIRMATIONS}}
    return Settings.model_validate(deep_merge(h.settings(url), ours))


def _keys(positions: Mapping[str, Any]) -> str:
    shown = sorted(positions)[:5]
    return ", ".join(shown) + (" ..." if len(positions) > 5 else "")


class AdapterConformance:
    """The tests every adapter passes; subclass it and provide the ``harness`` fixture.

    Not named ``Test*``: pytest collects it only through a subclass.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    # -- registration --------------------------------------------------------------------
    @_not_implemented_fails
    async def test_plugin_is_registered(self, harness: ConformanceHarness) -> None:
        plugin = load_adapter(harness.protocol)
        assert plugin.name == harness.protocol, (
            f"the plugin registered as {harness.protocol!r} names itself {plugin.name!r}"
        )
        strategy = load_strategy(plugin.default_strategy, harness.protocol)
        assert callable(getattr(strategy, "plan", None)), (
            f"strategy {plugin.default_strategy!r} has no plan(inp) method"
        )

    # -- exact health ----------------------------------------------------------------------
    @_not_implemented_fails
    async def test_health_parity(self, harness: ConformanceHarness, tmp_path: Path) -> None:
        async with fork_of(harness) as f, self._bot(harness, f, tmp_path, live=False) as bot:
            await harness.crash(f.rpc)
            head = await f.head()
            adapter = bot.runner.adapter
            sync = await bot.index.indexer.sync(head)
            scan = await adapter.scan(head, adapter.positions_of(sync.dirty))
            keys = sorted(adapter.positions())
            assert keys, "adapter.positions() is empty after indexing the devnet"
            chain = await asyncio.gather(*(harness.chain_liquidatable(f.rpc, k) for k in keys))
            wrong = [
                f"{k}: adapter {'liquidatable' if k in scan.liquidatable else 'healthy'}, "
                f"chain {'liquidatable' if c else 'healthy'}"
                for k, c in zip(keys, chain, strict=True)
                if (k in scan.liquidatable) != c
            ]
            assert not wrong, (
                f"scan() verdicts differ from the protocol's on {len(wrong)} of {len(keys)} "
                "positions:\n" + "\n".join(wrong[:10])
            )
            stray = scan.liquidatable - set(keys)
            assert not stray, f"scan() names positions that positions() lacks: {sorted(stray)}"
            assert any(chain), "the harness's crash() left no position liquidatable"
            assert not all(chain), "the harness's crash() left no position healthy"

    # -- sizing ---------------------------------------------------------------------------
    @_not_implemented_fails
    async def test_planned_amounts_never_revert(
        self, harness: ConformanceHarness, tmp_path: Path
    ) -> None:
        async with fork_of(harness) as f, self._bot(harness, f, tmp_path, live=True) as bot:
            await harness.crash(f.rpc)
            head = await f.head()
            runner = bot.runner
            sync = await bot.index.indexer.sync(head)
            scan = await runner.adapter.scan(head, runner.adapter.positions_of(sync.dirty))
            assert scan.liquidatable, "nothing is liquidatable after the harness's crash()"
            gas = GasContext(head.base_fee, scan.native_price_base)
            inp = await runner.planning_input(head, scan, sorted(scan.liquidatable), gas)
            plans = runner.strategy.plan(inp)
            assert plans, (
                f"the default strategy planned none of {len(scan.liquidatable)} liquidatable "
                "positions (planning_input gives it too little?)"
            )
            failed = []
            for plan in plans:  # each alone: its sizing, not its order, is under test
                (sim,) = await bot.executor.simulate([plan], inp.ts)
                if not sim.ok:
                    failed.append(f"{plan.user}: {sim.reason}")
            assert not failed, (
                f"{len(failed)} of {len(plans)} planned liquidations revert when simulated "
                "(the amounts or calldata are wrong):\n" + "\n".join(failed[:10])
            )

    # -- the whole bot --------------------------------------------------------------------
    @_not_implemented_fails
    async def test_end_to_end_liquidation(
        self, harness: ConformanceHarness, tmp_path: Path
    ) -> None:
        async with fork_of(harness) as f, self._bot(harness, f, tmp_path, live=True) as bot:
            await harness.crash(f.rpc)
            rpc, runner = f.rpc, bot.runner
            await rpc.call("evm_setAutomine", [False])
            try:
                for _ in range(MAX_HEADS):
                    head = await f.head()
                    report = await runner.handle(head)
                    if not report.attempts and bot.executor.in_flight == 0:
                        break
                    # The block the plans were priced for (head.timestamp + block_time_s).
                    await rpc.call("evm_setNextBlockTimestamp", [head.timestamp + BLOCK_TIME_S])
                    await rpc.call("evm_mine", [])
                else:
                    pytest.fail(f"the bot was still liquidating after {MAX_HEADS} heads")
            finally:
                await rpc.call("evm_setAutomine", [True])
            rows = bot.ledger.rows()
            won = [r for r in rows if r.outcome == Outcome.WON]
            assert won, "no liquidation won: " + repr([(r.outcome, r.reason) for r in rows])
            off = [r for r in won if r.realized_profit != r.predicted_profit]
            assert not off, "realized profit differs from the prediction: " + repr(
                [(r.user, r.predicted_profit, r.realized_profit) for r in off]
            )
            left = await runner.profitable_left(head)
            assert left == 0, f"{left} positions were still profitable to liquidate at the end"

    # -- indexing -------------------------------------------------------------------------
    @_not_implemented_fails
    async def test_resume_and_reorg(self, harness: ConformanceHarness, tmp_path: Path) -> None:
        async with fork_of(harness) as f:
            head = to_int(await f.rpc.call("eth_blockNumber"))
            live = _settings(harness, f.url, tmp_path / "live.db")
            start = live.market.start_block
            assert start < head, f"market.start_block {start} is not below the head {head}"
            async with open_index(live) as svc:
                await svc.indexer.sync((start + head) // 2)
            async with open_index(live) as svc:
                await svc.indexer.sync(head)
                await self._same_as_fresh(
                    harness,
                    f,
                    svc.liquidation.positions(),
                    head,
                    tmp_path / "fresh1.db",
                    "after resuming from the database",
                )
                await harness.activity(f.rpc, REORG_DEPTH + 2)
                await svc.indexer.sync()
                before = dict(svc.liquidation.positions())
                await f.rpc.call("anvil_reorg", [REORG_DEPTH, []])
                report = await svc.indexer.sync()
                assert report.reorged, "the indexer did not notice a reorg of depth 2"
                after = svc.liquidation.positions()
                await self._same_as_fresh(
                    harness,
                    f,
                    after,
                    report.head.number,
                    tmp_path / "fresh2.db",
                    "after a reorg of depth 2",
                )
                assert before != after, (
                    "the harness's activity() changed no position in the reorged blocks"
                )

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    @asynccontextmanager
    async def _bot(
        h: ConformanceHarness, f: Fork, tmp_path: Path, *, live: bool
    ) -> AsyncIterator[Any]:
        overrides = h.settings(f.url)
        async with devnet_bot(
            f.url,
            f.manifest,
            tmp_path / "bot.db",
            protocol=h.protocol,
            live=live,
            overrides=overrides,
        ) as bot:
            yield bot

    @staticmethod
    async def _same_as_fresh(
        h: ConformanceHarness,
        f: Fork,
        positions: Mapping[str, Any],
        head: int,
        database: Path,
        when: str,
    ) -> None:
        async with open_index(_settings(h, f.url, database)) as fresh:
            await fresh.indexer.sync(head)
            expected = dict(fresh.liquidation.positions())
        got = dict(positions)
        assert got.keys() == expected.keys(), (
            f"{when}, the positions differ from a fresh index's: missing "
            f"[{_keys({k: 0 for k in expected.keys() - got.keys()})}], extra "
            f"[{_keys({k: 0 for k in got.keys() - expected.keys()})}]"
        )
        differ = [k for k in expected if got[k] != expected[k]]
        assert not differ, (
            f"{when}, {len(differ)} positions differ from a fresh index's: "
            f"{_keys({k: 0 for k in differ})}"
        )
