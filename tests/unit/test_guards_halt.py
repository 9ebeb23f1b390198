"""Operator guards (kill switch, daily loss cap) and halting after repeated failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.api import BlockRef
from bot.chain.heads import LatestHeads, ScriptedHeads
from bot.errors import BotHalted, RpcTransportError
from bot.execution.guards import DAY_S, KillSwitch, LossGuard
from bot.runner import HeadReport, Runner, RunSettings


def test_loss_guard_trips_on_the_rolling_day_only() -> None:
    guard = LossGuard(max_loss_base=100)
    guard.record(1_000, 50)
    guard.record(2_000, -120)
    assert guard.tripped(2_000) is None  # net -70
    guard.record(3_000, -40)
    assert guard.tripped(3_000) is not None  # net -110
    # A day after the profit, only the losses remain; a day after those, nothing.
    assert guard.net(1_000 + DAY_S) == -160
    assert guard.tripped(3_000 + DAY_S) is None
    assert LossGuard(None).tripped(0) is None


def test_kill_switch_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "STOP"
    switch = KillSwitch(path)
    assert switch.engaged() is None
    path.touch()
    assert "engaged" in (switch.engaged() or "")
    assert KillSwitch(None).engaged() is None


class _Scripted(Runner):
    """The run loop of ``Runner`` over a handler that fails when told to."""

    def __init__(self, fails: set[int], limit: int) -> None:
        self.settings = RunSettings(
            min_profit_base=0,
            max_plans_per_block=1,
            block_time_s=12,
            priority_fee_wei=0,
            max_consecutive_failures=limit,
        )
        self.handled = self.failures = 0
        self.fails = fails

    async def handle(self, head: BlockRef, newer: Callable[[], bool] = lambda: False) -> HeadReport:
        if head.number in self.fails:
            raise RpcTransportError("eth_getLogs", f"node down at {head.number}")
        return HeadReport(head, 0, 0, (), (), 0.0)


async def _drive(runner: _Scripted, blocks: range) -> list[HeadReport]:
    source = ScriptedHeads()
    reports: list[HeadReport] = []
    stop = asyncio.Event()
    blocks_left = list(blocks)

    def on_report(report: HeadReport) -> None:
        reports.append(report)
        if blocks_left:
            n = blocks_left.pop(0)
            source.publish(BlockRef(n, f"0x{n:064x}", "0x", n))
        else:
            stop.set()

    n = blocks_left.pop(0)
    source.publish(BlockRef(n, f"0x{n:064x}", "0x", n))
    async with LatestHeads(source) as heads:
        await runner.run(heads, stop, on_report)
    return reports


@pytest.mark.asyncio
async def test_failures_below_the_limit_are_ridden_out() -> None:
    runner = _Scripted(fails={2, 3, 5, 6}, limit=3)
    reports = await _drive(runner, range(1, 9))
    assert [r.error is not None for r in reports] == [n in {2, 3, 5, 6} for n in range(1, 9)]
    assert (runner.handled, runner.failures) == (4, 4)


@pytest.mark.asyncio
async def test_too_many_failures_in_a_row_halt_with_a_clear_error() -> None:
    runner = _Scripted(fails={2, 3, 4, 5}, limit=3)
    with pytest.raises(BotHalted, match="3 heads in a row failed"):
        await _drive(runner, range(1, 9))
    assert runner.failures == 3


@pytest.mark.asyncio
async def test_a_handler_is_told_when_a_newer_head_arrives() -> None:
    source = ScriptedHeads()
    seen: list[tuple[int, bool, bool]] = []
    stop = asyncio.Event()

    class _Slow(_Scripted):
        async def handle(
            self, head: BlockRef, newer: Callable[[], bool] = lambda: False
        ) -> HeadReport:
            before = newer()
            if head.number == 1:  # the next block arrives while this one is handled
                source.publish(BlockRef(2, f"0x{2:064x}", "0x", 2))
                await asyncio.sleep(0)  # the head source takes it
            seen.append((head.number, before, newer()))
            if head.number == 2:
                stop.set()
            return HeadReport(head, 0, 0, (), (), 0.0)

    source.publish(BlockRef(1, f"0x{1:064x}", "0x", 1))
    async with LatestHeads(source) as heads:
        await _Slow(set(), 3).run(heads, stop)
    assert seen == [(1, False, True), (2, False, False)]
