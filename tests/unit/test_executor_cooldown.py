"""A user that failed is not retried until its cooldown ends, or until its position
changes on chain (a new state is a new question)."""

from __future__ import annotations

from pathlib import Path

from bot.execution.executor import Executor, ExecutorSettings
from bot.ledger import Ledger
from bot.rpc import JsonRpcClient

USER = "0x00000000000000000000000000000000000000Aa"


def test_cooldown_ends_after_its_blocks_or_when_the_position_changes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        ex = Executor(
            JsonRpcClient("http://127.0.0.1:9"),
            ledger,
            ExecutorSettings(liquidator=None, cooldown_blocks=5),
            None,
            31337,
        )
        ex._cool(USER, 100)
        assert ex.busy(USER.lower(), 104)
        assert not ex.busy(USER, 105)
        ex.changed(["0x00000000000000000000000000000000000000bb"])  # someone else
        assert ex.busy(USER, 104)
        ex.changed([USER.lower()])
        assert not ex.busy(USER, 101)
    finally:
        ledger.close()
