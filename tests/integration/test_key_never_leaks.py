"""The private key never leaves memory: a whole crash is liquidated with a known key and
every output -- logs at DEBUG from every logger, stdout/stderr, the ledger (rows and CSV),
the database file's bytes -- is searched for it, in every spelling."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from eth_account import Account

from bot.chain.anvil import AnvilProcess
from bot.devnet import crash
from bot.devnet.crash import CrashSpec, run_crash
from bot.devnet.manifest import Manifest
from bot.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

KEY = "0x" + "5a" * 16 + "c3" * 16


def spellings(key: str) -> list[bytes]:
    bare = key.removeprefix("0x")
    return [s.encode() for s in (bare, bare.upper(), bare[:24])] + [bytes.fromhex(bare)]


async def test_the_key_appears_in_no_log_ledger_or_database(
    fork: AnvilProcess,
    fork_rpc: object,
    manifest: Manifest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = Account.from_key(KEY)
    monkeypatch.setattr(crash.Account, "create", lambda *a, **k: account)
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "bot.db"
    result = await run_crash(fork.url, manifest.with_rpc_url(fork.url), db, CrashSpec())
    assert result.bot == account.address
    assert any(r.outcome == "won" for r in result.ledger)  # the key was really used

    csv = io.StringIO()
    with Ledger(db) as ledger:
        ledger.export_csv(csv)
    captured = capsys.readouterr()
    texts = {
        "logs": "\n".join(
            f"{r.getMessage()} {r.__dict__}" + (f" {r.exc_text}" if r.exc_text else "")
            for r in caplog.records
        ),
        "stdout": captured.out,
        "stderr": captured.err,
        "ledger": csv.getvalue() + repr(result.ledger),
    }
    assert len(caplog.records) > 50  # DEBUG logging really was captured
    for name, text in texts.items():
        for s in spellings(KEY):
            assert s not in text.encode(), f"the key appears in {name}"
    files = written(tmp_path)
    assert db.name in files
    for name, data in files.items():
        for s in spellings(KEY):
            assert s not in data, f"the key appears in {name}"


def written(directory: Path) -> dict[str, bytes]:
    """Every file the run left in ``directory`` (database, WAL, ledger), by name."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
