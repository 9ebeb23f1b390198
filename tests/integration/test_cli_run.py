"""`liqbot run` and `liqbot ledger` as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from bot.chain.anvil import AnvilProcess
from bot.devnet.manifest import Manifest
from bot.ledger import Ledger

pytestmark = pytest.mark.integration


def test_run_dry_by_default_stops_on_sigint_and_never_logs_the_key(
    fork: AnvilProcess, manifest: Manifest, tmp_path: Path
) -> None:
    path = tmp_path / "fork.json"
    manifest.with_rpc_url(fork.url).save(path)
    key = Account.create().key.hex()
    env = {**os.environ, "LIQBOT_PRIVATE_KEY": key, "LIQBOT_INDEXER__POLL_INTERVAL_S": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--log-level", "DEBUG", "run", "--manifest", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "indexed to block" in line:
                break
        else:
            pytest.fail("liqbot run did not finish catching up:\n" + "".join(seen))
        # A key but no liquidator contract: it must not send anything.
        assert any("DRY RUN" in line for line in seen), seen
        time.sleep(1.0)  # a few polls of the head loop
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    assert key.removeprefix("0x") not in output
    assert (tmp_path / "liqbot.db").is_file()


def test_ledger_command_prints_and_exports(tmp_path: Path) -> None:
    db = tmp_path / "liqbot.db"
    Ledger(db).close()  # an empty ledger
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ledger", "--db", str(db), "--csv", "-"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("id,block,protocol,user")
    missing = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ledger", "--db", str(tmp_path / "nope.db")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
