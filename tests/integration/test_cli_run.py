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

from bot.api import LiquidationPlan, LiquidationStep
from bot.chain.anvil import AnvilProcess
from bot.db.api import open_database
from bot.devnet.manifest import Manifest
from bot.ledger import Ledger, Outcome

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


def test_ledger_command_reads_a_postgresql_ledger(pg_url: str) -> None:
    user, weth, dai = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    step = LiquidationStep(user, weth, dai, 10**21, 5 * 10**17, 10**15, 10_500)
    plan = LiquidationPlan(
        protocol="aave-v3",
        user=user,
        debt_asset=dai,
        health_factor=97 * 10**16,
        steps=(step,),
        swaps=(),
        flash_amount=0,
        flash_premium=0,
        profit=2**200 + 1,  # beyond 64 bits: exact through PostgreSQL and the CSV
        profit_base=500 * 10**8,
        bonus_base=60 * 10**8,
        protocol_fee_base=0,
        swap_cost_base=0,
        flash_premium_base=0,
        gas_units=600_000,
        gas_price_wei=10**9,
        gas_cost_base=2 * 10**8,
        net_profit_base=498 * 10**8,
    )
    store = open_database(pg_url)  # what a running bot holds: bound to its market
    try:
        store.check_identity({"chain_id": "1", "protocol": "aave-v3", "market": weth})
        with Ledger(store, instance="0xbot") as ledger:
            row = ledger.record(plan, 123, Outcome.SENT)
            ledger.update(row, Outcome.WON, tx_hash="0x" + "ab" * 32)
        out = subprocess.run(
            [sys.executable, "-m", "bot.cli", "ledger", "--db", pg_url, "--csv", "-"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        store.close()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("id,block,protocol,user")
    assert len(lines) == 2
    assert f"{row},123,aave-v3,{user}" in lines[1]
    assert str(2**200 + 1) in lines[1] and "won" in lines[1] and "0x" + "ab" * 32 in lines[1]
    # The table (no --csv) reads it too, and nothing is required to exist on disk.
    table = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ledger", "--db", pg_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},  # every column wide enough to show
    )
    assert table.returncode == 0, table.stderr
    assert "won" in table.stdout and "0x1111" in table.stdout
