"""The production bot on Morpho Blue: `liqbot run` (the real CLI process) liquidates on a
fork of the Morpho devnet after a crash, and `liqbot demo --protocol morpho-blue` works
end to end with every realized profit equal to its prediction."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import pytest
from eth_account import Account

from bot.devnet.deploy import deploy_liquidator
from bot.devnet.devnet import Devnet, start_fork
from bot.devnet.scenario import Scenario
from bot.ledger import Ledger, Outcome
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration]


@pytest.mark.asyncio
async def test_liqbot_run_liquidates_morpho_positions(morpho_net: Devnet, tmp_path: Path) -> None:
    fork = await start_fork(morpho_net.url)
    try:
        m = morpho_net.manifest.with_rpc_url(fork.url)
        owner = Account.create()
        async with JsonRpcClient(fork.url) as rpc:
            sc = Scenario(rpc, m)
            await sc.chain.set_balance(owner.address, 10**20)
            liquidator = await deploy_liquidator(
                sc.chain, owner.address, m.aave.pool, m.uniswap.factory
            )
            await sc.chain.auto_impersonate(False)
            await sc.scale_price("WETH", 7_500)
            await sc.follow_aave_prices()
        path = tmp_path / "fork.json"
        m.save(path)
        env = {
            **os.environ,
            "LIQBOT_PRIVATE_KEY": owner.key.hex(),
            "LIQBOT_MARKET__PROTOCOL": "morpho-blue",
            "LIQBOT_EXECUTOR__LIQUIDATOR": liquidator,
            "LIQBOT_INDEXER__POLL_INTERVAL_S": "0.2",
        }
        cmd = [sys.executable, "-m", "bot.cli", "run", "--manifest", str(path), "--blocks", "4"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=PIPE, stderr=STDOUT, cwd=tmp_path, env=env
        )
        try:
            # Automine mines the bot's transactions; empty blocks give it further heads.
            async with JsonRpcClient(fork.url) as rpc, asyncio.timeout(120):
                while proc.returncode is None:
                    await rpc.call("evm_mine")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 0.5)
            assert proc.stdout is not None
            out = (await proc.stdout.read()).decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, out
        assert "LIVE" in out and "(morpho-blue)" in out, out
        assert owner.key.hex().removeprefix("0x") not in out
        with Ledger(tmp_path / "liqbot.db") as ledger:
            rows = ledger.rows()
        won = [r for r in rows if r.outcome == Outcome.WON]
        assert won, [(r.outcome, r.reason) for r in rows]
        assert all(r.protocol == "morpho-blue" for r in rows)
        assert {r.outcome for r in rows} <= {Outcome.WON, Outcome.RACED, Outcome.UNPROFITABLE}, [
            (r.outcome, r.reason, r.block, r.user[:12]) for r in rows
        ]
        assert all(r.realized_profit and r.realized_profit > 0 for r in won)
    finally:
        fork.stop()


def test_demo_on_morpho_blue_is_exact_to_the_wei(tmp_path: Path) -> None:
    cmd = [
        sys.executable, "-m", "bot.cli", "demo", "--protocol", "morpho-blue",
        "--borrowers", "0", "--state-cache", "none", "--top", "0",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(
        r"(\d+) liquidations won.*?(\d+)/(\d+) realized profits equal the prediction to the wei;"
        r"\s+(\d+) positions still below HF 1,\s+(\d+) of them",
        " ".join(done.stdout.split()),
    )
    assert found, done.stdout
    won, exact, of, _below, profitable_left = map(int, found.groups())
    assert won > 0 and exact == of == won
    assert profitable_left == 0
